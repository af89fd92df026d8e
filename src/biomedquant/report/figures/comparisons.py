"""Comparisons with the unquantized baseline: the change in points (heatmap) and the share of
items whose answer changed (flip rate)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import read_comparisons
from biomedquant.evaluation.stats.multiplicity import REPORT_ADJUSTMENT
from biomedquant.report.figures.draw import (
    bar_labels,
    dataset_ticks,
    fig_legend,
    legend_handles,
    no_data_figure,
    save_figure,
    subplots,
    suptitle,
)
from biomedquant.report.figures.style import (
    SIGNIFICANCE,
    Order,
    dataset_order,
    marked_changes,
    styled,
)


@styled
def plot_change_heatmap(
    comparisons_path: str | Path,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
    alpha: float = SIGNIFICANCE,
) -> None:
    """Change from the baseline in points, models x datasets, one panel per method (columns)
    and prompting method (rows); ``*`` and a black frame mark an adjusted p < ``alpha``.

    The p-values are adjusted over every cell the figure draws, all panels together, by
    Benjamini-Hochberg (:mod:`biomedquant.evaluation.stats.multiplicity`, which says why):
    at the paper's ~4,800 cells, unadjusted p < 0.05 would mark ~240 cells with no true
    change; adjusted, at most 5% of the marked cells are expected to be such.

    One colour scale for all panels, symmetric around 0, so equal colours mean equal changes.
    """
    import numpy as np
    import pandas as pd
    from matplotlib.patches import Rectangle

    df = read_comparisons(comparisons_path, primary_only=True)
    if df.empty:
        no_data_figure(
            out_paths,
            "Change from the baseline",
            "No comparisons: the config has no quantized method or no unquantized baseline.",
        )
        return
    order = order or Order()
    order = order.with_data(df)
    models = Order.sort(order.models, df["model"])
    prompts = Order.sort(order.prompts, df["prompt"])
    methods = Order.sort(order.methods, df["method"])
    datasets = dataset_order(df["dataset"])
    metrics = dict(zip(df["dataset"], df["metric"], strict=True))
    diffs = 100 * df["diff"].astype(float)
    # the family: every cell drawn with a change, all panels together
    df = df.assign(marked=marked_changes(df, alpha).astype(float))
    n_tested = int((diffs.notna() & pd.to_numeric(df["p_value"], errors="coerce").notna()).sum())
    vmax = float(np.nanmax(np.abs(diffs))) if diffs.notna().any() else 1.0
    vmax = max(1.0, math.ceil(vmax))
    fig, axes = subplots(
        len(prompts),
        len(methods),
        0.5 * len(datasets) + 0.4,
        max(1.0, 0.32 * len(models) + 0.7),
        extra_w=2.2,
        extra_h=1.6,
    )
    image = None
    for i, prompt in enumerate(prompts):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            sub = df[(df["prompt"] == prompt) & (df["method"] == method)]
            grid = sub.pivot_table(index="model", columns="dataset", values="diff", aggfunc="first")
            grid = 100 * grid.reindex(index=models, columns=datasets).astype(float)
            marks = sub.pivot_table(
                index="model", columns="dataset", values="marked", aggfunc="first"
            ).reindex(index=models, columns=datasets)
            values = grid.to_numpy()
            image = ax.imshow(
                np.ma.masked_invalid(values), cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto"
            )
            ax.set_facecolor("#eeeeee")
            for (r, c), v in np.ndenumerate(values):
                if np.isnan(v):
                    ax.text(c, r, "n/a", ha="center", va="center", fontsize=6, color="#666666")
                    continue
                significant = marks.iat[r, c] == 1.0
                ax.text(
                    c,
                    r,
                    f"{v:+.1f}{'*' if significant else ''}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if abs(v) > 0.6 * vmax else "black",
                    weight="bold" if significant else "normal",
                )
                if significant:
                    ax.add_patch(
                        Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, lw=1.2, ec="black")
                    )
            ax.set_yticks(range(len(models)), models if j == 0 else [""] * len(models))
            if i == len(prompts) - 1:
                dataset_ticks(ax, datasets, metrics)
            else:
                ax.set_xticks(range(len(datasets)), [""] * len(datasets))
            # Two lines: side by side, five methods' one-line titles run into each other.
            base = order.name(order.baseline) if order.baseline else "baseline"
            ax.set_title(f"{order.name(method)}\nvs {base}, {prompt}", fontsize=9)
            ax.tick_params(length=0)
    fig.colorbar(image, ax=axes, shrink=0.8, label="change (points)")
    suptitle(
        fig,
        f"Change of the primary metric from the unquantized baseline (* and frame: paired"
        f" bootstrap p < {alpha:g}, {REPORT_ADJUSTMENT}-adjusted over all {n_tested} cells)",
    )
    save_figure(fig, out_paths)


@styled
def plot_flip_rate(
    comparisons_path: str | Path,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
) -> None:
    """Share of items whose answer changed against the baseline, per method and dataset
    (rows: prompting methods). A flip rate well above the score change means errors were
    traded, not avoided. With several models: the mean, each model a dot. Where the table has
    a noise floor (the baseline rerun at another batch size), a dashed line across each
    dataset's bars marks its flip rate: the changes batching alone causes."""
    import numpy as np
    import pandas as pd

    df = read_comparisons(comparisons_path, primary_only=True)
    if df.empty:
        no_data_figure(out_paths, "Flip rate", "No comparisons with a baseline to plot.")
        return
    order = (order or Order()).with_data(df)
    prompts = Order.sort(order.prompts, df["prompt"])
    methods = Order.sort(order.methods, df["method"])
    datasets = dataset_order(df["dataset"])
    metrics = dict(zip(df["dataset"], df["metric"], strict=True))
    n_models = df["model"].nunique()
    n_bars = len(methods) * len(datasets)
    fig, axes = subplots(
        len(prompts),
        1,
        max(6.0, 0.16 * n_bars + 1.5),
        2.2,
        extra_h=1.6,
        sharex=True,
        sharey=True,
    )
    width = 0.8 / len(methods)
    x = np.arange(len(datasets))
    top = float(df["flip_rate"].max()) if df["flip_rate"].notna().any() else 0.0
    annotate = n_models == 1 and n_bars <= 40
    for i, prompt in enumerate(prompts):
        ax = axes[i, 0]
        sub = df[df["prompt"] == prompt]
        for k, method in enumerate(methods):
            g = sub[sub["method"] == method]
            mean = g.groupby("dataset")["flip_rate"].mean().reindex(datasets)
            pos = x + (k - (len(methods) - 1) / 2) * width
            vals = mean.to_numpy(dtype=float)
            ax.bar(
                pos,
                np.nan_to_num(vals),
                width,
                color=order.color(method),
                edgecolor="black",
                linewidth=0.3,
            )
            if n_models > 1:
                for d_idx, dataset in enumerate(datasets):
                    pts = g[g["dataset"] == dataset]["flip_rate"].to_numpy(dtype=float)
                    ax.scatter(np.full(len(pts), pos[d_idx]), pts, s=4, color="black", zorder=3)
            elif annotate:
                bar_labels(ax, pos, vals, ".2f")
        if "noise_floor_flip_rate" in sub:
            floor = pd.to_numeric(sub["noise_floor_flip_rate"], errors="coerce")
            floor = floor.groupby(sub["dataset"]).mean().reindex(datasets).to_numpy(dtype=float)
            for d_idx, level in enumerate(floor):
                if not np.isnan(level):
                    ax.hlines(level, d_idx - 0.45, d_idx + 0.45, colors="black", linestyles="--")
        # room above the tallest bar for its label
        ax.set_ylim(0, min(1.0, max(0.1, top)) * (1.22 if annotate else 1.05))
        ax.set_ylabel(f"{prompt}\nflip rate")
        ax.grid(axis="y", alpha=0.3)
    dataset_ticks(axes[-1, 0], datasets, metrics)
    handles = legend_handles(order, methods)
    if "noise_floor_flip_rate" in df and df["noise_floor_flip_rate"].notna().any():
        from matplotlib.lines import Line2D

        handles.append(
            Line2D([], [], color="black", ls="--", label="baseline rerun (other batch size)")
        )
    fig_legend(fig, handles, "quantization method")
    what = f"mean over {n_models} models, dots: each model" if n_models > 1 else "one model"
    suptitle(
        fig,
        f"Flip rate: share of items whose parsed answer differs from the baseline's ({what})",
    )
    save_figure(fig, out_paths)
