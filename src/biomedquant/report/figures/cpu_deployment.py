"""The CPU deployment figure: what a lab without a GPU can serve, and what it costs
(``results/tables/cpu_deployment.csv``).

Left, generation speed per model and method (bars; a tick where llama.cpp measured prompt
processing separately), with the mean accuracy change against the 16-bit baseline printed
beside each bar; right, peak resident memory. The transformers engine times generation with
prompt processing included, so its bar is a lower bound (the table says so per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import numeric, read_table
from biomedquant.report.figures.draw import (
    empty_panel,
    fig_legend,
    legend_handles,
    save_figure,
    subplots,
    suptitle,
)
from biomedquant.report.figures.style import Order, order_from_rows, styled

ENGINE_TITLES = {"llama_cpp": "llama.cpp", "transformers": "transformers"}


@styled
def plot_cpu_deployment(
    table_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """Speed and memory of every (model, method) run on a CPU, one row each."""
    import numpy as np
    from matplotlib.lines import Line2D

    df = read_table(table_path).astype({"model": str, "method": str})
    order = (order or order_from_rows(df)).with_data(df)
    fig, axes = subplots(1, 2, 4.6, 0.3 + 0.32 * max(1, len(df)), extra_h=1.4, sharey=True)
    ax_speed, ax_mem = axes[0]
    if df.empty:
        empty_panel(ax_speed, "no CPU runs")
        empty_panel(ax_mem, "no CPU runs")
    engines = [ENGINE_TITLES.get(str(e), str(e)) for e in df.get("engine", [])]
    labels = [
        f"{m} / {order.name(q)} ({e})"
        for m, q, e in zip(df["model"], df["method"], engines, strict=True)
    ]
    ys = np.arange(len(df))
    colors = [order.color(m) for m in df["method"]]
    gen = numeric(df, "generation_tokens_per_second").fillna(0).to_numpy(dtype=float)
    prompt = numeric(df, "prompt_tokens_per_second").fillna(0).to_numpy(dtype=float)
    change = numeric(df, "mean_primary_change").to_numpy(dtype=float)
    kinds = df["kind"].astype(str).to_numpy() if "kind" in df else np.full(len(df), "")
    ax_speed.barh(ys, gen, color=colors, edgecolor="black", linewidth=0.3, height=0.6)
    ax_speed.scatter(prompt, ys, marker="|", s=200, color="0.2", zorder=3)
    for y, g, c, kind in zip(ys, gen, change, kinds, strict=True):
        # in points, as every figure gives changes (the table keeps the 0-1 scale)
        text = "baseline" if kind == "none" else "Δ n/a" if np.isnan(c) else f"Δ {100 * c:+.1f} pts"
        ax_speed.text(g, y, f" {text}", va="center", fontsize=7)
    ax_speed.set_yticks(ys, labels)
    ax_speed.set_ylim(len(df) - 0.5, -0.5)
    ax_speed.set_xlabel("generated tokens/s (bar); prompt tokens/s (tick)")
    ax_speed.set_xscale("symlog", linthresh=10)
    ax_speed.set_xlim(0, 2.5 * max([*gen, *prompt, 1]))  # room for the ticks and labels
    ax_speed.grid(axis="x", alpha=0.3)
    rss = numeric(df, "peak_host_rss_gb").fillna(0).to_numpy(dtype=float)
    ax_mem.barh(ys, rss, color=colors, edgecolor="black", linewidth=0.3, height=0.6)
    ax_mem.set_xlabel("peak resident memory (GB)")
    ax_mem.grid(axis="x", alpha=0.3)
    methods = Order.sort(order.methods, df["method"])
    handles = legend_handles(order, methods)
    if prompt.any():
        handles.append(
            Line2D([], [], marker="|", ls="", ms=10, color="0.2", label="prompt tokens/s")
        )
    if handles:
        fig_legend(fig, handles, "quantization method")
    suptitle(
        fig,
        "CPU deployment: speed and memory on this machine; "
        "Δ = mean change in primary metric vs 16-bit, in points",
    )
    save_figure(fig, out_paths)
