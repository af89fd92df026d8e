"""Memory: GPU memory per model and method, memory against score, and the fit estimator
against measurement. Measured memory is drawn solid, the fit estimator's hatched or hollow and
labelled "estimated", never passed off as a measurement."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from biomedquant.analysis.tables import numeric, pareto_front, read_memory, read_scores, task_scores
from biomedquant.report.figures.draw import (
    bar_labels,
    empty_panel,
    fig_legend,
    gpu_lines,
    legend_handles,
    log_axis,
    no_data_figure,
    save_figure,
    subplots,
    suptitle,
)
from biomedquant.report.figures.style import ESTIMATED_HATCH, TASK_TITLES, Order, styled

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _memory_legend(fig: Figure, order: Order, methods: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = legend_handles(order, methods) + [
        Patch(facecolor="#777777", edgecolor="black", label="measured (peak GPU allocated)"),
        Patch(
            facecolor="white",
            edgecolor="#777777",
            hatch=ESTIMATED_HATCH,
            label="estimated (fit estimator)",
        ),
    ]
    fig_legend(fig, handles, "quantization method; memory")


@styled
def plot_memory(
    memory_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """GPU memory per model and method as bars on a linear axis, with the common GPU sizes (as
    marketed, drawn at what the fit rule lets one hold) as lines.

    Measured peak allocation where a GPU run exists (solid), the fit estimator otherwise
    (hatched): a reader sees at once which numbers come from a run.
    """
    import numpy as np

    mem = read_memory(memory_path)
    mem = mem[mem["memory_gb"].notna()]
    if mem.empty:
        no_data_figure(out_paths, "GPU memory", f"{memory_path} holds no memory figures.")
        return
    order = (order or Order()).with_data(mem)
    models = Order.sort(order.models, mem["model"])
    methods = Order.sort(order.methods, mem["method"])
    n_bars = len(models) * len(methods)
    fig, axes = subplots(1, 1, max(4.5, 0.16 * n_bars + 2.0), 3.6, extra_h=1.4)
    ax = axes[0, 0]
    width = 0.8 / len(methods)
    x = np.arange(len(models))
    for k, method in enumerate(methods):
        m = mem[mem["method"] == method].set_index("model").reindex(models)
        vals = m["memory_gb"].to_numpy(dtype=float)
        pos = x + (k - (len(methods) - 1) / 2) * width
        measured = (m["memory_source"] == "measured").to_numpy()
        color = order.color(method)
        for p, v, is_measured in zip(pos, vals, measured, strict=True):
            if np.isnan(v):
                continue
            ax.bar(
                p,
                v,
                width,
                color=color if is_measured else "white",
                edgecolor=color if not is_measured else "black",
                hatch=None if is_measured else ESTIMATED_HATCH,
                linewidth=0.8 if not is_measured else 0.3,
            )
        if n_bars <= 40:
            bar_labels(ax, pos, vals)
    # a linear axis: a bar's length is the memory (on a log axis it would mean nothing)
    top = float(mem["memory_gb"].max())
    ax.set_ylim(0, max(top * 1.15, 1.0))
    gpu_lines(ax, lo=0, hi=max(top * 1.15, 1.0))
    ax.set_xticks(
        x,
        models,
        rotation=30 if len(models) > 4 else 0,
        ha="right" if len(models) > 4 else "center",
    )
    ax.set_ylabel("GPU memory (GB)")
    ax.grid(axis="y", which="major", alpha=0.3)
    _memory_legend(fig, order, methods)
    suptitle(fig, "GPU memory per model and quantization method")
    save_figure(fig, out_paths)


def _label_points(
    ax: Axes, points: list[tuple[float, float, str]], *, xlim: tuple[float, float]
) -> None:
    """Label points left to right, skipping a label that would overlap one already placed
    (x on a log axis within ``xlim``, y within 0-1): a crowded frontier stays readable."""
    span = math.log10(xlim[1]) - math.log10(xlim[0])
    placed: list[tuple[float, float, float, float]] = []
    for x, y, text in sorted(points):
        # label box in axes fractions: 5.5 pt characters, offset right and up of the point
        fx = (math.log10(x) - math.log10(xlim[0])) / span
        fy = y / 1.08
        w, h = len(text) * 0.028, 0.06
        box = (fx + 0.01, fy + 0.01, fx + 0.01 + w, fy + 0.01 + h)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            continue
        placed.append(box)
        ax.annotate(text, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=5.5)


@styled
def plot_memory_vs_score(
    scores_path: str | Path,
    memory_path: str | Path,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
) -> None:
    """Memory against score per task (columns) and prompting method (rows), with the
    frontier of the runs that no other run beats on both."""
    scores = read_scores(scores_path, primary_only=True)
    mem = read_memory(memory_path)
    data = task_scores(scores).merge(
        mem[["model", "method", "memory_gb", "memory_source"]], on=["model", "method"]
    )
    data = data[data["memory_gb"].notna()]
    if data.empty:
        no_data_figure(
            out_paths,
            "Memory versus score",
            "No run has both a score and a memory figure yet.",
        )
        return
    order = (order or Order()).with_data(data)
    prompts = Order.sort(order.prompts, data["prompt"])
    tasks = Order.sort(list(TASK_TITLES), data["task"])
    methods = Order.sort(order.methods, data["method"])
    models = Order.sort(order.models, data["model"])
    fig, axes = subplots(len(prompts), len(tasks), 3.3, 2.6, extra_h=1.6, sharex=True, sharey=True)
    lo, hi = float(data["memory_gb"].min()), float(data["memory_gb"].max())
    for i, prompt in enumerate(prompts):
        for j, task in enumerate(tasks):
            ax = axes[i, j]
            sub = data[(data["prompt"] == prompt) & (data["task"] == task)]
            if sub.empty:
                empty_panel(ax)
            for model in models:
                line = sub[sub["model"] == model].sort_values("memory_gb")
                ax.plot(line["memory_gb"], line["value"], color="#bbbbbb", lw=0.6, zorder=1)
            # one scatter per method and memory source (one per point is slow at paper scale)
            for (method, source), pts in sub.groupby(["method", "memory_source"]):
                measured = source == "measured"
                color = order.color(method)
                ax.scatter(
                    pts["memory_gb"],
                    pts["value"],
                    s=22,
                    marker="o",
                    facecolor=color if measured else "white",
                    edgecolor=color if not measured else "black",
                    linewidth=1.0 if not measured else 0.4,
                    zorder=3,
                )
            points = list(zip(sub["memory_gb"], sub["value"], strict=True))
            front = [sub.iloc[k] for k in pareto_front(points)]
            if front:
                ax.step(
                    [r["memory_gb"] for r in front],
                    [r["value"] for r in front],
                    where="post",
                    color="black",
                    lw=0.8,
                    ls=":",
                    zorder=2,
                )
                if len(models) > 1:
                    _label_points(
                        ax,
                        [(r["memory_gb"], r["value"], r["model"]) for r in front],
                        xlim=(lo / 1.6, hi * 1.6),
                    )
            log_axis(ax, "x")
            ax.set_ylim(-0.03, 1.05)
            ax.grid(alpha=0.3)
            gpu_lines(ax, axis="x", lo=lo / 1.5, hi=hi * 1.5)
            if i == 0:
                n = int(sub["n_datasets"].max()) if len(sub) else 0
                ax.set_title(f"{TASK_TITLES.get(task, task)}\n(mean of {n} datasets)")
            if j == 0:
                ax.set_ylabel(f"{prompt}\nprimary score")
            if i == len(prompts) - 1:
                ax.set_xlabel("GPU memory (GB, log)")
    ax0 = axes[0, 0]
    ax0.set_xlim(lo / 1.6, hi * 1.6)
    from matplotlib.lines import Line2D

    handles = legend_handles(order, methods) + [
        Line2D([], [], marker="o", ls="", mfc="#777777", mec="black", label="measured"),
        Line2D([], [], marker="o", ls="", mfc="white", mec="#777777", label="estimated"),
        Line2D([], [], color="black", ls=":", label="frontier"),
    ]
    fig_legend(fig, handles, "quantization method; memory; best score for its memory")
    suptitle(fig, "Memory versus primary score per task (grey lines join one model's methods)")
    save_figure(fig, out_paths)


@styled
def plot_memory_estimate_check(
    memory_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """The fit estimator against what the runs measured: weights (any device) and the total
    (peak GPU allocation, CUDA runs only). Points on the diagonal: the estimate was right."""
    mem = read_memory(memory_path)
    pairs = [
        ("est_weights_gb", "weights_gb", "weights", "no run has measured its weights yet"),
        (
            "est_total_gb",
            "peak_gpu_allocated_gb",
            "total (weights + KV cache + overhead)",
            "no GPU run yet: peak GPU memory is measured on CUDA devices only",
        ),
    ]
    found = [mem[numeric(mem, e).notna() & (numeric(mem, m) > 0)] for e, m, _, _ in pairs]
    if all(f.empty for f in found):
        no_data_figure(
            out_paths,
            "Estimated versus measured memory",
            "No run has measured memory yet: run inference to compare the fit estimator "
            "with measurements.",
        )
        return
    order = (order or Order()).with_data(mem)
    methods = Order.sort(order.methods, mem["method"])
    fig, axes = subplots(1, 2, 3.8, 3.6, extra_h=1.2)
    for ax, (est_col, meas_col, label, empty), sub in zip(axes[0], pairs, found, strict=True):
        ax.set_title(label)
        if sub.empty:
            empty_panel(ax, textwrap.fill(empty, 40))
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        est = numeric(sub, est_col)
        meas = numeric(sub, meas_col)
        for method in methods:
            sel = sub["method"] == method
            if sel.any():
                ax.scatter(
                    est[sel],
                    meas[sel],
                    s=24,
                    color=order.color(method),
                    edgecolor="black",
                    linewidth=0.4,
                    zorder=3,
                )
        if len(sub) <= 16:
            for e, m, model in zip(est, meas, sub["model"], strict=True):
                ax.annotate(model, (e, m), xytext=(3, -3), textcoords="offset points", fontsize=5.5)
        lo = float(min(est.min(), meas.min())) / 1.5
        hi = float(max(est.max(), meas.max())) * 1.5
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--", zorder=1)
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ratio = (meas / est).median()
        ax.text(
            0.03,
            0.97,
            f"median measured / estimated: {ratio:.2f}",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
        )
        ax.set_xlabel("estimated (GB, log)")
        ax.set_ylabel("measured (GB, log)")
        ax.grid(alpha=0.3)
    fig_legend(fig, legend_handles(order, methods), "quantization method")
    suptitle(fig, "Fit estimator versus measurement (dashed: estimate = measurement)")
    save_figure(fig, out_paths)
