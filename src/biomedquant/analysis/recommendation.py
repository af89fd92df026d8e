"""Which quantization method to deploy: for each model, the least-memory method that is shown
non-inferior to the unquantized baseline on every task and prompting method, by a rule whose
claim keeps its error rate.

Decisions, and why:

* Verdicts, not point estimates. A rule on point estimates ("every change >= -1 point") fails
  a method with no true loss most of the time once there are many (task, prompt) checks, and
  cannot tell "no loss" from "too little data to know". Each (task, prompt) gets a
  non-inferiority verdict instead (:mod:`biomedquant.evaluation.stats.verdicts`): ``non-inferior``,
  ``inferior``, ``inconclusive`` or ``insufficient evidence``.
* Per method, intersection-union: "non-inferior on every test" holds only if each test
  passes, so each test runs at ``alpha`` and the claim's error rate is at most ``alpha``
  without any correction across its tests (a correction there, such as Holm's, only makes a
  method with no loss fail more often).
* Across methods, a fixed sequence: methods are tested from the most to the least memory, and
  the sequence stops at the first method not non-inferior on every test; the recommendation is
  the last method that passed (the baseline when none did). Picking the cheapest of all
  passing methods would test every method and keep the best outcome, which no longer has the
  level ``alpha``; the fixed sequence does (each step is tested only after every larger method
  passed). Memory ties keep the config's order.
* ``shown_non_inferior`` lists every method the sequence passed before it stopped: the fixed
  sequence controls the error rate of all these claims together, so the deployment answer
  (:mod:`biomedquant.analysis.deployment`) may pick any of them that fits a lab's hardware.
* ``lowest_loss_bound_method`` ranks every method with complete evidence by the largest loss
  its tests leave open (the worst test's upper bound of the loss): a ranking to read beside
  the verdicts, never a verdict itself.
* A method without a comparison for some (task, prompt) its model has, or without a memory
  figure, is not tested: missing evidence is not evidence of no loss.
* Memory is the measured peak GPU allocation where a GPU run exists, else the fit estimator's
  total (``memory_source`` says which; see :func:`biomedquant.analysis.tables.deployment_memory`).
  Smallest GPU: the smallest common GPU (:data:`biomedquant.common.gpus.GPU_SIZES_GIB`, as
  marketed, which are GiB) that holds that memory, empty if none does.
* Units: changes, bounds and margins are in points, 1 point = 0.01 on the metric's 0-1 scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomedquant.analysis.tables import deployment_memory, read_memory
from biomedquant.common.files import read_json, write_csv
from biomedquant.common.gpus import smallest_gpu
from biomedquant.evaluation.stats.verdicts import (
    DEFAULT_ALPHA,
    TEST_COLUMNS,
    VERDICTS,
    task_tests,
)

if TYPE_CHECKING:
    import pandas as pd

EVIDENCE_COLUMNS = (*TEST_COLUMNS, "memory_gb", "memory_source")
RECOMMENDATION_COLUMNS = (
    "model",
    "baseline",
    "recommended",
    "verdict",
    "memory_gb",
    "memory_source",
    "smallest_gpu_gb",
    "baseline_memory_gb",
    "baseline_smallest_gpu_gb",
    "memory_saved_pct",
    "margin_points",
    "alpha",
    "sequence",
    "shown_non_inferior",
    "loss_upper_bound_points",
    "detectable_loss_points",
    "worst_task",
    "worst_prompt",
    "worst_delta_points",
    "worst_lower_bound_points",
    "lowest_loss_bound_method",
    "lowest_loss_bound_points",
    "not_tested",
    "evidence",
)


def _margin_text(margins: Mapping[str, float]) -> str:
    return "; ".join(f"{t} {m:g}" for t, m in sorted(margins.items()))


def _evidence_text(g: pd.DataFrame) -> str:
    parts = []
    for r in g.sort_values(["task", "prompt"]).itertuples():
        bound = "" if math.isnan(r.lower_bound_points) else f" (>= {r.lower_bound_points:+.1f})"
        parts.append(f"{r.task} {r.prompt} {r.delta_points:+.1f}{bound} {r.verdict}")
    return "; ".join(parts)


def _fmt_gb(gb: float) -> str:
    return "memory unknown" if gb is None or math.isnan(gb) else f"{gb:.3g} GB"


def _gpu(gb: float) -> int | None:
    return None if gb is None or math.isnan(gb) else smallest_gpu(gb)


def _outcome(g: pd.DataFrame) -> str:
    counts = g["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)


def _worst(g: pd.DataFrame) -> pd.Series:
    return g.loc[g["lower_bound_points"].fillna(-math.inf).idxmin()]


def recommend(
    comparisons: Sequence[Mapping[str, Any]],
    memory: pd.DataFrame,
    *,
    margin_points: float | None = None,
    task_margin_points: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recommendation (one row per model) and its evidence (one verdict per model x
    method x task x prompt), from comparison records and the memory table (see the module
    docstring for the rule)."""
    import pandas as pd

    task_margins = dict(task_margin_points or {})
    tests = task_tests(
        comparisons, margin_points=margin_points, task_margin_points=task_margins, alpha=alpha
    )
    if "memory_gb" not in memory:
        memory = deployment_memory(memory)
    mem = memory[["model", "method", "memory_gb", "memory_source"]].drop_duplicates(
        ["model", "method"]
    )
    mem = mem.astype({"model": str, "method": str})
    evidence = pd.DataFrame(tests, columns=list(TEST_COLUMNS))
    evidence = evidence.merge(mem, on=["model", "method"], how="left")[list(EVIDENCE_COLUMNS)]
    mem_of = {(r.model, r.method): (r.memory_gb, r.memory_source) for r in mem.itertuples()}

    rows: list[dict[str, Any]] = []
    for model, ev in evidence.groupby("model", sort=False):
        baseline = str(ev["baseline"].iloc[0])
        required = set(zip(ev["task"], ev["prompt"], strict=True))
        base_gb, base_src = mem_of.get((model, baseline), (math.nan, "unknown"))
        margins = {t: m for t, m in zip(ev["task"], ev["margin_points"], strict=True)}
        tested: list[tuple[float, int, str, pd.DataFrame]] = []  # (memory, order, method, tests)
        not_tested = []
        for order, (method, g) in enumerate(ev.groupby("method", sort=False)):
            gb, _ = mem_of.get((model, method), (math.nan, "unknown"))
            missing = required - set(zip(g["task"], g["prompt"], strict=True))
            if missing:
                pairs = ", ".join(f"{t} {p}" for t, p in sorted(missing))
                not_tested.append(f"{method}: no comparison for {pairs}")
            elif gb is None or math.isnan(gb):
                not_tested.append(f"{method}: memory unknown")
            else:
                tested.append((gb, order, method, g))
        tested.sort(key=lambda t: (-t[0], t[1]))  # most memory first; ties: config order
        chosen = None
        steps = []
        passed_methods = []
        for gb, _, method, g in tested:
            passed = bool((g["verdict"] == "non-inferior").all())
            steps.append(f"{method} ({_fmt_gb(gb)}): {_outcome(g)}")
            if not passed:
                steps[-1] += " - the sequence stops"
                break
            chosen = (gb, method, g)
            passed_methods.append(method)
        ranked = sorted(
            tested, key=lambda t: (_nan_last(t[3]["loss_upper_bound_points"].max()), t[0])
        )
        named = chosen or ((tested[0][0], tested[0][2], tested[0][3]) if tested else None)
        gb, src = (chosen[0], mem_of[(model, chosen[1])][1]) if chosen else (base_gb, base_src)
        saved = (
            100 * (1 - gb / base_gb)
            if not (math.isnan(gb) or math.isnan(base_gb) or base_gb <= 0)
            else math.nan
        )
        worst = None if named is None else _worst(named[2])
        rows.append(
            {
                "model": model,
                "baseline": baseline,
                "recommended": chosen[1] if chosen else baseline,
                "verdict": "non-inferior on every task and prompt"
                if chosen
                else "no method shown non-inferior on every task and prompt: the baseline",
                "memory_gb": gb,
                "memory_source": src,
                "smallest_gpu_gb": _gpu(gb),
                "baseline_memory_gb": base_gb,
                "baseline_smallest_gpu_gb": _gpu(base_gb),
                "memory_saved_pct": saved,
                "margin_points": _margin_text(margins),
                "alpha": alpha,
                "sequence": "; ".join(steps),
                "shown_non_inferior": ";".join(passed_methods),
                "loss_upper_bound_points": None
                if named is None
                else float(named[2]["loss_upper_bound_points"].max()),
                "detectable_loss_points": None
                if named is None
                else float(named[2]["detectable_loss_points"].max()),
                "worst_task": None if worst is None else worst["task"],
                "worst_prompt": None if worst is None else worst["prompt"],
                "worst_delta_points": None if worst is None else worst["delta_points"],
                "worst_lower_bound_points": None if worst is None else worst["lower_bound_points"],
                "lowest_loss_bound_method": ranked[0][2] if ranked else None,
                "lowest_loss_bound_points": float(ranked[0][3]["loss_upper_bound_points"].max())
                if ranked
                else None,
                "not_tested": "; ".join(not_tested),
                "evidence": "the baseline itself (the reference)"
                if named is None
                else f"{named[1]}: {_evidence_text(named[2])}",
            }
        )
    return pd.DataFrame(rows, columns=list(RECOMMENDATION_COLUMNS)), evidence


def _nan_last(v: float) -> float:
    return math.inf if v is None or math.isnan(v) else v


def _write(df: pd.DataFrame, path: str | Path) -> None:
    """The table at four decimals, through the one CSV writer (missing values as empty
    cells, as pandas would write them)."""
    rounded = df.round(4).astype(object)
    rows = rounded.where(df.notna(), None).to_dict("records")
    write_csv(path, list(df.columns), rows)


def write_recommendation(
    comparison_paths: Sequence[str | Path],
    memory_path: str | Path,
    out_path: str | Path,
    evidence_path: str | Path,
    *,
    margin_points: float | None = None,
    task_margin_points: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> pd.DataFrame:
    """Read the comparison files (they carry the resampled differences the verdicts pool)
    and the memory table; write the recommendation and its evidence."""
    rec, evidence = recommend(
        [read_json(p) for p in comparison_paths],
        read_memory(memory_path),
        margin_points=margin_points,
        task_margin_points=task_margin_points,
        alpha=alpha,
    )
    _write(rec, out_path)
    _write(evidence, evidence_path)
    return rec
