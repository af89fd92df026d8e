"""The recommendation figure: both criteria of the choice (accuracy against the margin, and
memory) on one row per model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import method_verdicts, read_recommendation
from biomedquant.report.figures.draw import (
    fig_legend,
    gpu_lines,
    legend_handles,
    log_axis,
    no_data_figure,
    save_figure,
    subplots,
    suptitle,
)
from biomedquant.report.figures.style import Order, styled

# Recommendation figure: a method's verdict over all its tests.
MARKERS = {"non-inferior": "o", "inconclusive": "D", "inferior": "X"}


@styled
def plot_recommendation(
    recommendation_path: str | Path,
    evidence_path: str | Path,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
) -> None:
    """Per model: each method's binding test (the task and prompt with the lowest lower bound:
    its change, and the one-sided bound as a line) against the margin (left), and its memory
    (right), the recommended method ringed. Marker: circle non-inferior on every test, diamond
    some test inconclusive or without evidence, cross some test inferior. Both criteria of the
    choice on one row."""
    import numpy as np
    import pandas as pd
    from matplotlib.lines import Line2D

    rec, ev = read_recommendation(recommendation_path, evidence_path)
    if rec.empty:
        no_data_figure(
            out_paths,
            "Recommendation",
            "Nothing to recommend: no model has both comparisons with a baseline and memory.",
        )
        return
    order = (order or Order()).with_data(ev, rec.rename(columns={"recommended": "method"}))
    models = Order.sort(order.models, rec["model"])
    margin = float(pd.to_numeric(ev["margin_points"]).min()) if len(ev) else 1.0
    # One row per (model, method): the binding (task, prompt) test and the method's memory.
    rows = method_verdicts(ev)
    base = rec[["model", "baseline", "baseline_memory_gb"]].rename(
        columns={"baseline": "method", "baseline_memory_gb": "memory_gb"}
    )
    base = base.assign(delta_points=0.0, qualifies="non-inferior", memory_source="")
    rows = pd.concat([base, rows], ignore_index=True)
    methods = Order.sort(order.methods, rows["method"])
    n_methods = len(methods)
    fig, axes = subplots(
        1, 2, 4.2, max(2.0, 0.16 * n_methods * len(models) + 0.6), extra_h=1.6, sharey=True
    )
    left, right = axes[0]
    step = 0.8 / n_methods
    y_of = {m: i for i, m in enumerate(models)}
    finite_mem = pd.to_numeric(rows["memory_gb"], errors="coerce")
    for row in rows.itertuples():
        y = y_of[row.model] + (methods.index(row.method) - (n_methods - 1) / 2) * step
        color = order.color(row.method)
        marker = MARKERS[row.qualifies]
        lo = getattr(row, "lower_bound_points", float("nan"))
        if not pd.isna(lo):
            left.plot([lo, row.delta_points], [y, y], color=color, lw=1.0)
            left.plot([lo], [y], marker="|", color=color, ms=7)
        left.scatter(
            row.delta_points,
            y,
            marker=marker,
            s=26,
            color=color,
            edgecolor="black",
            linewidth=0.4,
            zorder=3,
        )
        memory = pd.to_numeric(row.memory_gb, errors="coerce")
        if not pd.isna(memory):
            right.scatter(
                memory,
                y,
                marker=marker,
                s=26,
                color=color,
                edgecolor="black",
                linewidth=0.4,
                zorder=3,
            )
    for r in rec.itertuples():
        if r.recommended not in methods:
            continue
        y = y_of[r.model] + (methods.index(r.recommended) - (n_methods - 1) / 2) * step
        memory = pd.to_numeric(r.memory_gb, errors="coerce")
        if pd.isna(memory):
            continue
        right.scatter(memory, y, s=140, facecolor="none", edgecolor="black", lw=1.4, zorder=4)
        gpu = r.smallest_gpu_gb
        fits = f", fits {gpu:g} GB" if not pd.isna(gpu) else ", fits no common GPU"
        right.annotate(
            f"{r.recommended}: {memory:.3g} GB{fits}",
            (memory, y),
            xytext=(9, 0),
            textcoords="offset points",
            va="center",
            fontsize=6.5,
        )
    left.axvspan(
        -margin,
        max(margin, float(np.nanmax(rows["delta_points"])) + 1),
        color="#009E73",
        alpha=0.12,
        lw=0,
    )
    left.axvline(-margin, color="#009E73", lw=1.0)
    left.axvline(0, color="black", lw=0.6)
    left.set_xlabel("change (points), bar: one-sided lower bound, binding task and prompt")
    left.set_title(f"accuracy: loss shown smaller than {margin:g} point(s)?")
    left.set_yticks(range(len(models)), models)
    left.set_ylim(len(models) - 0.5, -0.5)
    left.grid(axis="x", alpha=0.3)
    if finite_mem.notna().any():
        lo, hi = float(finite_mem.min()), float(finite_mem.max())
        log_axis(right, "x")
        right.set_xlim(lo / 2, hi * 8)
        gpu_lines(right, axis="x", lo=lo / 2, hi=hi * 8)
    right.set_xlabel("GPU memory (GB, log)")
    right.set_title("memory: the least among the non-inferior (ringed)")
    right.grid(axis="x", alpha=0.3)
    handles = legend_handles(order, methods) + [
        Line2D([], [], marker=MARKERS[v], ls="", mfc="#777777", mec="black", label=label)
        for v, label in (
            ("non-inferior", "non-inferior on every test"),
            ("inconclusive", "some test inconclusive or without evidence"),
            ("inferior", "some test inferior"),
        )
    ]
    fig_legend(fig, handles, "quantization method")
    suptitle(
        fig,
        "Recommendation: methods tested from the most to the least memory, each non-inferior to "
        "the baseline on every task and prompt (one-sided bootstrap bounds), until one is not",
    )
    save_figure(fig, out_paths)
