"""Figures drawn from the tidy score table."""

from __future__ import annotations

from pathlib import Path

from biomedquant.datasets.registry import DATASETS
from biomedquant.io import atomic_path
from biomedquant.prompting import PROMPT_METHODS


def plot_scores_by_dataset(table_path: str | Path, out_paths: list[str | Path]) -> None:
    """Primary metric per dataset, one bar per quantization method, one panel per model
    and prompting method; error bars are the bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    df = pd.read_csv(table_path)
    df = df[df["primary"].astype(str).str.lower() == "true"]
    if df.empty:
        raise ValueError(f"{table_path} holds no primary-metric rows to plot")
    # Panels in the order of the prompting-method registry (zero-shot first), then by model.
    rank = {name: i for i, name in enumerate(PROMPT_METHODS)}
    panels = sorted(
        df.groupby(["model", "prompt"]).groups, key=lambda k: (k[0], rank.get(k[1], 99), k[1])
    )
    order = [d for d in DATASETS if d in set(df["dataset"])]
    # The unquantized baseline first, then the quantized methods.
    methods = sorted(set(df["method"]), key=lambda m: (m != "none", m))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(7, 1.1 * len(order) + 2), 3.6 * len(panels)), squeeze=False
    )
    width = 0.8 / len(methods)
    x = np.arange(len(order))
    for ax, (model, prompt) in zip(axes[:, 0], panels, strict=True):
        sub = df[(df["model"] == model) & (df["prompt"] == prompt)]
        for k, method in enumerate(methods):
            m = sub[sub["method"] == method].set_index("dataset").reindex(order)
            vals = m["value"].to_numpy(dtype=float)
            lo = np.clip(vals - m["ci_low"].to_numpy(dtype=float), 0, None)
            hi = np.clip(m["ci_high"].to_numpy(dtype=float) - vals, 0, None)
            bars = ax.bar(
                x + (k - (len(methods) - 1) / 2) * width,
                np.nan_to_num(vals),
                width,
                yerr=np.nan_to_num(np.vstack([lo, hi])),
                capsize=2,
                label=method,
            )
            # Values printed above the interval, so a score of 0 is visibly a 0, not a gap.
            tops = np.fmax(vals, m["ci_high"].to_numpy(dtype=float))
            for bar, v, top in zip(bars, vals, tops, strict=True):
                if not np.isnan(v):
                    ax.annotate(
                        f"{v:.2f}",
                        (bar.get_x() + bar.get_width() / 2, top),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=6,
                        rotation=90,
                    )
        metric_names = [
            f"{DATASETS[d].title}\n({sub[sub['dataset'] == d]['metric'].iloc[0]})" for d in order
        ]
        ax.set_xticks(x, metric_names, fontsize=8)
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("score (primary metric)")
        ax.set_title(f"{model}, {prompt}: score per dataset by quantization method")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="method", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    for path in out_paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, format=Path(path).suffix.lstrip("."))
    plt.close(fig)
