"""Accuracy: the primary metric per dataset, one bar per quantization method (the paper's main
comparison)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import read_scores
from biomedquant.report.figures.draw import (
    bar_labels,
    dataset_ticks,
    empty_panel,
    fig_legend,
    legend_handles,
    no_data_figure,
    save_figure,
    subplots,
    suptitle,
)
from biomedquant.report.figures.style import (
    PARSE_FAILURE_HATCH,
    PARSE_FAILURE_MARK,
    Order,
    dataset_order,
    styled,
)


@styled
def plot_scores_by_dataset(
    table_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """The paper's main comparison: primary metric per dataset, one bar per method.

    One panel per model (rows) and prompting method (columns), so a reader compares methods
    within a panel and reads down a column for models. Error bars: bootstrap intervals.
    """
    import numpy as np

    df = read_scores(table_path, primary_only=True)
    if df.empty:
        no_data_figure(
            out_paths, "Scores by dataset", f"{table_path} holds no primary-metric rows to plot."
        )
        return
    order = (order or Order()).with_data(df)
    models = Order.sort(order.models, df["model"])
    prompts = Order.sort(order.prompts, df["prompt"])
    methods = Order.sort(order.methods, df["method"])
    datasets = dataset_order(df["dataset"])
    metrics = dict(zip(df["dataset"], df["metric"], strict=True))
    n_bars = len(methods) * len(datasets)
    fig, axes = subplots(
        len(models),
        len(prompts),
        max(5.0, 0.13 * n_bars + 1.0),
        2.4,
        extra_h=1.6,
        sharex=True,
        sharey=True,
    )
    width = 0.8 / len(methods)
    x = np.arange(len(datasets))
    annotate = n_bars <= 24
    marked_any = False
    for i, model in enumerate(models):
        for j, prompt in enumerate(prompts):
            ax = axes[i, j]
            sub = df[(df["model"] == model) & (df["prompt"] == prompt)]
            if sub.empty:
                empty_panel(ax)
            for k, method in enumerate(methods):
                m = sub[sub["method"] == method].set_index("dataset").reindex(datasets)
                vals = m["value"].to_numpy(dtype=float)
                ci_lo = m["ci_low"].to_numpy(dtype=float)
                ci_hi = m["ci_high"].to_numpy(dtype=float)
                err = np.nan_to_num(np.vstack([vals - ci_lo, ci_hi - vals]).clip(min=0))
                pos = x + (k - (len(methods) - 1) / 2) * width
                ax.bar(
                    pos,
                    np.nan_to_num(vals),
                    width,
                    yerr=err,
                    capsize=1.5,
                    color=order.color(method),
                    edgecolor="black",
                    linewidth=0.3,
                    error_kw={"elinewidth": 0.6},
                )
                rates = (
                    m["parse_failure_rate"].to_numpy(dtype=float)
                    if "parse_failure_rate" in m
                    else np.zeros(len(vals))
                )
                marked = np.nan_to_num(rates) > PARSE_FAILURE_MARK
                marked_any = marked_any or bool(marked.any())
                if marked.any():
                    ax.bar(
                        pos[marked],
                        np.maximum(np.nan_to_num(vals[marked]), 0.02),
                        width,
                        fill=False,
                        hatch=PARSE_FAILURE_HATCH,
                        edgecolor="black",
                        linewidth=0.0,
                    )
                if not annotate:
                    continue
                # Printed above the interval, so a score of 0 reads as 0, not as a gap; with
                # the unparsable share where it is high, so 0 is read for what it is.
                texts = [
                    f"{v:.2f}" + (f" ({r:.0%} unparsable)" if flag else "")
                    for v, r, flag in zip(vals, np.nan_to_num(rates), marked, strict=True)
                ]
                bar_labels(ax, pos, vals, ".2f", heights=np.fmax(vals, ci_hi), texts=texts)
            ax.set_ylim(0, 1.45 if annotate else 1.05)
            ax.grid(axis="y", alpha=0.3)
            if i == 0:
                ax.set_title(prompt)
            if j == 0:
                ax.set_ylabel(f"{model}\nscore")
    for ax in axes[-1, :]:
        dataset_ticks(ax, datasets, metrics)
    handles = legend_handles(order, methods)
    if marked_any:
        from matplotlib.patches import Patch

        handles.append(
            Patch(
                fill=False,
                hatch=PARSE_FAILURE_HATCH,
                edgecolor="black",
                label=f"more than {PARSE_FAILURE_MARK:.0%} of answers unparsable",
            )
        )
    fig_legend(fig, handles, "quantization method")
    suptitle(
        fig,
        "Primary metric per dataset by quantization method "
        "(columns: prompting method; error bars: bootstrap interval)",
    )
    save_figure(fig, out_paths)
