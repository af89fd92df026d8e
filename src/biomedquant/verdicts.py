"""Non-inferiority verdicts: is a quantized method's loss on a task smaller than the margin?

One test per model x method x task x prompting method, on the change of the primary metric
from the unquantized baseline, in points (1 point = 0.01 on the metric's 0-1 scale).

* Pooling over a task's datasets: the task's change is the mean of its datasets' changes, each
  dataset weighted equally. Its bootstrap distribution is a stratified paired bootstrap: every
  dataset is resampled within itself (items, or clusters of items, both systems on the same
  resample) from its own random stream, and resample b of the task is the mean of resample b
  of its datasets. The comparison files carry those resampled differences.
* The test: H0 "the loss is at least the margin" (change <= -margin) against "smaller loss".
  Its bootstrap p-value is ``(#{d* <= -margin} + 1) / (B + 1)``; the mirror test of "the loss
  exceeds the margin" uses ``#{d* >= -margin}``.
* Multiplicity: a recommendation rests on every (task, prompt) test of its method at once, so
  the family-wise error over those tests is controlled with Holm's step-down procedure at
  ``alpha`` (one-sided), separately for the non-inferiority and the inferiority family.
* Verdict: ``non-inferior`` when the Holm-adjusted non-inferiority p-value is <= alpha (the
  lower confidence bound lies above -margin), ``inferior`` when the adjusted inferiority
  p-value is (the upper bound lies below -margin), else ``inconclusive``: the test set cannot
  tell this loss from the margin.
* Bounds are reported at the level Holm assigns the test (``alpha / (m - rank + 1)``), so the
  bound and the verdict agree. The minimum detectable loss is minus the lower bound (0 if the
  bound is a gain): the smallest margin this test could have established.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_MARGIN_POINTS = 1.0
DEFAULT_ALPHA = 0.05
VERDICTS = ("non-inferior", "inconclusive", "inferior")

KEYS = ("model", "method", "baseline", "task", "prompt")
TEST_COLUMNS = (
    *KEYS,
    "n_datasets",
    "datasets",
    "resamples",
    "delta_points",
    "delta_ci_low_points",
    "delta_ci_high_points",
    "margin_points",
    "lower_bound_points",
    "upper_bound_points",
    "p_noninferior",
    "p_noninferior_holm",
    "p_inferior_holm",
    "verdict",
    "min_detectable_loss_points",
)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values: ``max_{j <= i} min(1, (m - j + 1) p_(j))`` in sorted order."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def holm_levels(p_values: Sequence[float], alpha: float) -> np.ndarray:
    """The level Holm compares each test with: ``alpha / (m - rank + 1)``, rank by p."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    ranks = np.empty(m, dtype=int)
    ranks[np.argsort(p, kind="stable")] = np.arange(m)
    return alpha / (m - ranks)


def pooled_draws(draws: Sequence[Sequence[float]]) -> np.ndarray:
    """Resample b of a task: the mean of resample b of its datasets (stratified bootstrap).

    Datasets scored with different resample counts are cut to the smallest; none: empty."""
    arrays = [np.asarray(d, dtype=float) for d in draws]
    if not arrays or min(len(a) for a in arrays) == 0:
        return np.zeros(0)
    b = min(len(a) for a in arrays)
    return np.mean([a[:b] for a in arrays], axis=0)


def task_tests(
    comparisons: Sequence[Mapping[str, Any]],
    *,
    margin_points: float = DEFAULT_MARGIN_POINTS,
    task_margin_points: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """One verdict row per model x method x task x prompt (see the module docstring).

    ``comparisons``: comparison records as :func:`biomedquant.scoring.compare_to_baseline`
    writes them (the primary metric's ``diff`` and ``primary_diff_draws`` are read)."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    margins = dict(task_margin_points or {})
    for name, value in [("margin_points", margin_points), *margins.items()]:
        if value < 0:
            raise ValueError(f"margin must be >= 0 points, got {name}={value}")
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for c in comparisons:
        groups.setdefault(tuple(str(c[k]) for k in KEYS), []).append(c)
    rows: list[dict[str, Any]] = []
    draws_of: list[np.ndarray] = []
    for key, group in groups.items():
        group = sorted(group, key=lambda c: c["dataset"])
        diffs = [float(c["metrics"][c["primary_metric"]]["diff"]) for c in group]
        draws = 100 * pooled_draws([c.get("primary_diff_draws") or [] for c in group])
        margin = float(margins.get(key[3], margin_points))
        delta = 100 * float(np.mean(diffs))
        lo, hi = (
            np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
            if len(draws)
            else (np.nan, np.nan)
        )
        rows.append(
            {
                **dict(zip(KEYS, key, strict=True)),
                "n_datasets": len(group),
                "datasets": ",".join(c["dataset"] for c in group),
                "resamples": len(draws),
                "delta_points": delta,
                "delta_ci_low_points": float(lo),
                "delta_ci_high_points": float(hi),
                "margin_points": margin,
            }
        )
        draws_of.append(draws)
    # Holm within each model x method: the tests one recommendation rests on.
    families: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        families.setdefault((r["model"], r["method"]), []).append(i)
    for members in families.values():
        _decide([rows[i] for i in members], [draws_of[i] for i in members], alpha)
    return rows


def _decide(rows: list[dict[str, Any]], draws: list[np.ndarray], alpha: float) -> None:
    """Fill p-values, Holm adjustments, bounds and verdicts of one family, in place."""
    p_ni, p_inf = [], []
    for r, d in zip(rows, draws, strict=True):
        b, cut = len(d), -r["margin_points"]
        p_ni.append((int((d <= cut).sum()) + 1) / (b + 1) if b else 1.0)
        p_inf.append((int((d >= cut).sum()) + 1) / (b + 1) if b else 1.0)
    adj_ni, adj_inf = holm(p_ni), holm(p_inf)
    lev_ni, lev_inf = holm_levels(p_ni, alpha), holm_levels(p_inf, alpha)
    for i, (r, d) in enumerate(zip(rows, draws, strict=True)):
        lower = float(np.quantile(d, lev_ni[i])) if len(d) else np.nan
        upper = float(np.quantile(d, 1 - lev_inf[i])) if len(d) else np.nan
        if adj_ni[i] <= alpha:
            verdict = "non-inferior"
        elif adj_inf[i] <= alpha:
            verdict = "inferior"
        else:
            verdict = "inconclusive"
        r.update(
            {
                "lower_bound_points": lower,
                "upper_bound_points": upper,
                "p_noninferior": p_ni[i],
                "p_noninferior_holm": float(adj_ni[i]),
                "p_inferior_holm": float(adj_inf[i]),
                "verdict": verdict,
                "min_detectable_loss_points": max(0.0, -lower) if len(d) else np.nan,
            }
        )
