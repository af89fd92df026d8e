"""Where quantization hurts: per-label F1 change from the baseline, labels x methods.

A macro average over six relation types can hold steady while a rare type collapses. This
figure shows every label of the relation-extraction and multi-label datasets (rows, grouped
by dataset, with the label's gold count) against every quantized method and prompting method
(columns), one panel per model. Colour: the change of the label's one-vs-rest F1 in points, on
one scale symmetric around 0; a frame marks a change whose paired-bootstrap interval excludes
0. Same conventions as the other figures (:mod:`biomedquant.figures.style`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from biomedquant.figures.draw import no_data_figure, save_figure, subplots, suptitle
from biomedquant.figures.style import Order, dataset_order, dataset_title, styled
from biomedquant.results import read_comparisons_by_label


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
    columns = [
        (m, p)
        for m in methods
        for p in prompts
        if ((df["method"] == m) & (df["prompt"] == p)).any()
    ]
    rows: list[tuple[str, str]] = []
    for dataset in dataset_order(df["dataset"]):
        labels = df[df["dataset"] == dataset].drop_duplicates("label")
        rows += [(dataset, lab) for lab in sorted(labels["label"])]
    support = df.drop_duplicates(["dataset", "label"]).set_index(["dataset", "label"])["support"]
    diffs = 100 * df["diff"].astype(float)
    vmax = max(1.0, math.ceil(float(np.nanmax(np.abs(diffs))))) if diffs.notna().any() else 1.0
    fig, axes = subplots(
        1,
        len(models),
        0.55 * len(columns) + 2.6,
        0.22 * len(rows) + 0.6,
        extra_w=1.6,
        extra_h=1.6,
    )
    image = None
    for j, model in enumerate(models):
        ax = axes[0, j]
        sub = df[df["model"] == model].set_index(["dataset", "label", "method", "prompt"])
        values = np.full((len(rows), len(columns)), np.nan)
        excludes_zero = np.zeros_like(values, dtype=bool)
        for r, (dataset, label) in enumerate(rows):
            for c, (method, prompt) in enumerate(columns):
                key = (dataset, label, method, prompt)
                if key not in sub.index:
                    continue
                hit = sub.loc[key]
                hit = hit.iloc[0] if hasattr(hit, "iloc") and hit.ndim > 1 else hit
                values[r, c] = 100 * float(hit["diff"])
                lo, hi = float(hit["diff_ci_low"]), float(hit["diff_ci_high"])
                excludes_zero[r, c] = not (math.isnan(lo) or math.isnan(hi)) and (lo > 0 or hi < 0)
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
                f"{dataset_title(d)}: {lab} (n={int(support[(d, lab)])})" if j == 0 else ""
                for d, lab in rows
            ],
        )
        ax.set_xticks(
            range(len(columns)), [f"{m}\n{p}" for m, p in columns], rotation=90, fontsize=6
        )
        for r in range(1, len(rows)):
            if rows[r][0] != rows[r - 1][0]:
                ax.axhline(r - 0.5, color="black", lw=0.8)
        ax.set_title(f"{model}\nvs {order.baseline or 'baseline'}", fontsize=9)
        ax.tick_params(length=0)
    fig.colorbar(image, ax=axes, shrink=0.8, label="change of the label's F1 (points)")
    suptitle(
        fig,
        "Per-label F1 change from the unquantized baseline "
        "(frame: paired-bootstrap interval excludes 0)",
    )
    save_figure(fig, out_paths)
