"""The study's main result on one page: per task, how much each quantized method changes its
model's primary metric, across every model, methods ordered by the memory they need.

At the paper's scale the per-dataset figures are dozens of panels; this one stays four panels
(one per task) of one row per method, whatever the number of models: each model is one dot (at
the same height within every row, so a model can be followed down the rows), the median over
models a black bar, the range a line. The dashed line is the task's non-inferiority margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import numeric, read_comparisons, read_memory
from biomedquant.evaluation.stats.verdicts import DEFAULT_MARGINS
from biomedquant.report.figures.draw import no_data_figure, save_figure, subplots, suptitle
from biomedquant.report.figures.style import TASK_TITLES, Order, styled

TITLE = "Change of the primary metric from each model's 16-bit baseline, per task"


def method_memory_share(memory_path: str | Path | None, baseline: str | None) -> dict[str, float]:
    """Each method's GPU memory as a share of its model's baseline, averaged over models (the
    deployment memory of :func:`biomedquant.analysis.tables.deployment_memory`: one source per
    model)."""
    if not memory_path or not Path(memory_path).exists() or baseline is None:
        return {}
    memory = read_memory(memory_path)
    if memory.empty or "memory_gb" not in memory:
        return {}
    memory["memory_gb"] = numeric(memory, "memory_gb")
    base = memory[memory["method"] == baseline].set_index("model")["memory_gb"]
    memory = memory[memory["model"].isin(base.index)]
    share = memory["memory_gb"] / memory["model"].map(base)
    return share.groupby(memory["method"]).mean().dropna().to_dict()


@styled
def plot_summary(
    comparisons_path: str | Path,
    memory_path: str | Path | None,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
) -> None:
    """Per task (panels), each quantized method's change in points (mean over the task's
    datasets and prompting methods) for every model, methods from the most to the least
    memory."""
    import numpy as np

    df = read_comparisons(comparisons_path, primary_only=True)
    if df.empty:
        no_data_figure(
            out_paths,
            TITLE,
            "No comparisons: the config has no quantized method or no unquantized baseline.",
        )
        return
    order = (order or Order()).with_data(df)
    df = df.assign(change=100 * numeric(df, "diff"))
    per_model = df.groupby(["task", "method", "model"], sort=False)["change"].mean().reset_index()
    tasks = [t for t in TASK_TITLES if t in set(per_model["task"])]
    models = Order.sort(order.models, per_model["model"])
    share = method_memory_share(memory_path, order.baseline)
    methods = Order.sort(order.methods, per_model["method"])
    # most memory first (top); methods without a memory figure after them, in config order
    methods.sort(key=lambda m: (m not in share, -share.get(m, 0.0)))
    fig, axes = subplots(
        1, len(tasks), 2.6, max(1.2, 0.34 * len(methods) + 0.3), extra_w=2.0, extra_h=1.3,
        sharey=True,
    )  # fmt: skip
    offsets = np.linspace(-0.3, 0.3, len(models)) if len(models) > 1 else np.zeros(1)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = per_model[per_model["task"] == task]
        for row, method in enumerate(methods):
            values = sub[sub["method"] == method].set_index("model")["change"]
            values = values.reindex(models)
            ys = row + offsets
            ok = values.notna().to_numpy()
            if not ok.any():
                continue
            xs = values.to_numpy()[ok]
            ax.plot([xs.min(), xs.max()], [row, row], color="#777777", linewidth=0.8, zorder=1)
            ax.scatter(
                xs, ys[ok], s=14, color=order.color(method), edgecolor="black",
                linewidth=0.3, zorder=2,
            )  # fmt: skip
            ax.plot([np.median(xs)] * 2, [row - 0.38, row + 0.38], color="black", linewidth=1.6)
        ax.axvline(0, color="#444444", linewidth=0.8)
        margin = DEFAULT_MARGINS.get(task)
        if margin is not None:
            ax.axvline(-margin, color="#444444", linewidth=0.8, linestyle="--")
        ax.set_title(TASK_TITLES[task])
        ax.set_xlabel("change (points)")
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        shown = sub["change"].dropna()
        lo = min(float(shown.min()) if len(shown) else 0.0, -(margin or 1.0))
        hi = max(float(shown.max()) if len(shown) else 0.0, 0.0)
        pad = 0.06 * (hi - lo) + 0.3
        ax.set_xlim(lo - pad, hi + pad)
    labels = [
        order.name(m) + (f"\n{share[m]:.0%} of 16-bit memory" if m in share else "")
        for m in methods
    ]
    axes[0][0].set_yticks(range(len(methods)), labels)
    axes[0][0].set_ylim(len(methods) - 0.5, -0.5)
    suptitle(
        fig,
        f"{TITLE} ({len(models)} model(s): one dot each, the median a bar; dashed: the task's"
        " default margin; mean over datasets and prompting methods)",
    )
    save_figure(fig, out_paths)
