"""Which quantization method to deploy: for each model, the method with the least GPU memory
whose primary score stays within a tolerance of the unquantized baseline on every task.

Decisions, and why:

* Units. Scores and their changes are on the metric's 0-1 scale (see ``scoring.py``); the
  tolerance is in points, 1 point = 0.01, the unit in which losses are stated ("within one
  point of F1"). The tables written here carry points as well, in columns named ``*_points``.
* Task, not dataset. The change on a task is the mean of the primary-metric changes on its
  datasets, each dataset weighted equally (a task's larger test set does not drown the other).
  Its interval combines the datasets' paired-bootstrap intervals as independent estimates
  (different test sets): on each side, the root of the summed squared half-widths divided by
  the number of datasets (a normal approximation); with one dataset it is that interval.
* Every task under every prompting method that was run must pass: a deployment uses one
  prompt, and this table cannot know which.
* Pass means point estimate >= -tolerance; gains always pass. The interval is the evidence, not
  the criterion: on small test sets "the interval excludes a one-point loss" would pass nothing
  and "the interval contains 0" would pass everything.
* A method without a comparison for some (task, prompt) its model has, or without a memory
  figure, does not qualify: missing evidence is not evidence of no loss.
* Memory is the measured peak GPU allocation where a GPU run exists, else the fit estimator's
  total (``memory_source`` says which; see :func:`biomedquant.figures.deployment_memory`).
  Ties go to the smaller worst-case loss. The baseline always qualifies (it is the reference),
  so every model gets a recommendation, the baseline itself when every method loses too much.
* Smallest GPU: the smallest common GPU (24, 40, 48, 80 GB as marketed, which are GiB) that
  holds that memory, empty if none does: :func:`biomedquant.plan.smallest_gpu`, as in the fit
  table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomedquant.figures import deployment_memory, read_comparisons, read_memory
from biomedquant.io import atomic_path
from biomedquant.plan import smallest_gpu

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_TOLERANCE_POINTS = 1.0
# Float noise in diff means must not flip a change of exactly -tolerance.
_EPS = 1e-9

EVIDENCE_COLUMNS = (
    "model",
    "method",
    "baseline",
    "task",
    "prompt",
    "n_datasets",
    "datasets",
    "delta_points",
    "delta_ci_low_points",
    "delta_ci_high_points",
    "within_tolerance",
    "memory_gb",
    "memory_source",
)
RECOMMENDATION_COLUMNS = (
    "model",
    "baseline",
    "recommended",
    "memory_gb",
    "memory_source",
    "smallest_gpu_gb",
    "baseline_memory_gb",
    "baseline_smallest_gpu_gb",
    "memory_saved_pct",
    "tolerance_points",
    "worst_task",
    "worst_prompt",
    "worst_delta_points",
    "worst_delta_ci_low_points",
    "worst_delta_ci_high_points",
    "qualifying",
    "not_qualifying",
    "evidence",
)


def _quadrature(half_widths: pd.Series) -> float:
    """Half-width of the mean of independent estimates with these half-widths."""
    if half_widths.isna().any() or len(half_widths) == 0:
        return math.nan
    return math.sqrt(float((half_widths**2).sum())) / len(half_widths)


def task_changes(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Change of the primary metric per model x method x task x prompt, in points: the mean
    over the task's datasets, with the combined interval (see the module docstring)."""
    import pandas as pd

    primary = comparisons[comparisons["primary"]] if "primary" in comparisons else comparisons
    rows = []
    keys = ["model", "method", "baseline", "task", "prompt"]
    for key, g in primary.groupby(keys, sort=False):
        diff = g["diff"].astype(float)
        lo = diff - g["diff_ci_low"].astype(float)
        hi = g["diff_ci_high"].astype(float) - diff
        mean = float(diff.mean())
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "n_datasets": int(g["dataset"].nunique()),
                "datasets": ",".join(sorted(g["dataset"].astype(str).unique())),
                "delta_points": 100 * mean,
                "delta_ci_low_points": 100 * (mean - _quadrature(lo)),
                "delta_ci_high_points": 100 * (mean + _quadrature(hi)),
            }
        )
    return pd.DataFrame(rows, columns=list(EVIDENCE_COLUMNS[:10]))


def _evidence_text(g: pd.DataFrame) -> str:
    parts = []
    for r in g.sort_values(["task", "prompt"]).itertuples():
        ci = (
            ""
            if math.isnan(r.delta_ci_low_points) or math.isnan(r.delta_ci_high_points)
            else f" [{r.delta_ci_low_points:+.1f}, {r.delta_ci_high_points:+.1f}]"
        )
        parts.append(f"{r.task} {r.prompt} {r.delta_points:+.1f}{ci}")
    return "; ".join(parts)


def _fmt_gb(gb: float) -> str:
    return "memory unknown" if gb is None or math.isnan(gb) else f"{gb:.3g} GB"


def recommend(
    comparisons: pd.DataFrame,
    memory: pd.DataFrame,
    *,
    tolerance_points: float = DEFAULT_TOLERANCE_POINTS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recommendation (one row per model) and its evidence (one row per model x method x
    task x prompt), from the comparison table and the memory table."""
    import pandas as pd

    if tolerance_points < 0:
        raise ValueError(f"tolerance must be >= 0 points, got {tolerance_points}")
    if "memory_gb" not in memory:
        memory = deployment_memory(memory)
    mem = memory[["model", "method", "memory_gb", "memory_source"]].drop_duplicates(
        ["model", "method"]
    )
    changes = task_changes(comparisons)
    evidence = changes.merge(mem, on=["model", "method"], how="left")
    evidence["within_tolerance"] = evidence["delta_points"] >= -tolerance_points - _EPS
    evidence = evidence[list(EVIDENCE_COLUMNS)]
    mem_of = {(r.model, r.method): (r.memory_gb, r.memory_source) for r in mem.itertuples()}

    rows: list[dict[str, Any]] = []
    for model, ev in evidence.groupby("model", sort=False):
        baseline = str(ev["baseline"].iloc[0])
        required = set(zip(ev["task"], ev["prompt"], strict=True))
        base_gb, base_src = mem_of.get((model, baseline), (math.nan, "unknown"))
        # (sort key, method, memory, source, worst row or None)
        candidates: list[tuple[tuple[float, float], str, float, str, Any]] = [
            ((_inf_if_nan(base_gb), 0.0), baseline, base_gb, base_src, None)
        ]
        rejected = []
        for method, g in ev.groupby("method", sort=False):
            gb, src = mem_of.get((model, method), (math.nan, "unknown"))
            worst = g.loc[g["delta_points"].idxmin()]
            missing = required - set(zip(g["task"], g["prompt"], strict=True))
            if missing:
                pairs = ", ".join(f"{t} {p}" for t, p in sorted(missing))
                rejected.append(f"{method}: no comparison for {pairs}")
            elif not g["within_tolerance"].all():
                rejected.append(
                    f"{method}: {worst['task']} {worst['prompt']} {worst['delta_points']:+.1f}"
                )
            elif gb is None or math.isnan(gb):
                rejected.append(f"{method}: memory unknown")
            else:
                candidates.append(((gb, -float(worst["delta_points"])), method, gb, src, worst))
        candidates.sort(key=lambda c: c[0])
        _, chosen, gb, src, worst = candidates[0]
        gpu = _gpu(gb)
        saved = (
            100 * (1 - gb / base_gb)
            if not (math.isnan(gb) or math.isnan(base_gb) or base_gb <= 0)
            else math.nan
        )
        rows.append(
            {
                "model": model,
                "baseline": baseline,
                "recommended": chosen,
                "memory_gb": gb,
                "memory_source": src,
                "smallest_gpu_gb": gpu,
                "baseline_memory_gb": base_gb,
                "baseline_smallest_gpu_gb": _gpu(base_gb),
                "memory_saved_pct": saved,
                "tolerance_points": tolerance_points,
                "worst_task": None if worst is None else worst["task"],
                "worst_prompt": None if worst is None else worst["prompt"],
                "worst_delta_points": None if worst is None else worst["delta_points"],
                "worst_delta_ci_low_points": None
                if worst is None
                else worst["delta_ci_low_points"],
                "worst_delta_ci_high_points": None
                if worst is None
                else worst["delta_ci_high_points"],
                "qualifying": "; ".join(f"{c[1]} ({_fmt_gb(c[2])})" for c in candidates),
                "not_qualifying": "; ".join(rejected),
                "evidence": "the baseline itself (the reference)"
                if worst is None
                else _evidence_text(ev[ev["method"] == chosen]),
            }
        )
    return pd.DataFrame(rows, columns=list(RECOMMENDATION_COLUMNS)), evidence


def _gpu(gb: float) -> int | None:
    return None if gb is None or math.isnan(gb) else smallest_gpu(gb)


def _inf_if_nan(v: float) -> float:
    return math.inf if v is None or math.isnan(v) else v


def _write(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.round(4).to_csv(tmp, index=False)


def write_recommendation(
    comparisons_path: str | Path,
    memory_path: str | Path,
    out_path: str | Path,
    evidence_path: str | Path,
    *,
    tolerance_points: float = DEFAULT_TOLERANCE_POINTS,
) -> pd.DataFrame:
    """Read the comparison and memory tables, write the recommendation and its evidence."""
    rec, evidence = recommend(
        read_comparisons(comparisons_path, primary_only=True),
        read_memory(memory_path),
        tolerance_points=tolerance_points,
    )
    _write(rec, out_path)
    _write(evidence, evidence_path)
    return rec
