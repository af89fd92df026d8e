"""The study's tidy tables read back, and the tables derived from them.

One reading of ``results/tables/*.csv`` for every consumer: the figures, the recommendation,
the report pages and the notebook. Reading them in one place keeps the types the same
everywhere (CSV booleans as booleans, names as strings even when a model is called ``7b``)
and keeps the analysis free of the plotting code: :mod:`biomedquant.analysis.recommendation` needs
the deployment memory, not matplotlib.

Units: scores and changes on the metric's 0-1 scale (the figures and pages show points, x100);
memory in GB (10^9 bytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Columns that hold names: read as text, so that a model named "8b" or a method named "1"
# stays a name and sorts like the config's other names.
NAME_COLUMNS = ("model", "method", "baseline", "dataset", "prompt", "metric", "task", "label")


def truthy(values: pd.Series) -> pd.Series:
    """CSV booleans (``True``/``False`` as text) as booleans."""
    return values.astype(str).str.strip().str.lower().isin(("true", "1", "yes"))


def read_table(path: str | Path) -> pd.DataFrame:
    """Any of the tables as written (empty cells as NaN)."""
    import pandas as pd

    return pd.read_csv(path, keep_default_na=True)


def _names_as_text(df: pd.DataFrame, columns: Sequence[str] = NAME_COLUMNS) -> pd.DataFrame:
    for col in columns:
        if col in df:
            df[col] = df[col].astype(str)
    return df


def read_scores(path: str | Path, *, primary_only: bool = False) -> pd.DataFrame:
    """The tidy score table (one row per model x method x dataset x prompt x metric).

    Scores are on the metric's 0-1 scale. ``primary_only`` keeps the benchmark's primary metric
    (NER F1, relation extraction and multi-label macro-F1, QA accuracy).
    """
    df = read_table(path)
    df["primary"] = truthy(df["primary"])
    _names_as_text(df, ("model", "method", "dataset", "prompt", "metric", "task"))
    return df[df["primary"]].reset_index(drop=True) if primary_only else df


def read_comparisons(path: str | Path, *, primary_only: bool = False) -> pd.DataFrame:
    """The comparison table: each quantized run against the baseline on the same items.

    ``diff`` = method - baseline on the 0-1 scale, with its paired-bootstrap interval
    (``diff_ci_low``, ``diff_ci_high``), ``p_value`` and ``flip_rate``.
    """
    return read_scores(path, primary_only=primary_only)


def read_comparisons_by_label(path: str | Path) -> pd.DataFrame:
    """The per-label comparison table (one row per model x method x dataset x prompt x label)."""
    return _names_as_text(read_table(path), ("model", "method", "prompt", "dataset", "label"))


def numeric(df: pd.DataFrame, col: str) -> pd.Series:
    """Column ``col`` as numbers (NaN where empty, unparsable or missing altogether)."""
    import pandas as pd

    if col not in df:
        return pd.Series(float("nan"), index=df.index)
    return pd.to_numeric(df[col], errors="coerce")


def deployment_memory(memory: pd.DataFrame) -> pd.DataFrame:
    """Add ``memory_gb`` and ``memory_source``: the GPU memory a deployment needs.

    One source per model, so that its methods are ranked on the same quantity: the measured
    peak GPU allocation when every method of the model has one (``measured``), else the fit
    estimator's total with KV cache and overhead for all of them (``estimated``). A measured
    peak (no CUDA context, this run's batches) and an estimate (KV cache for the token budget
    plus 1 GiB and 5%) are different quantities; ranking one method by each would pick
    whichever was measured. Measured weights alone (``weights_gb``, also known on a CPU)
    leave out the KV cache and the runtime, so they are not used here either.
    """
    import numpy as np

    out = memory.copy()
    measured = numeric(out, "peak_gpu_allocated_gb")
    estimated = numeric(out, "est_total_gb")
    has_measured = measured.notna() & (measured > 0)
    if "model" in out and len(out):
        has_measured = has_measured.groupby(out["model"]).transform("all").astype(bool)
    out["memory_gb"] = measured.where(has_measured, estimated)
    out["memory_source"] = np.where(
        has_measured, "measured", np.where(estimated.notna(), "estimated", "unknown")
    )
    return out


def read_memory(path: str | Path) -> pd.DataFrame:
    """The memory table (one row per model x method) with :func:`deployment_memory` added."""
    df = _names_as_text(read_table(path), ("model", "method"))
    if "measured" in df:
        df["measured"] = truthy(df["measured"])
    return deployment_memory(df)


def read_recommendation(
    recommendation_path: str | Path, evidence_path: str | Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recommendation (one row per model) and its evidence (one test per row)."""
    columns = ("model", "method", "recommended", "baseline")
    rec = _names_as_text(read_table(recommendation_path), columns)
    return rec, _names_as_text(read_table(evidence_path), columns)


def read_verdicts(evidence_path: str | Path | None) -> pd.DataFrame:
    """The recommendation's tests (one verdict per model x method x task x prompting method,
    with its one-sided bounds in points), bounds as numbers; empty where there is no file."""
    import pandas as pd

    if not evidence_path or not Path(evidence_path).exists():
        return pd.DataFrame(columns=["model", "method", "task", "prompt", "verdict"])
    df = _names_as_text(read_table(evidence_path))
    for col in ("delta_points", "lower_bound_points", "upper_bound_points", "margin_points"):
        df[col] = numeric(df, col)
    return df


def task_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Primary score per model x method x prompt x task: the mean over the task's datasets.

    Equal weight per dataset, so a task's larger test set does not drown the other.
    """
    primary = scores[scores["primary"]] if "primary" in scores else scores
    return (
        primary.groupby(["model", "method", "prompt", "task"], as_index=False)
        .agg(value=("value", "mean"), n_datasets=("dataset", "nunique"))
        .reset_index(drop=True)
    )


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: less or equal memory and a higher score,
    ordered by memory (the trade-off frontier: each step buys score with memory)."""
    ranked = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in ranked:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def method_verdicts(evidence: pd.DataFrame) -> pd.DataFrame:
    """One row per model x method of the recommendation's evidence: its binding test (the task
    and prompt with the lowest lower bound: ``delta_points``, ``lower_bound_points``), its
    verdict over all its tests (``qualifies``: inferior if any test is, non-inferior if every
    test is, else inconclusive) and its memory."""
    # drop_duplicates, not groupby.first: first() would mix rows where a bound is empty
    worst = evidence.sort_values("lower_bound_points", kind="stable", na_position="first")
    worst = worst.drop_duplicates(["model", "method"])[
        ["model", "method", "delta_points", "lower_bound_points"]
    ]
    verdict = (
        evidence.groupby(["model", "method"])["verdict"]
        .agg(
            lambda v: (
                "inferior"
                if (v == "inferior").any()
                else ("non-inferior" if (v == "non-inferior").all() else "inconclusive")
            )
        )
        .rename("qualifies")
    )
    mem = evidence.groupby(["model", "method"], as_index=False)[
        ["memory_gb", "memory_source"]
    ].first()
    return worst.merge(verdict.reset_index(), on=["model", "method"]).merge(
        mem, on=["model", "method"]
    )
