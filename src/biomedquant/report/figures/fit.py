"""The fit estimator's figure: estimated GPU memory per model and method against the common GPU
sizes, drawn before anything runs (from ``results/tables/fit.csv``).

A linear axis: bar length is memory, so halving the bits visibly halves the weights. The
colours, the GPU lines and the legend are those of every other figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import numeric, read_table
from biomedquant.report.figures.draw import (
    fig_legend,
    gpu_lines,
    legend_handles,
    no_data_figure,
    save_figure,
    subplots,
    suptitle,
)
from biomedquant.report.figures.style import Order, order_from_rows, styled


@styled
def plot_fit(
    fit_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """Horizontal bars of the estimated total (weights + KV cache + runtime overhead), one
    group per model, one bar per method, with the GPU sizes that fall in range dashed."""
    import numpy as np

    fit = read_table(fit_path)
    fit["total_gb"] = numeric(fit, "total_gb")
    known = fit[fit["total_gb"].notna()].astype({"model": str, "method": str})
    if known.empty:
        no_data_figure(
            out_paths,
            "Which GPU does each model fit?",
            "No model of known shape: the estimator needs a model's layer sizes "
            "(see biomedquant/models/configs).",
        )
        return
    order = (order or order_from_rows(fit)).with_data(known)
    models = Order.sort(order.models, known["model"])
    methods = Order.sort(order.methods, known["method"])
    fig, axes = subplots(1, 1, 7.5, 0.5 + 0.22 * len(models) * max(1, len(methods)), extra_h=1.2)
    ax = axes[0, 0]
    height = 0.8 / len(methods)
    y = np.arange(len(models))
    for k, method in enumerate(methods):
        totals = known[known["method"] == method].set_index("model")["total_gb"]
        values = totals.reindex(models).to_numpy(dtype=float)
        pos = y + (k - (len(methods) - 1) / 2) * height
        ax.barh(
            pos,
            np.nan_to_num(values),
            height,
            color=order.color(method),
            edgecolor="black",
            linewidth=0.3,
        )
    ax.set_yticks(y, models)
    ax.set_ylim(len(models) - 0.5, -0.5)
    top = float(known["total_gb"].max())
    ax.set_xlim(0, top * 1.15)
    gpu_lines(ax, axis="x", hi=top * 1.15)
    ax.set_xlabel("estimated GPU memory (GB): weights + KV cache + runtime overhead")
    ax.grid(axis="x", alpha=0.3)
    fig_legend(fig, legend_handles(order, methods), "quantization method")
    suptitle(fig, "Which GPU does each model fit, per quantization method (estimate)")
    save_figure(fig, out_paths)
