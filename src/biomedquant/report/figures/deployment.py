"""The deployment figure (``results/tables/deployment_choice.csv``): what to deploy on each
piece of hardware, one cell per hardware (rows) and model (columns, then the pick over all
models), coloured by what backs the choice.

A grid rather than bars: the answer is a name (which version to serve), and a reader scans a
row ("on one A100 40GB ...") or a column ("llama31_70b needs ...").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import numeric, read_table
from biomedquant.report.figures.draw import no_data_figure, save_figure, subplots, suptitle
from biomedquant.report.figures.style import Order, order_from_rows, styled

# What backs a cell's choice (the table's status), its colour and legend entry.
STATUS_STYLE = (
    ("shown non-inferior", "#B8E0D2", "quantized, shown non-inferior to its 16-bit model"),
    ("the baseline itself", "#D6E4F0", "the 16-bit model itself"),
    ("NOT shown", "#F6D5A8", "best that fits, NOT shown non-inferior"),
    ("nothing runs", "#EEEEEE", "nothing fits or runs"),
)


def _style(status: str) -> tuple[str, str]:
    for prefix, color, label in STATUS_STYLE:
        if status.startswith(prefix):
            return color, label
    return "#FFFFFF", status


@styled
def plot_deployment_choice(
    table_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """One cell per hardware x model: the method to deploy, its memory and GPUs, coloured by
    whether it is shown non-inferior, the baseline, only the best that fits, or nothing."""
    from matplotlib.patches import Patch, Rectangle

    df = read_table(table_path)
    if df.empty:
        no_data_figure(out_paths, "Deployment", "No deployment answer: no hardware was listed.")
        return
    df = df.astype({"hardware": str, "scope": str}).fillna({"method": "", "model": ""})
    order = (order or order_from_rows(df[df["method"] != ""])).with_data(df[df["method"] != ""])
    hardware = list(dict.fromkeys(df["hardware"]))
    scopes = [s for s in dict.fromkeys(df["scope"]) if s != "all models"]
    scopes = [*Order.sort(order.models, scopes), "all models"]
    memory = numeric(df, "memory_gb")
    gpus = numeric(df, "gpus")
    fig, axes = subplots(1, 1, 1.05 * len(scopes), 0.42 * len(hardware) + 0.3, extra_h=1.3)
    ax = axes[0][0]
    for row, mem, n in zip(df.itertuples(), memory, gpus, strict=True):
        x, y = scopes.index(row.scope), hardware.index(row.hardware)
        color, _ = _style(str(row.status))
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=color, edgecolor="white"))
        if row.method:
            name = order.name(str(row.method))
            if row.scope == "all models":
                name = f"{row.model}\n{name}"
            on = f" on {int(n)} GPUs" if n == n and n > 1 else ""
            text = f"{name}\n{mem:.3g} GB{on}"
        else:
            text = "nothing fits"
        ax.text(x, y, text, ha="center", va="center", fontsize=5.5, wrap=True)
    ax.set_xlim(-0.5, len(scopes) - 0.5)
    ax.set_ylim(len(hardware) - 0.5, -0.5)
    ax.set_xticks(range(len(scopes)), scopes, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(hardware)), hardware, fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.axvline(len(scopes) - 1.5, color="black", lw=1.0)
    handles = [Patch(facecolor=c, edgecolor="0.6", label=label) for _, c, label in STATUS_STYLE]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    suptitle(fig, "What to deploy: the best-scoring version that runs and fits each hardware")
    save_figure(fig, out_paths)
