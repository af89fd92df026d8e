"""Non-inferiority verdicts: is a quantized method's loss on a task smaller than the margin?

One test per model x method x task x prompting method, on the change of the primary metric
from the unquantized baseline, in points (1 point = 0.01 on the metric's 0-1 scale).

* Pooling over a task's datasets: the task's change is the mean of its datasets' changes, each
  dataset weighted equally. Its bootstrap distribution is a stratified paired bootstrap: every
  dataset is resampled within itself (items, or clusters of items, both systems on the same
  resample) from its own random stream, and resample b of the task is the mean of resample b
  of its datasets. The comparison files carry those resampled differences.
* The test, at level ``alpha`` (one-sided), on its own: H0 "the loss is at least the margin"
  (change <= -margin) against "smaller loss", with its p-value (``p_noninferior``). A
  candidate is shown non-inferior for a model only when every one of its tests passes and
  Holm's procedure across the candidates passes it too (see
  :mod:`biomedquant.analysis.recommendation`).
* One bound, one verdict. The lower bound of the change is the k-th smallest of the B
  resampled changes, ``k = floor(alpha (B + 1))``; the upper bound the k-th largest. The
  verdict is ``non-inferior`` when the lower bound lies above -margin, which is exactly when
  the bootstrap p-value ``(#{d* <= -margin} + 1) / (B + 1)`` is <= alpha; ``inferior`` when
  the upper bound lies below -margin; else ``inconclusive``. Both bounds are one-sided at
  ``alpha``, so the interval drawn beside a verdict is the ``1 - 2 alpha`` two-sided one.
* Too little evidence is no verdict: ``insufficient evidence`` (never non-inferior, never
  inferior) when

  - fewer than :data:`MIN_CHANGED_UNITS` resampling units changed their prediction: the
    percentile bootstrap is then anti-conservative (4 items right-to-wrong out of 20 give a
    bootstrap p of 0.03, McNemar's exact 0.125), and 8 identical predictions give every
    resample a change of 0. Where the metric is accuracy, such a test is decided by an exact
    bound instead: accuracy cannot lose more than the share of units that changed, whose
    one-sided Clopper-Pearson bound at ``alpha`` (per dataset, averaged as the change is) is
    the loss's upper bound. Below the margin (5,000 identical sentences: 0.06 points) the
    method is non-inferior, with the exact p-value (the smallest ``alpha`` whose bound lies
    below the margin); above it (8 identical items: 31 points) the test sets cannot tell. For
    F1 metrics the share of changed units bounds nothing (9 of 315 HoC documents with every
    label reversed lose 4.6 points of macro-F1; one sentence can hold many entities), so such
    a test is insufficient evidence;
  - both methods score the metric's floor (0) on every dataset of the task: two systems that
    find nothing are not evidence that one loses nothing;
  - the metric is undefined in more than :data:`MAX_UNDEFINED_SHARE` of the resamples;
  - there are fewer than ``1 / alpha - 1`` resamples (no order statistic for the bound).

  The ``evidence_note`` column says which.
* What the test sets resolve, each under its own name: ``loss_upper_bound_points`` is minus
  the lower bound (0 for a bound that is a gain), the largest loss the data leave open;
  ``detectable_loss_points`` is the smallest true loss the test would declare inferior to a
  zero-loss method with 80% power, ``(z_(1-alpha) + z_0.8)`` resampled standard deviations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_ALPHA = 0.05
# Per-task margins in points, from what a point means on each task (docs/guide/paper.md: one
# point of entity F1 is about 76 of BC5CDR's 5,385 entities, of RE macro-F1 about 62 of DDI's
# 5,761 pairs, of MedQA accuracy 13 questions) and from what the full test sets resolve:
# benchmarks/bench_verdicts.py simulates the real test sets, resampling units and primary
# metrics at 2%, 5% and 10% flips, and at these margins a candidate with no true loss is
# recommended with probability >= 0.8 at 5% flips and one losing twice the margin on any task
# with probability <= 0.05. Relation extraction's macro-F1 spreads about twice as much as
# accuracy, so its margin is 2, not the 1 an accuracy simulation suggested.
DEFAULT_MARGINS = {"ner": 2.0, "re": 2.0, "mlc": 3.0, "qa": 2.5}
DEFAULT_MARGIN_POINTS = 2.5  # a task the table above does not name
POWER = 0.8
MIN_CHANGED_UNITS = 10
MAX_UNDEFINED_SHARE = 0.05
VERDICTS = ("non-inferior", "inconclusive", "inferior", "insufficient evidence")

KEYS = ("model", "method", "baseline", "task", "prompt")
TEST_COLUMNS = (
    *KEYS,
    "n_datasets",
    "datasets",
    "units",
    "changed_units",
    "resamples",
    "score_points",
    "baseline_score_points",
    "delta_points",
    "margin_points",
    "alpha",
    "lower_bound_points",
    "upper_bound_points",
    "p_noninferior",
    "p_inferior",
    "verdict",
    "evidence_note",
    "loss_upper_bound_points",
    "detectable_loss_points",
)


def pooled_draws(draws: Sequence[Sequence[float]]) -> np.ndarray:
    """Resample b of a task: the mean of resample b of its datasets (stratified bootstrap).

    Datasets scored with different resample counts are cut to the smallest; none: empty. A
    resample where a dataset's metric is undefined (NaN) is undefined for the task."""
    arrays = [np.asarray(d, dtype=float) for d in draws]
    if not arrays or min(len(a) for a in arrays) == 0:
        return np.zeros(0)
    b = min(len(a) for a in arrays)
    return np.mean([a[:b] for a in arrays], axis=0)


def bound_rank(alpha: float, resamples: int) -> int:
    """k of the one-sided bound at ``alpha``: the k-th smallest of ``resamples`` draws
    (0 when there are too few draws for that level)."""
    return math.floor(alpha * (resamples + 1) + 1e-9)


def clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    """One-sided upper confidence bound at ``alpha`` on a binomial proportion, ``k`` of
    ``n`` (1 when n is 0)."""
    if n <= 0 or k >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(1 - alpha, k + 1, n - k))


def exact_loss_bound(units_changed: Sequence[tuple[int, int]], alpha: float) -> float:
    """The exact upper bound (points) at ``alpha`` on an accuracy loss when few units changed:
    per dataset the Clopper-Pearson bound on the share of changed units, averaged over the
    datasets as the task's change is."""
    return 100 * float(np.mean([clopper_pearson_upper(k, u, alpha) for u, k in units_changed]))


def exact_p_value(units_changed: Sequence[tuple[int, int]], margin: float) -> float:
    """The p-value of the exact bound's test: the smallest ``alpha`` at which
    :func:`exact_loss_bound` lies at or below ``margin`` (the bound falls as ``alpha`` grows,
    so bisection finds it; 1 when even ``alpha`` 0.5 leaves it above)."""
    if exact_loss_bound(units_changed, 0.5) > margin:
        return 1.0
    low, high = 0.0, 0.5
    for _ in range(60):
        mid = (low + high) / 2
        if mid > 0 and exact_loss_bound(units_changed, mid) <= margin:
            high = mid
        else:
            low = mid
    return high


def detectable_loss(draws: np.ndarray, alpha: float, power: float = POWER) -> float:
    """The smallest true loss (points) that the test at ``alpha`` would detect with
    ``power``, from the spread of the resampled changes (normal approximation)."""
    if len(draws) < 2:
        return math.nan
    from scipy.stats import norm

    return float((norm.ppf(1 - alpha) + norm.ppf(power)) * np.std(draws, ddof=1))


def margin_for(task: str, margin_points: float | None, task_margins: Mapping[str, float]) -> float:
    """The margin of ``task``: its own, else the study's single margin, else the default."""
    if task in task_margins:
        return float(task_margins[task])
    if margin_points is not None:
        return float(margin_points)
    return DEFAULT_MARGINS.get(task, DEFAULT_MARGIN_POINTS)


def _changed_units(c: Mapping[str, Any]) -> tuple[int, int]:
    """(units, units whose prediction changed) of one comparison record."""
    units = int((c.get("bootstrap") or {}).get("units") or c.get("n") or 0)
    if "changed_units" in c:
        return units, int(c["changed_units"])
    # records written before changed units were counted: changed items bound them
    return units, min(units, round(float(c.get("flip_rate", 0.0)) * int(c.get("n") or 0)))


def _draws(c: Mapping[str, Any]) -> Any:
    draws = c.get("primary_diff_draws")
    return [] if draws is None else draws


def _at_floor(c: Mapping[str, Any]) -> bool:
    m = c["metrics"][c["primary_metric"]]
    return m.get("baseline") == 0 and m.get("value") == 0


def task_tests(
    comparisons: Sequence[Mapping[str, Any]],
    *,
    margin_points: float | None = None,
    task_margin_points: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> list[dict[str, Any]]:
    """One verdict row per model x method x task x prompt (see the module docstring).

    ``comparisons``: comparison records as
    :func:`biomedquant.evaluation.scoring.compare_to_baseline` writes them (the primary metric's
    ``diff``, ``primary_diff_draws``, the changed units and the bootstrap's unit count are read).
    ``margin_points`` applies to every task without its own ``task_margin_points`` entry; with
    neither, :data:`DEFAULT_MARGINS`."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    margins = dict(task_margin_points or {})
    named = [("margin_points", margin_points), *margins.items()]
    for name, value in named:
        if value is not None and value < 0:
            raise ValueError(f"margin must be >= 0 points, got {name}={value}")
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for c in comparisons:
        groups.setdefault(tuple(str(c[k]) for k in KEYS), []).append(c)
    rows = []
    for key, group in groups.items():
        group = sorted(group, key=lambda c: c["dataset"])
        rows.append(_test(key, group, margin_for(key[3], margin_points, margins), alpha))
    return rows


def _mean_points(values: Any) -> float:
    """100 x the mean of ``values`` (NaN when any is missing or undefined)."""
    vals = [math.nan if v is None else float(v) for v in values]
    return 100 * float(np.mean(vals)) if vals else math.nan


def _test(
    key: tuple[str, ...], group: list[Mapping[str, Any]], margin: float, alpha: float
) -> dict[str, Any]:
    primary = [c["metrics"][c["primary_metric"]] for c in group]
    diffs = [float(m["diff"]) for m in primary]
    draws = 100 * pooled_draws([_draws(c) for c in group])
    defined = np.sort(draws[~np.isnan(draws)])
    undefined_share = 1 - len(defined) / len(draws) if len(draws) else 0.0
    units_changed = [_changed_units(c) for c in group]
    units = sum(u for u, _ in units_changed)
    changed = sum(k for _, k in units_changed)
    b = len(defined)
    k = bound_rank(alpha, b)
    cut = -margin
    row: dict[str, Any] = {
        **dict(zip(KEYS, key, strict=True)),
        "n_datasets": len(group),
        "datasets": ",".join(c["dataset"] for c in group),
        "units": units,
        "changed_units": changed,
        "resamples": b,
        # the task's score (mean over its datasets), which the deployment answer ranks by
        "score_points": _mean_points(m.get("value") for m in primary),
        "baseline_score_points": _mean_points(m.get("baseline") for m in primary),
        "delta_points": 100 * float(np.mean(diffs)),
        "margin_points": margin,
        "alpha": alpha,
        "evidence_note": "",
    }
    if k >= 1:
        lower, upper = float(defined[k - 1]), float(defined[b - k])
        row.update(
            lower_bound_points=lower,
            upper_bound_points=upper,
            p_noninferior=(int((defined <= cut).sum()) + 1) / (b + 1),
            p_inferior=(int((defined >= cut).sum()) + 1) / (b + 1),
            detectable_loss_points=detectable_loss(defined, alpha),
        )
    else:
        nan = math.nan
        row.update(
            lower_bound_points=nan,
            upper_bound_points=nan,
            p_noninferior=nan,
            p_inferior=nan,
            detectable_loss_points=nan,
        )
    if all(_at_floor(c) for c in group):
        row["evidence_note"] = "both methods at the metric's floor (0) on every dataset"
    elif undefined_share > MAX_UNDEFINED_SHARE:
        row["evidence_note"] = f"metric undefined in {100 * undefined_share:.0f}% of resamples"
    elif changed < MIN_CHANGED_UNITS and not all(c["primary_metric"] == "accuracy" for c in group):
        row["lower_bound_points"] = math.nan
        row["p_noninferior"] = math.nan
        row["p_inferior"] = math.nan
        row["evidence_note"] = (
            f"{changed} of {units} units changed (fewer than {MIN_CHANGED_UNITS}): too few"
            f" for the bootstrap, and the share of changed units does not bound the loss of"
            f" {group[0]['primary_metric']}"
        )
    elif changed < MIN_CHANGED_UNITS:
        # the exact bound: accuracy loses at most the share of units that changed
        bound = exact_loss_bound(units_changed, alpha)
        row["lower_bound_points"] = -bound
        row["p_noninferior"] = exact_p_value(units_changed, margin)
        row["p_inferior"] = math.nan
        if bound <= margin:
            row["verdict"] = "non-inferior"
            row["evidence_note"] = (
                f"{changed} of {units} units changed: exact bound on the loss {bound:.2g}"
            )
        else:
            row["evidence_note"] = (
                f"{changed} of {units} units changed (fewer than {MIN_CHANGED_UNITS}): the"
                f" exact bound on the loss, {bound:.2g} points, exceeds the margin"
            )
    elif k < 1:
        row["evidence_note"] = f"{b} resamples: too few for a bound at alpha {alpha:g}"
    if "verdict" not in row:
        if row["evidence_note"]:
            row["verdict"] = "insufficient evidence"
        elif row["lower_bound_points"] > cut:
            row["verdict"] = "non-inferior"
        elif row["upper_bound_points"] < cut:
            row["verdict"] = "inferior"
        else:
            row["verdict"] = "inconclusive"
    lower = row["lower_bound_points"]
    row["loss_upper_bound_points"] = math.nan if math.isnan(lower) else max(0.0, -lower)
    return row
