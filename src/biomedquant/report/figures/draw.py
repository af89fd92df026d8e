"""Drawing helpers every figure uses: panels, saving, legends, titles, GPU lines, axes.

Conventions they carry (see :mod:`biomedquant.report.figures.style` for colour and order):

* Intervals wherever the tables carry them; a figure that summarises over models says in its
  title what its bars mean.
* Nothing to draw gives a figure that says so (a panel without data says "no data"), not a
  crash: the rule's outputs exist and the report shows why a figure is empty.
* Each figure is written as PNG (for the report), PDF (for papers) and, where asked, SVG (for
  inlining into an HTML page) from the same drawing.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomedquant.common.files import atomic_path
from biomedquant.report.figures.style import (
    GPU_LINE_COLOR,
    GPU_LINES_GB,
    MAX_PIXELS,
    Order,
    dataset_title,
    metric_title,
    styled,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def subplots(
    nrows: int,
    ncols: int,
    panel_w: float,
    panel_h: float,
    *,
    extra_w: float = 1.2,
    extra_h: float = 1.4,
    **kwargs: Any,
) -> tuple[Figure, Any]:
    """A grid of panels of a fixed size in inches plus room for titles and the legend, so a
    figure grows with its content (a paper-scale study gets larger panels, not smaller text)."""
    from matplotlib.figure import Figure

    fig = Figure(
        figsize=(ncols * panel_w + extra_w, nrows * panel_h + extra_h), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def save_figure(fig: Figure, out_paths: Sequence[str | Path]) -> None:
    """Write ``fig`` to every path (format from the suffix), atomically.

    An SVG is written for inlining into an HTML page (the report's landing page): no XML
    prologue, and a width of 100% of its container instead of a fixed size in points.
    """
    import re

    width, height = fig.get_size_inches()
    dpi = min(150.0, MAX_PIXELS / max(width, height))
    for path in out_paths:
        fmt = Path(path).suffix.lstrip(".").lower()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt)
            if fmt == "svg":
                svg = tmp.read_text(encoding="utf-8")
                svg = svg[svg.index("<svg") :]
                svg = re.sub(
                    r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                    r'<svg\1 width="100%"',
                    svg,
                    count=1,
                )
                tmp.write_text(svg, encoding="utf-8")


@styled
def no_data_figure(out_paths: Sequence[str | Path], title: str, message: str) -> None:
    """A figure that says why there is nothing to draw (the report shows it in its place)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.4))
    fig.text(0.5, 0.68, title, ha="center", va="center", fontsize=12, weight="bold")
    fig.text(0.5, 0.36, textwrap.fill(message, 90), ha="center", va="center", fontsize=9)
    save_figure(fig, out_paths)


def empty_panel(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#555555")


def legend_handles(order: Order, methods: Sequence[str]) -> list[Any]:
    from matplotlib.patches import Patch

    return [
        Patch(facecolor=order.color(m), edgecolor="black", linewidth=0.4, label=order.name(m))
        for m in methods
    ]


def fig_legend(fig: Figure, handles: list[Any], title: str | None = None) -> None:
    """One legend below the panels, in as many columns as fit the figure's width."""
    entry_in = 0.45 + 0.065 * max(len(str(h.get_label())) for h in handles)
    ncols = max(1, min(len(handles), 6, int(fig.get_size_inches()[0] // entry_in)))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=ncols,
        title=title,
        frameon=False,
    )


def suptitle(fig: Figure, text: str) -> None:
    """A title wrapped to the figure's width (long titles would run off narrow figures)."""
    width_in = fig.get_size_inches()[0]
    fig.suptitle(textwrap.fill(text, max(40, int(width_in * 12))), fontsize=10)


def gpu_lines(ax: Axes, *, axis: str = "y", lo: float = 0.0, hi: float = math.inf) -> None:
    """Dashed lines at the common GPU sizes that fall inside [lo, hi] GB, labelled."""
    for gib, gb in GPU_LINES_GB:
        if not lo <= gb <= hi:
            continue
        if axis == "y":
            ax.axhline(gb, color=GPU_LINE_COLOR, linestyle="--", linewidth=0.8, zorder=0)
            ax.annotate(
                f"{gib} GB GPU",
                (1.0, gb),
                xycoords=("axes fraction", "data"),
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                color=GPU_LINE_COLOR,
            )
        else:
            # Labelled inside the axes: above it the label would collide with panel titles.
            ax.axvline(gb, color=GPU_LINE_COLOR, linestyle="--", linewidth=0.8, zorder=0)
            ax.annotate(
                f"{gib} GB GPU",
                (gb, 0.02),
                xycoords=("data", "axes fraction"),
                xytext=(-2, 0),
                textcoords="offset points",
                ha="right",
                va="bottom",
                rotation=90,
                fontsize=6.5,
                color=GPU_LINE_COLOR,
            )


def log_axis(ax: Axes, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(fmt)
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def dataset_ticks(ax: Axes, datasets: Sequence[str], metrics: dict[str, str]) -> None:
    import numpy as np

    labels = [
        f"{dataset_title(d)} ({metric_title(metrics[d])})" if d in metrics else dataset_title(d)
        for d in datasets
    ]
    ax.set_xticks(np.arange(len(datasets)), labels, rotation=35, ha="right")


def bar_labels(
    ax: Axes,
    positions: Sequence[float],
    values: Sequence[float],
    fmt: str = ".3g",
    heights: Sequence[float] | None = None,
    texts: Sequence[str] | None = None,
) -> None:
    """Each bar's value printed above it, or above ``heights`` (say, its interval's top);
    ``texts``, where given, replace the formatted values."""
    heights = values if heights is None else heights
    texts = [f"{v:{fmt}}" for v in values] if texts is None else texts
    for p, v, h, text in zip(positions, values, heights, texts, strict=True):
        if not math.isnan(v):
            ax.annotate(
                text,
                (p, h),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6,
                rotation=90,
            )
