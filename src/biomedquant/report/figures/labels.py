"""Where quantization hurts: per-label F1 change from the baseline, labels x methods.

A macro average over six relation types can hold steady while a rare type collapses. This
figure shows every label of the relation-extraction and multi-label datasets (rows, grouped
by dataset, with the label's gold count) against every quantized method and prompting method
(columns), one panel per model. Colour: the change of the label's one-vs-rest F1 in points, on
one scale symmetric around 0; a frame marks a change whose paired-bootstrap interval excludes
0. Same conventions as the other figures (:mod:`biomedquant.report.figures.style`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import read_comparisons_by_label
from biomedquant.report.figures.draw import no_data_figure, save_figure, subplots, suptitle
from biomedquant.report.figures.style import Order, dataset_order, dataset_title, styled


@styled
def plot_change_by_label(
    by_label_path: str | Path,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
) -> None:
    """Per-label F1 change in points (see the module docstring)."""
    import numpy as np
    from matplotlib.patches import Rectangle

    df = read_comparisons_by_label(by_label_path)
    if df.empty:
        no_data_figure(
            out_paths,
            "Change by label",
            "No per-label comparisons: no relation-extraction or multi-label dataset was "
            "compared with the baseline.",
        )
        return
    order = (order or Order()).with_data(df)
    models = Order.sort(order.models, df["model"])
    methods = Order.sort(order.methods, df["method"])
    prompts = Order.sort(order.prompts, df["prompt"])
    # At the study's scale (more than two prompting methods) a column per method, the change
    # averaged over the prompting methods, framed where every one's interval excludes 0 on
    # the same side; else a column per method x prompting method.
    pooled = len(prompts) > 2
    df = df.assign(
        change=100 * df["diff"].astype(float),
        above=df["diff_ci_low"].astype(float) > 0,
        below=df["diff_ci_high"].astype(float) < 0,
        prompt_key="all" if pooled else df["prompt"],
    )
    cells = (
        df.groupby(["model", "dataset", "label", "method", "prompt_key"], sort=False)
        .agg(change=("change", "mean"), above=("above", "all"), below=("below", "all"))
        .reset_index()
    )
    keys = ["all"] if pooled else prompts
    columns = [
        (m, p)
        for m in methods
        for p in keys
        if ((cells["method"] == m) & (cells["prompt_key"] == p)).any()
    ]
    rows: list[tuple[str, str]] = []
    for dataset in dataset_order(df["dataset"]):
        labels = df[df["dataset"] == dataset].drop_duplicates("label")
        rows += [(dataset, lab) for lab in sorted(labels["label"])]
    support = df.drop_duplicates(["dataset", "label"]).set_index(["dataset", "label"])["support"]
    vmax = cells["change"].abs().max()
    vmax = max(1.0, math.ceil(float(vmax))) if not math.isnan(vmax) else 1.0
    ncols = min(len(models), 4)
    nrows = math.ceil(len(models) / ncols)
    fig, axes = subplots(
        nrows,
        ncols,
        0.55 * len(columns) + 2.6,
        0.22 * len(rows) + 1.2,
        extra_w=1.6,
        extra_h=1.6,
    )
    image = None
    for ax in axes.flat[len(models) :]:
        ax.set_visible(False)
    for j, model in enumerate(models):
        ax = axes.flat[j]
        sub = cells[cells["model"] == model].set_index(["dataset", "label", "method", "prompt_key"])
        values = np.full((len(rows), len(columns)), np.nan)
        excludes_zero = np.zeros_like(values, dtype=bool)
        for r, (dataset, label) in enumerate(rows):
            for c, (method, prompt) in enumerate(columns):
                key = (dataset, label, method, prompt)
                if key not in sub.index:
                    continue
                hit = sub.loc[key]
                hit = hit.iloc[0] if hasattr(hit, "iloc") and hit.ndim > 1 else hit
                values[r, c] = float(hit["change"])
                excludes_zero[r, c] = bool(hit["above"]) or bool(hit["below"])
        image = ax.imshow(
            np.ma.masked_invalid(values), cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto"
        )
        ax.set_facecolor("#eeeeee")
        for (r, c), v in np.ndenumerate(values):
            if np.isnan(v):
                continue
            ax.text(
                c,
                r,
                f"{v:+.1f}" if abs(v) < 9.95 else f"{v:+.0f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if abs(v) > 0.6 * vmax else "black",
                weight="bold" if excludes_zero[r, c] else "normal",
            )
            if excludes_zero[r, c]:
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, lw=1.2, ec="black"))
        ax.set_yticks(
            range(len(rows)),
            [
                f"{dataset_title(d)}: {lab} (n={int(support[(d, lab)])})" if j % ncols == 0 else ""
                for d, lab in rows
            ],
        )
        ax.set_xticks(
            range(len(columns)),
            [order.name(m) if pooled else f"{order.name(m)}\n{p}" for m, p in columns],
            rotation=90,
            fontsize=6,
        )
        for r in range(1, len(rows)):
            if rows[r][0] != rows[r - 1][0]:
                ax.axhline(r - 0.5, color="black", lw=0.8)
        ax.set_title(f"{model}\nvs {order.name(order.baseline or 'baseline')}", fontsize=9)
        ax.tick_params(length=0)
    fig.colorbar(image, ax=axes, shrink=0.8, label="change of the label's F1 (points)")
    suptitle(
        fig,
        "Per-label F1 change from the unquantized baseline "
        + (
            "(mean over the prompting methods; frame: every one's paired-bootstrap interval"
            " excludes 0 on the same side)"
            if pooled
            else "(frame: paired-bootstrap interval excludes 0)"
        ),
    )
    save_figure(fig, out_paths)
