"""Which quantization method to deploy: for each model, the method with the least GPU memory
that is shown non-inferior to the unquantized baseline on every task and prompting method.

Decisions, and why:

* Verdicts, not point estimates. A rule on point estimates ("every change >= -1 point") fails
  a method with no true loss most of the time once there are many (task, prompt) checks, and
  cannot tell "no loss" from "too little data to know". Each (task, prompt) gets a
  non-inferiority verdict instead (:mod:`biomedquant.verdicts`: stratified paired bootstrap
  over the task's datasets, Holm over the method's tests): ``non-inferior``, ``inferior`` or
  ``inconclusive``.
* The recommendation is the least-memory method that is non-inferior on every (task, prompt)
  its model was compared on: a deployment uses one prompt, and this table cannot know which.
  When no method is, the baseline is recommended and the row says so; it also names the
  least-memory method with no ``inferior`` verdict as "not shown to lose" (the data show no
  loss beyond the margin, nor rule one out).
* The minimum detectable loss of a row is the smallest margin its method's tests could have
  established, the largest over its (task, prompt) tests: what the test sets can resolve.
* A method without a comparison for some (task, prompt) its model has, or without a memory
  figure, does not qualify: missing evidence is not evidence of no loss.
* Memory is the measured peak GPU allocation where a GPU run exists, else the fit estimator's
  total (``memory_source`` says which; see :func:`biomedquant.results.deployment_memory`).
  Ties go to the smaller minimum detectable loss. Smallest GPU: the smallest common GPU
  (:data:`biomedquant.gpus.GPU_SIZES_GIB`, as marketed, which are GiB) that holds that memory,
  empty if none does.
* Units: changes, bounds and margins are in points, 1 point = 0.01 on the metric's 0-1 scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomedquant.gpus import smallest_gpu
from biomedquant.io import read_json, write_csv
from biomedquant.results import deployment_memory, read_memory
from biomedquant.verdicts import (
    DEFAULT_ALPHA,
    DEFAULT_MARGIN_POINTS,
    TEST_COLUMNS,
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
    "not_shown_to_lose",
    "not_shown_to_lose_memory_gb",
    "margin_points",
    "alpha",
    "min_detectable_loss_points",
    "min_detectable_loss_method",
    "worst_task",
    "worst_prompt",
    "worst_delta_points",
    "worst_lower_bound_points",
    "non_inferior",
    "not_non_inferior",
    "evidence",
)


def _margin_text(margin: float, task_margins: Mapping[str, float]) -> str:
    extra = "; ".join(f"{t} {m:g}" for t, m in sorted(task_margins.items()))
    return f"{margin:g}" + (f" ({extra})" if extra else "")


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


def recommend(
    comparisons: Sequence[Mapping[str, Any]],
    memory: pd.DataFrame,
    *,
    margin_points: float = DEFAULT_MARGIN_POINTS,
    task_margin_points: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recommendation (one row per model) and its evidence (one verdict per model x
    method x task x prompt), from comparison records and the memory table."""
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
        complete: list[tuple[float, float, str, Any]] = []  # (memory, mdl, method, worst row)
        rejected = []
        for method, g in ev.groupby("method", sort=False):
            gb, _ = mem_of.get((model, method), (math.nan, "unknown"))
            worst = g.loc[g["lower_bound_points"].fillna(-math.inf).idxmin()]
            missing = required - set(zip(g["task"], g["prompt"], strict=True))
            if missing:
                pairs = ", ".join(f"{t} {p}" for t, p in sorted(missing))
                rejected.append(f"{method}: no comparison for {pairs}")
                continue
            if gb is None or math.isnan(gb):
                rejected.append(f"{method}: memory unknown")
                continue
            complete.append((gb, float(worst["min_detectable_loss_points"]), method, g))
            if not (g["verdict"] == "non-inferior").all():
                counts = g["verdict"].value_counts()
                rejected.append(
                    f"{method}: "
                    + ", ".join(
                        f"{counts[v]} {v}" for v in ("inferior", "inconclusive") if v in counts
                    )
                )
        complete.sort(key=lambda c: (c[0], _nan_last(c[1])))
        qualifying = [c for c in complete if (c[3]["verdict"] == "non-inferior").all()]
        unharmed = [c for c in complete if not (c[3]["verdict"] == "inferior").any()]
        chosen = qualifying[0] if qualifying else None
        shown = None if chosen else (unharmed[0] if unharmed else None)
        named = chosen or shown or (complete[0] if complete else None)
        gb, src = (chosen[0], mem_of[(model, chosen[2])][1]) if chosen else (base_gb, base_src)
        saved = (
            100 * (1 - gb / base_gb)
            if not (math.isnan(gb) or math.isnan(base_gb) or base_gb <= 0)
            else math.nan
        )
        worst = (
            None
            if named is None
            else named[3].loc[named[3]["lower_bound_points"].fillna(-math.inf).idxmin()]
        )
        rows.append(
            {
                "model": model,
                "baseline": baseline,
                "recommended": chosen[2] if chosen else baseline,
                "verdict": "non-inferior on every task and prompt"
                if chosen
                else "no method shown non-inferior on every task and prompt: the baseline",
                "memory_gb": gb,
                "memory_source": src,
                "smallest_gpu_gb": _gpu(gb),
                "baseline_memory_gb": base_gb,
                "baseline_smallest_gpu_gb": _gpu(base_gb),
                "memory_saved_pct": saved,
                "not_shown_to_lose": shown[2] if shown else None,
                "not_shown_to_lose_memory_gb": shown[0] if shown else None,
                "margin_points": _margin_text(margin_points, task_margins),
                "alpha": alpha,
                "min_detectable_loss_points": named[1] if named else None,
                "min_detectable_loss_method": named[2] if named else None,
                "worst_task": None if worst is None else worst["task"],
                "worst_prompt": None if worst is None else worst["prompt"],
                "worst_delta_points": None if worst is None else worst["delta_points"],
                "worst_lower_bound_points": None if worst is None else worst["lower_bound_points"],
                "non_inferior": "; ".join(f"{c[2]} ({_fmt_gb(c[0])})" for c in qualifying),
                "not_non_inferior": "; ".join(rejected),
                "evidence": "the baseline itself (the reference)"
                if named is None
                else f"{named[2]}: {_evidence_text(named[3])}",
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
    margin_points: float = DEFAULT_MARGIN_POINTS,
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
