"""Prompting methods under quantization: does a prompting method help as much after
quantization?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import read_scores
from biomedquant.report.figures.draw import (
    fig_legend,
    legend_handles,
    no_data_figure,
    save_figure,
    subplots,
    suptitle,
)
from biomedquant.report.figures.style import (
    Order,
    dataset_order,
    dataset_title,
    metric_title,
    styled,
)


@styled
def plot_prompting(
    scores_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """Primary score by prompting method, one line per quantization method, one panel per
    dataset: parallel lines mean a prompting method helps as much after quantization.

    With one model its bootstrap intervals are drawn; with several the points are means over
    models (scores_by_dataset has each model's intervals).
    """
    import numpy as np

    df = read_scores(scores_path, primary_only=True)
    if df.empty:
        no_data_figure(out_paths, "Prompting methods", "No primary-metric scores to plot.")
        return
    order = (order or Order()).with_data(df)
    prompts = Order.sort(order.prompts, df["prompt"])
    methods = Order.sort(order.methods, df["method"])
    datasets = dataset_order(df["dataset"])
    n_models = df["model"].nunique()
    ncols = min(4, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = subplots(
        nrows, ncols, max(2.6, 0.5 * len(prompts) + 1.2), 2.4, extra_h=1.4, sharey=True
    )
    x = np.arange(len(prompts))
    offset = 0.35 / max(1, len(methods))
    for idx, ax in enumerate(axes.flat):
        if idx >= len(datasets):
            ax.set_visible(False)
            continue
        dataset = datasets[idx]
        sub = df[df["dataset"] == dataset]
        for k, method in enumerate(methods):
            g = sub[sub["method"] == method].groupby("prompt")
            # One model: its bootstrap interval. Several: the mean over models, no bars (the
            # spread between models is model size, not the effect of prompting or quantization).
            lo_col, hi_col = ("ci_low", "ci_high") if n_models == 1 else ("value", "value")
            stats = g.agg(y=("value", "mean"), lo=(lo_col, "mean"), hi=(hi_col, "mean"))
            stats = stats.reindex(prompts)
            y = stats["y"].to_numpy(dtype=float)
            err = np.nan_to_num(
                np.vstack([y - stats["lo"].to_numpy(float), stats["hi"].to_numpy(float) - y])
            ).clip(min=0)
            pos = x + (k - (len(methods) - 1) / 2) * offset
            ax.errorbar(
                pos,
                y,
                yerr=err,
                color=order.color(method),
                marker="o",
                ms=3.5,
                lw=1.2,
                capsize=1.5,
                elinewidth=0.6,
            )
        metric = sub["metric"].iloc[0]
        ax.set_title(f"{dataset_title(dataset)} ({metric_title(metric)})")
        ax.set_xticks(x, prompts, rotation=30 if len(prompts) > 3 else 0)
        ax.set_xlim(-0.5, len(prompts) - 0.5)
        ax.set_ylim(-0.03, 1.05)
        ax.grid(axis="y", alpha=0.3)
        if idx % ncols == 0:
            ax.set_ylabel("primary score")
    fig_legend(fig, legend_handles(order, methods), "quantization method")
    what = "error bars: bootstrap interval" if n_models == 1 else f"mean over {n_models} models"
    single = "; only one prompting method was run" if len(prompts) == 1 else ""
    suptitle(fig, f"Primary score by prompting method ({what}{single})")
    save_figure(fig, out_paths)
