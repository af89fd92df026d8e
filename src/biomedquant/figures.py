"""The study's figures and report pages, drawn from the tidy tables in ``results/tables/``.

Conventions shared by every figure, so that a reader who has learnt one can read the next:

* One colour per quantization method, the same in every figure: the unquantized baseline grey,
  the quantized methods in the Okabe-Ito palette (distinguishable under the common colour-vision
  deficiencies), in the config's method order.
* Datasets by their benchmark title, in registry order (grouped by task); prompting methods in
  registry order (zero-shot first); models in the config's order.
* Scores on the metric's own 0-1 scale; changes from the baseline in points (x100), the unit
  papers use ("4-bit lost 1.2 points of F1").
* Intervals wherever the tables carry them (bootstrap for scores, paired bootstrap for
  changes); a figure that summarises over models says in its title what its bars mean.
* Memory: the measured peak GPU allocation where a GPU run exists, else the fit estimator's
  total, drawn hatched or hollow and labelled "estimated", never passed off as a measurement.
* Nothing to draw gives a figure that says so (a panel without data says "no data"), not a
  crash: the rule's outputs exist and the report shows why a figure is empty.

Each figure is written as PNG (for the report) and PDF (for papers) from the same drawing.
The readers (:func:`read_scores`, :func:`read_comparisons`, :func:`read_memory`) are the
notebook's entry points too.
"""

from __future__ import annotations

import functools
import html
import json
import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from biomedquant.datasets.registry import DATASETS
from biomedquant.io import atomic_path, write_text
from biomedquant.prompting import PROMPT_METHODS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BASELINE_COLOR = "#999999"
# Okabe & Ito (2008), "Color Universal Design"; yellow last, it is faint on white.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
# Reference lines: common GPU sizes as marketed ("40 GB" is 40 GiB), drawn on GB (10^9) axes.
GPU_LINES_GIB = (24, 40, 80)
GIB = 1024**3
SIGNIFICANCE = 0.05
# Largest PNG side in pixels: the paper-scale figures stay loadable in a browser.
MAX_PIXELS = 6000
TASK_TITLES = {
    "ner": "named entity recognition",
    "re": "relation extraction",
    "mlc": "multi-label classification",
    "qa": "question answering",
}
METRIC_TITLES = {
    "f1": "F1",
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
}
ESTIMATED_HATCH = "////"
# Recommendation figure: a method's verdict over all its tests.
MARKERS = {"non-inferior": "o", "inconclusive": "D", "inferior": "X"}


# --------------------------------------------------------------------------- reading the tables


def _truthy(values: pd.Series) -> pd.Series:
    """CSV booleans (``True``/``False`` as text) as booleans."""
    return values.astype(str).str.strip().str.lower().isin(("true", "1", "yes"))


def _read_csv(path: str | Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(path, keep_default_na=True)


def read_scores(path: str | Path, *, primary_only: bool = False) -> pd.DataFrame:
    """The tidy score table (one row per model x method x dataset x prompt x metric).

    Scores are on the metric's 0-1 scale. ``primary_only`` keeps the benchmark's primary metric
    (NER F1, relation extraction and multi-label macro-F1, QA accuracy).
    """
    df = _read_csv(path)
    df["primary"] = _truthy(df["primary"])
    for col in ("model", "method", "dataset", "prompt", "metric", "task"):
        if col in df:
            df[col] = df[col].astype(str)
    return df[df["primary"]].reset_index(drop=True) if primary_only else df


def read_comparisons(path: str | Path, *, primary_only: bool = False) -> pd.DataFrame:
    """The comparison table: each quantized run against the baseline on the same items.

    ``diff`` = method - baseline on the 0-1 scale, with its paired-bootstrap interval
    (``diff_ci_low``, ``diff_ci_high``), ``p_value`` and ``flip_rate``.
    """
    return read_scores(path, primary_only=primary_only)


def _numeric(df: pd.DataFrame, col: str) -> pd.Series:
    import pandas as pd

    if col not in df:
        return pd.Series(float("nan"), index=df.index)
    return pd.to_numeric(df[col], errors="coerce")


def deployment_memory(memory: pd.DataFrame) -> pd.DataFrame:
    """Add ``memory_gb`` and ``memory_source``: the GPU memory a deployment needs.

    The measured peak GPU allocation when a GPU run exists (``measured``), else the fit
    estimator's total with KV cache and overhead (``estimated``). Measured weights alone
    (``weights_gb``, also known on a CPU) leave out the KV cache and the runtime, so they are
    not used here: mixing them in would flatter the runs made on a CPU.
    """
    import numpy as np

    out = memory.copy()
    measured = _numeric(out, "peak_gpu_allocated_gb")
    estimated = _numeric(out, "est_total_gb")
    has_measured = measured.notna() & (measured > 0)
    out["memory_gb"] = measured.where(has_measured, estimated)
    out["memory_source"] = np.where(
        has_measured, "measured", np.where(estimated.notna(), "estimated", "unknown")
    )
    return out


def read_memory(path: str | Path) -> pd.DataFrame:
    """The memory table (one row per model x method) with :func:`deployment_memory` added."""
    df = _read_csv(path)
    for col in ("model", "method"):
        if col in df:
            df[col] = df[col].astype(str)
    if "measured" in df:
        df["measured"] = _truthy(df["measured"])
    return deployment_memory(df)


# --------------------------------------------------------------------------- order and colour


@dataclass(frozen=True)
class Order:
    """Display order of models, methods and prompts, and the baseline method.

    The workflow passes the config's order, so a method keeps its colour and place in every
    figure; values found only in the data follow, sorted. ``with_data`` adds them.
    """

    methods: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    baseline: str | None = None

    def with_data(self, *frames: pd.DataFrame) -> Order:
        """This order extended by the values present in ``frames``."""
        found: dict[str, set[str]] = {"methods": set(), "models": set(), "prompts": set()}
        baseline = self.baseline
        for df in frames:
            if "method" in df:
                found["methods"].update(df["method"].dropna().astype(str))
            if "model" in df:
                found["models"].update(df["model"].dropna().astype(str))
            if "prompt" in df:
                found["prompts"].update(df["prompt"].dropna().astype(str))
            if "baseline" in df and len(df):
                names = df["baseline"].dropna().astype(str)
                found["methods"].update(names)
                baseline = baseline or (names.iloc[0] if len(names) else None)
        if baseline is None and ("none" in found["methods"] or "none" in self.methods):
            baseline = "none"
        prompt_rank = tuple(self.prompts) or tuple(PROMPT_METHODS)

        def extend(known: Sequence[str], new: set[str]) -> tuple[str, ...]:
            return tuple(known) + tuple(sorted(new - set(known)))

        methods = extend(self.methods, found["methods"])
        if baseline in methods:
            methods = (baseline, *(m for m in methods if m != baseline))
        prompts = extend(
            [p for p in prompt_rank if p in found["prompts"] or p in self.prompts],
            found["prompts"],
        )
        return Order(methods, extend(self.models, found["models"]), prompts, baseline)

    @staticmethod
    def sort(ranked: Sequence[str], values: Iterable[str]) -> list[str]:
        """``values`` (deduplicated) in the order of ``ranked``, unknown ones last, sorted."""
        present = {str(v) for v in values}
        return [v for v in ranked if v in present] + sorted(present - set(ranked))

    def color(self, method: str) -> str:
        """The method's colour: grey for the baseline, Okabe-Ito in order for the others."""
        if method == self.baseline:
            return BASELINE_COLOR
        quantized = [m for m in self.methods if m != self.baseline]
        idx = quantized.index(method) if method in quantized else len(quantized)
        return OKABE_ITO[idx % len(OKABE_ITO)]


def dataset_order(values: Iterable[str]) -> list[str]:
    """Datasets in registry order (NER, relation extraction, multi-label, QA)."""
    return Order.sort(list(DATASETS), values)


def dataset_title(name: str) -> str:
    """The benchmark's own name (BC5CDR-chemical, not bc5cdr_chem) for labels."""
    return DATASETS[name].title if name in DATASETS else name


def metric_title(name: str) -> str:
    """A metric as papers write it (macro-F1, not macro_f1)."""
    return METRIC_TITLES.get(name, name.replace("_", "-"))


# --------------------------------------------------------------------------- drawing helpers


# Sizes for figures read at print size; TrueType fonts keep the PDF's text editable.
STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "pdf.fonttype": 42,
}
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _styled(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """Draw under :data:`STYLE` without touching the caller's matplotlib settings (figures are
    built with ``matplotlib.figure.Figure``, not pyplot: no backend switch, nothing left open,
    so a notebook's inline plotting is unaffected)."""

    @functools.wraps(draw)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _subplots(
    nrows: int,
    ncols: int,
    panel_w: float,
    panel_h: float,
    *,
    extra_w: float = 1.2,
    extra_h: float = 1.4,
    **kwargs: Any,
) -> tuple[Figure, Any]:
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


@_styled
def no_data_figure(out_paths: Sequence[str | Path], title: str, message: str) -> None:
    """A figure that says why there is nothing to draw (the report shows it in its place)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.4))
    fig.text(0.5, 0.68, title, ha="center", va="center", fontsize=12, weight="bold")
    fig.text(0.5, 0.36, textwrap.fill(message, 90), ha="center", va="center", fontsize=9)
    save_figure(fig, out_paths)


def _empty_panel(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#555555")


def _legend_handles(order: Order, methods: Sequence[str]) -> list[Any]:
    from matplotlib.patches import Patch

    return [
        Patch(facecolor=order.color(m), edgecolor="black", linewidth=0.4, label=m) for m in methods
    ]


def _fig_legend(fig: Figure, handles: list[Any], title: str | None = None) -> None:
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


def _suptitle(fig: Figure, text: str) -> None:
    """A title wrapped to the figure's width (long titles would run off narrow figures)."""
    width_in = fig.get_size_inches()[0]
    fig.suptitle(textwrap.fill(text, max(40, int(width_in * 12))), fontsize=10)


def _gpu_lines(ax: Axes, *, axis: str = "y", lo: float = 0.0, hi: float = math.inf) -> None:
    """Dashed lines at the common GPU sizes that fall inside [lo, hi] GB, labelled."""
    for gib in GPU_LINES_GIB:
        gb = gib * GIB / 1e9
        if not lo <= gb <= hi:
            continue
        if axis == "y":
            ax.axhline(gb, color="#444444", linestyle="--", linewidth=0.8, zorder=0)
            ax.annotate(
                f"{gib} GB GPU",
                (1.0, gb),
                xycoords=("axes fraction", "data"),
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                color="#444444",
            )
        else:
            # Labelled inside the axes: above it the label would collide with panel titles.
            ax.axvline(gb, color="#444444", linestyle="--", linewidth=0.8, zorder=0)
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
                color="#444444",
            )


def _log_axis(ax: Axes, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(fmt)
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _dataset_ticks(ax: Axes, datasets: Sequence[str], metrics: dict[str, str]) -> None:
    import numpy as np

    labels = [
        f"{dataset_title(d)} ({metric_title(metrics[d])})" if d in metrics else dataset_title(d)
        for d in datasets
    ]
    ax.set_xticks(np.arange(len(datasets)), labels, rotation=35, ha="right")


# --------------------------------------------------------------------------- the figures


@_styled
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
    fig, axes = _subplots(
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
    for i, model in enumerate(models):
        for j, prompt in enumerate(prompts):
            ax = axes[i, j]
            sub = df[(df["model"] == model) & (df["prompt"] == prompt)]
            if sub.empty:
                _empty_panel(ax)
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
                if not annotate:
                    continue
                # Printed above the interval, so a score of 0 reads as 0, not as a gap.
                _bar_labels(ax, pos, vals, ".2f", heights=np.fmax(vals, ci_hi))
            ax.set_ylim(0, 1.2 if annotate else 1.05)
            ax.grid(axis="y", alpha=0.3)
            if i == 0:
                ax.set_title(prompt)
            if j == 0:
                ax.set_ylabel(f"{model}\nscore")
    for ax in axes[-1, :]:
        _dataset_ticks(ax, datasets, metrics)
    _fig_legend(fig, _legend_handles(order, methods), "quantization method")
    _suptitle(
        fig,
        "Primary metric per dataset by quantization method "
        "(columns: prompting method; error bars: bootstrap interval)",
    )
    save_figure(fig, out_paths)


@_styled
def plot_change_heatmap(
    comparisons_path: str | Path,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
    alpha: float = SIGNIFICANCE,
) -> None:
    """Change from the baseline in points, models x datasets, one panel per method (columns)
    and prompting method (rows); ``*`` and a black frame mark p < ``alpha``.

    One colour scale for all panels, symmetric around 0, so equal colours mean equal changes.
    """
    import numpy as np
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
    vmax = float(np.nanmax(np.abs(diffs))) if diffs.notna().any() else 1.0
    vmax = max(1.0, math.ceil(vmax))
    fig, axes = _subplots(
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
            pvals = sub.pivot_table(
                index="model", columns="dataset", values="p_value", aggfunc="first"
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
                p = pvals.iat[r, c]
                significant = bool(p < alpha) if not np.isnan(p) else False
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
                _dataset_ticks(ax, datasets, metrics)
            else:
                ax.set_xticks(range(len(datasets)), [""] * len(datasets))
            # Two lines: side by side, five methods' one-line titles run into each other.
            ax.set_title(f"{method}\nvs {order.baseline or 'baseline'}, {prompt}", fontsize=9)
            ax.tick_params(length=0)
    fig.colorbar(image, ax=axes, shrink=0.8, label="change (points)")
    _suptitle(
        fig,
        f"Change of the primary metric from the unquantized baseline "
        f"(* and frame: paired bootstrap p < {alpha:g})",
    )
    save_figure(fig, out_paths)


def _bar_labels(
    ax: Axes,
    positions: Sequence[float],
    values: Sequence[float],
    fmt: str = ".3g",
    heights: Sequence[float] | None = None,
) -> None:
    """Each bar's value printed above it, or above ``heights`` (say, its interval's top)."""
    heights = values if heights is None else heights
    for p, v, h in zip(positions, values, heights, strict=True):
        if not math.isnan(v):
            ax.annotate(
                f"{v:{fmt}}",
                (p, h),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6,
                rotation=90,
            )


def _memory_legend(fig: Figure, order: Order, methods: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = _legend_handles(order, methods) + [
        Patch(facecolor="#777777", edgecolor="black", label="measured (peak GPU allocated)"),
        Patch(
            facecolor="white",
            edgecolor="#777777",
            hatch=ESTIMATED_HATCH,
            label="estimated (fit estimator)",
        ),
    ]
    _fig_legend(fig, handles, "quantization method; memory")


@_styled
def plot_memory(
    memory_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """GPU memory per model and method on a log axis with 24/40/80 GB lines.

    Measured peak allocation where a GPU run exists (solid), the fit estimator otherwise
    (hatched): a reader sees at once which numbers come from a run.
    """
    import numpy as np

    mem = read_memory(memory_path)
    mem = mem[mem["memory_gb"].notna()]
    if mem.empty:
        no_data_figure(out_paths, "GPU memory", f"{memory_path} holds no memory figures.")
        return
    order = (order or Order()).with_data(mem)
    models = Order.sort(order.models, mem["model"])
    methods = Order.sort(order.methods, mem["method"])
    n_bars = len(models) * len(methods)
    fig, axes = _subplots(1, 1, max(4.5, 0.16 * n_bars + 2.0), 3.6, extra_h=1.4)
    ax = axes[0, 0]
    width = 0.8 / len(methods)
    x = np.arange(len(models))
    for k, method in enumerate(methods):
        m = mem[mem["method"] == method].set_index("model").reindex(models)
        vals = m["memory_gb"].to_numpy(dtype=float)
        pos = x + (k - (len(methods) - 1) / 2) * width
        measured = (m["memory_source"] == "measured").to_numpy()
        color = order.color(method)
        for p, v, is_measured in zip(pos, vals, measured, strict=True):
            if np.isnan(v):
                continue
            ax.bar(
                p,
                v,
                width,
                color=color if is_measured else "white",
                edgecolor=color if not is_measured else "black",
                hatch=None if is_measured else ESTIMATED_HATCH,
                linewidth=0.8 if not is_measured else 0.3,
            )
        if n_bars <= 40:
            _bar_labels(ax, pos, vals)
    top = float(mem["memory_gb"].max())
    bottom = float(mem["memory_gb"].min())
    _log_axis(ax, "y")
    ax.set_ylim(max(0.01, bottom / 3), max(120.0, top * 2.5))
    _gpu_lines(ax)
    ax.set_xticks(
        x,
        models,
        rotation=30 if len(models) > 4 else 0,
        ha="right" if len(models) > 4 else "center",
    )
    ax.set_ylabel("GPU memory (GB, log scale)")
    ax.grid(axis="y", which="major", alpha=0.3)
    _memory_legend(fig, order, methods)
    _suptitle(fig, "GPU memory per model and quantization method")
    save_figure(fig, out_paths)


def task_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Primary score per model x method x prompt x task: the mean over the task's datasets.

    Equal weight per dataset, so a task's larger test set does not drown the other.
    """
    primary = scores[scores["primary"]] if "primary" in scores else scores
    return (
        primary.groupby(["model", "method", "prompt", "task"], as_index=False)
        .agg(value=("value", "mean"), n_datasets=("dataset", "nunique"))
        .reset_index(drop=True)
    )


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: less or equal memory and a higher score,
    ordered by memory (the trade-off frontier: each step buys score with memory)."""
    ranked = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in ranked:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _label_points(
    ax: Axes, points: list[tuple[float, float, str]], *, xlim: tuple[float, float]
) -> None:
    """Label points left to right, skipping a label that would overlap one already placed
    (x on a log axis within ``xlim``, y within 0-1): a crowded frontier stays readable."""
    span = math.log10(xlim[1]) - math.log10(xlim[0])
    placed: list[tuple[float, float, float, float]] = []
    for x, y, text in sorted(points):
        # label box in axes fractions: 5.5 pt characters, offset right and up of the point
        fx = (math.log10(x) - math.log10(xlim[0])) / span
        fy = y / 1.08
        w, h = len(text) * 0.028, 0.06
        box = (fx + 0.01, fy + 0.01, fx + 0.01 + w, fy + 0.01 + h)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            continue
        placed.append(box)
        ax.annotate(text, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=5.5)


@_styled
def plot_memory_vs_score(
    scores_path: str | Path,
    memory_path: str | Path,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
) -> None:
    """Memory against score per task (columns) and prompting method (rows), with the
    frontier of the runs that no other run beats on both."""
    scores = read_scores(scores_path, primary_only=True)
    mem = read_memory(memory_path)
    data = task_scores(scores).merge(
        mem[["model", "method", "memory_gb", "memory_source"]], on=["model", "method"]
    )
    data = data[data["memory_gb"].notna()]
    if data.empty:
        no_data_figure(
            out_paths,
            "Memory versus score",
            "No run has both a score and a memory figure yet.",
        )
        return
    order = (order or Order()).with_data(data)
    prompts = Order.sort(order.prompts, data["prompt"])
    tasks = Order.sort(list(TASK_TITLES), data["task"])
    methods = Order.sort(order.methods, data["method"])
    models = Order.sort(order.models, data["model"])
    fig, axes = _subplots(len(prompts), len(tasks), 3.3, 2.6, extra_h=1.6, sharex=True, sharey=True)
    lo, hi = float(data["memory_gb"].min()), float(data["memory_gb"].max())
    for i, prompt in enumerate(prompts):
        for j, task in enumerate(tasks):
            ax = axes[i, j]
            sub = data[(data["prompt"] == prompt) & (data["task"] == task)]
            if sub.empty:
                _empty_panel(ax)
            for model in models:
                line = sub[sub["model"] == model].sort_values("memory_gb")
                ax.plot(line["memory_gb"], line["value"], color="#bbbbbb", lw=0.6, zorder=1)
            # one scatter per method and memory source (one per point is slow at paper scale)
            for (method, source), pts in sub.groupby(["method", "memory_source"]):
                measured = source == "measured"
                color = order.color(method)
                ax.scatter(
                    pts["memory_gb"],
                    pts["value"],
                    s=22,
                    marker="o",
                    facecolor=color if measured else "white",
                    edgecolor=color if not measured else "black",
                    linewidth=1.0 if not measured else 0.4,
                    zorder=3,
                )
            points = list(zip(sub["memory_gb"], sub["value"], strict=True))
            front = [sub.iloc[k] for k in pareto_front(points)]
            if front:
                ax.step(
                    [r["memory_gb"] for r in front],
                    [r["value"] for r in front],
                    where="post",
                    color="black",
                    lw=0.8,
                    ls=":",
                    zorder=2,
                )
                if len(models) > 1:
                    _label_points(
                        ax,
                        [(r["memory_gb"], r["value"], r["model"]) for r in front],
                        xlim=(lo / 1.6, hi * 1.6),
                    )
            _log_axis(ax, "x")
            ax.set_ylim(-0.03, 1.05)
            ax.grid(alpha=0.3)
            _gpu_lines(ax, axis="x", lo=lo / 1.5, hi=hi * 1.5)
            if i == 0:
                n = int(sub["n_datasets"].max()) if len(sub) else 0
                ax.set_title(f"{TASK_TITLES.get(task, task)}\n(mean of {n} datasets)")
            if j == 0:
                ax.set_ylabel(f"{prompt}\nprimary score")
            if i == len(prompts) - 1:
                ax.set_xlabel("GPU memory (GB, log)")
    ax0 = axes[0, 0]
    ax0.set_xlim(lo / 1.6, hi * 1.6)
    from matplotlib.lines import Line2D

    handles = _legend_handles(order, methods) + [
        Line2D([], [], marker="o", ls="", mfc="#777777", mec="black", label="measured"),
        Line2D([], [], marker="o", ls="", mfc="white", mec="#777777", label="estimated"),
        Line2D([], [], color="black", ls=":", label="frontier"),
    ]
    _fig_legend(fig, handles, "quantization method; memory; best score for its memory")
    _suptitle(fig, "Memory versus primary score per task (grey lines join one model's methods)")
    save_figure(fig, out_paths)


@_styled
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
    fig, axes = _subplots(
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
    _fig_legend(fig, _legend_handles(order, methods), "quantization method")
    what = "error bars: bootstrap interval" if n_models == 1 else f"mean over {n_models} models"
    single = "; only one prompting method was run" if len(prompts) == 1 else ""
    _suptitle(fig, f"Primary score by prompting method ({what}{single})")
    save_figure(fig, out_paths)


@_styled
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
    fig, axes = _subplots(
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
                _bar_labels(ax, pos, vals, ".2f")
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
    _dataset_ticks(axes[-1, 0], datasets, metrics)
    handles = _legend_handles(order, methods)
    if "noise_floor_flip_rate" in df and df["noise_floor_flip_rate"].notna().any():
        from matplotlib.lines import Line2D

        handles.append(
            Line2D([], [], color="black", ls="--", label="baseline rerun (other batch size)")
        )
    _fig_legend(fig, handles, "quantization method")
    what = f"mean over {n_models} models, dots: each model" if n_models > 1 else "one model"
    _suptitle(
        fig,
        f"Flip rate: share of items whose parsed answer differs from the baseline's ({what})",
    )
    save_figure(fig, out_paths)


@_styled
def plot_memory_estimate_check(
    memory_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """The fit estimator against what the runs measured: weights (any device) and the total
    (peak GPU allocation, CUDA runs only). Points on the diagonal: the estimate was right."""
    mem = read_memory(memory_path)
    pairs = [
        ("est_weights_gb", "weights_gb", "weights", "no run has measured its weights yet"),
        (
            "est_total_gb",
            "peak_gpu_allocated_gb",
            "total (weights + KV cache + overhead)",
            "no GPU run yet: peak GPU memory is measured on CUDA devices only",
        ),
    ]
    found = [mem[_numeric(mem, e).notna() & (_numeric(mem, m) > 0)] for e, m, _, _ in pairs]
    if all(f.empty for f in found):
        no_data_figure(
            out_paths,
            "Estimated versus measured memory",
            "No run has measured memory yet: run inference to compare the fit estimator "
            "with measurements.",
        )
        return
    order = (order or Order()).with_data(mem)
    methods = Order.sort(order.methods, mem["method"])
    fig, axes = _subplots(1, 2, 3.8, 3.6, extra_h=1.2)
    for ax, (est_col, meas_col, label, empty), sub in zip(axes[0], pairs, found, strict=True):
        ax.set_title(label)
        if sub.empty:
            _empty_panel(ax, textwrap.fill(empty, 40))
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        est = _numeric(sub, est_col)
        meas = _numeric(sub, meas_col)
        for method in methods:
            sel = sub["method"] == method
            if sel.any():
                ax.scatter(
                    est[sel],
                    meas[sel],
                    s=24,
                    color=order.color(method),
                    edgecolor="black",
                    linewidth=0.4,
                    zorder=3,
                )
        if len(sub) <= 16:
            for e, m, model in zip(est, meas, sub["model"], strict=True):
                ax.annotate(model, (e, m), xytext=(3, -3), textcoords="offset points", fontsize=5.5)
        lo = float(min(est.min(), meas.min())) / 1.5
        hi = float(max(est.max(), meas.max())) * 1.5
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--", zorder=1)
        _log_axis(ax, "x")
        _log_axis(ax, "y")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ratio = (meas / est).median()
        ax.text(
            0.03,
            0.97,
            f"median measured / estimated: {ratio:.2f}",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
        )
        ax.set_xlabel("estimated (GB, log)")
        ax.set_ylabel("measured (GB, log)")
        ax.grid(alpha=0.3)
    _fig_legend(fig, _legend_handles(order, methods), "quantization method")
    _suptitle(fig, "Fit estimator versus measurement (dashed: estimate = measurement)")
    save_figure(fig, out_paths)


@_styled
def plot_recommendation(
    recommendation_path: str | Path,
    evidence_path: str | Path,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
) -> None:
    """Per model: each method's binding test (the task and prompt with the lowest lower bound:
    its change, and the one-sided bound as a line) against the margin (left), and its memory
    (right), the recommended method ringed. Marker: circle non-inferior on every test, diamond
    some test inconclusive, cross some test inferior. Both criteria of the choice on one row."""
    import numpy as np
    import pandas as pd
    from matplotlib.lines import Line2D

    rec = _read_csv(recommendation_path)
    ev = _read_csv(evidence_path)
    if rec.empty:
        no_data_figure(
            out_paths,
            "Recommendation",
            "Nothing to recommend: no model has both comparisons with a baseline and memory.",
        )
        return
    for frame in (rec, ev):
        for col in ("model", "method", "recommended", "baseline"):
            if col in frame:
                frame[col] = frame[col].astype(str)
    order = (order or Order()).with_data(ev, rec.rename(columns={"recommended": "method"}))
    models = Order.sort(order.models, rec["model"])
    margin = float(pd.to_numeric(ev["margin_points"]).min()) if len(ev) else 1.0
    # One row per (model, method): the binding (task, prompt) test and the method's memory.
    # (drop_duplicates, not groupby.first: first() would mix rows where a bound is empty)
    worst = ev.sort_values("lower_bound_points", kind="stable", na_position="first")
    worst = worst.drop_duplicates(["model", "method"])[
        ["model", "method", "delta_points", "lower_bound_points"]
    ]
    verdict = (
        ev.groupby(["model", "method"])["verdict"]
        .agg(
            lambda v: (
                "inferior"
                if (v == "inferior").any()
                else ("non-inferior" if (v == "non-inferior").all() else "inconclusive")
            )
        )
        .rename("qualifies")
    )
    mem = ev.groupby(["model", "method"], as_index=False)[["memory_gb", "memory_source"]].first()
    rows = worst.merge(verdict.reset_index(), on=["model", "method"]).merge(
        mem, on=["model", "method"]
    )
    base = rec[["model", "baseline", "baseline_memory_gb"]].rename(
        columns={"baseline": "method", "baseline_memory_gb": "memory_gb"}
    )
    base = base.assign(delta_points=0.0, qualifies="non-inferior", memory_source="")
    rows = pd.concat([base, rows], ignore_index=True)
    methods = Order.sort(order.methods, rows["method"])
    n_methods = len(methods)
    fig, axes = _subplots(
        1, 2, 4.2, max(2.0, 0.16 * n_methods * len(models) + 0.6), extra_h=1.6, sharey=True
    )
    left, right = axes[0]
    step = 0.8 / n_methods
    y_of = {m: i for i, m in enumerate(models)}
    finite_mem = pd.to_numeric(rows["memory_gb"], errors="coerce")
    for row in rows.itertuples():
        y = y_of[row.model] + (methods.index(row.method) - (n_methods - 1) / 2) * step
        color = order.color(row.method)
        marker = MARKERS[row.qualifies]
        lo = getattr(row, "lower_bound_points", float("nan"))
        if not pd.isna(lo):
            left.plot([lo, row.delta_points], [y, y], color=color, lw=1.0)
            left.plot([lo], [y], marker="|", color=color, ms=7)
        left.scatter(
            row.delta_points,
            y,
            marker=marker,
            s=26,
            color=color,
            edgecolor="black",
            linewidth=0.4,
            zorder=3,
        )
        memory = pd.to_numeric(row.memory_gb, errors="coerce")
        if not pd.isna(memory):
            right.scatter(
                memory,
                y,
                marker=marker,
                s=26,
                color=color,
                edgecolor="black",
                linewidth=0.4,
                zorder=3,
            )
    for r in rec.itertuples():
        if r.recommended not in methods:
            continue
        y = y_of[r.model] + (methods.index(r.recommended) - (n_methods - 1) / 2) * step
        memory = pd.to_numeric(r.memory_gb, errors="coerce")
        if pd.isna(memory):
            continue
        right.scatter(memory, y, s=140, facecolor="none", edgecolor="black", lw=1.4, zorder=4)
        gpu = r.smallest_gpu_gb
        fits = f", fits {gpu:g} GB" if not pd.isna(gpu) else ", fits no common GPU"
        right.annotate(
            f"{r.recommended}: {memory:.3g} GB{fits}",
            (memory, y),
            xytext=(9, 0),
            textcoords="offset points",
            va="center",
            fontsize=6.5,
        )
    left.axvspan(
        -margin,
        max(margin, float(np.nanmax(rows["delta_points"])) + 1),
        color="#009E73",
        alpha=0.12,
        lw=0,
    )
    left.axvline(-margin, color="#009E73", lw=1.0)
    left.axvline(0, color="black", lw=0.6)
    left.set_xlabel("change (points), bar: one-sided lower bound, binding task and prompt")
    left.set_title(f"accuracy: loss shown smaller than {margin:g} point(s)?")
    left.set_yticks(range(len(models)), models)
    left.set_ylim(len(models) - 0.5, -0.5)
    left.grid(axis="x", alpha=0.3)
    if finite_mem.notna().any():
        lo, hi = float(finite_mem.min()), float(finite_mem.max())
        _log_axis(right, "x")
        right.set_xlim(lo / 2, hi * 8)
        _gpu_lines(right, axis="x", lo=lo / 2, hi=hi * 8)
    right.set_xlabel("GPU memory (GB, log)")
    right.set_title("memory: the least among the non-inferior (ringed)")
    right.grid(axis="x", alpha=0.3)
    handles = _legend_handles(order, methods) + [
        Line2D([], [], marker=MARKERS[v], ls="", mfc="#777777", mec="black", label=label)
        for v, label in (
            ("non-inferior", "non-inferior on every test"),
            ("inconclusive", "some test inconclusive"),
            ("inferior", "some test inferior"),
        )
    ]
    _fig_legend(fig, handles, "quantization method")
    _suptitle(
        fig,
        "Recommendation: least memory among the methods shown non-inferior to the baseline on "
        "every task and prompt (Holm-adjusted one-sided bootstrap tests)",
    )
    save_figure(fig, out_paths)


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the study: the tables it reads (in argument order) and how it is drawn."""

    draw: Callable[..., None]
    inputs: tuple[str, ...]
    title: str


FIGURES: dict[str, FigureSpec] = {
    "scores_by_dataset": FigureSpec(plot_scores_by_dataset, ("scores",), "Scores by dataset"),
    "change_heatmap": FigureSpec(plot_change_heatmap, ("comparisons",), "Change from the baseline"),
    "prompting": FigureSpec(plot_prompting, ("scores",), "Prompting methods under quantization"),
    "flip_rate": FigureSpec(plot_flip_rate, ("comparisons",), "Flip rate"),
    "memory": FigureSpec(plot_memory, ("memory",), "GPU memory"),
    "memory_vs_score": FigureSpec(
        plot_memory_vs_score, ("scores", "memory"), "Memory versus score"
    ),
    "memory_estimate_check": FigureSpec(
        plot_memory_estimate_check, ("memory",), "Estimated versus measured memory"
    ),
    "recommendation": FigureSpec(
        plot_recommendation, ("recommendation", "evidence"), "Recommendation"
    ),
    "change_by_label": FigureSpec(
        lambda *a, **k: _label_heatmap(*a, **k), ("comparisons_by_label",), "Change by label"
    ),
}


def _label_heatmap(*args: Any, **kwargs: Any) -> None:
    """The per-label heatmap lives in its own module (imported late: it imports this one)."""
    from biomedquant.label_heatmap import plot_change_by_label

    plot_change_by_label(*args, **kwargs)


def draw_figure(
    name: str,
    tables: dict[str, str | Path],
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
) -> None:
    """Draw figure ``name`` of :data:`FIGURES` from the named table paths."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    spec = FIGURES[name]
    missing = [t for t in spec.inputs if not tables.get(t)]
    if missing:
        raise ValueError(f"figure {name} needs the table(s): {', '.join(missing)}")
    spec.draw(*(tables[t] for t in spec.inputs), out_paths, order=order)


# --------------------------------------------------------------------------- report pages

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; font-size: 13px; margin: 1em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }}
th {{ background: #f0f0f0; position: sticky; top: 0; }}
td:first-child, th:first-child {{ text-align: left; }}
p.note {{ max-width: 60em; }}
table.wrap td {{ white-space: normal; text-align: left; max-width: 60em; }}
pre {{ background: #f6f6f6; padding: 0.8em; }}
</style></head><body>
<h2>{title}</h2>
{body}
</body></html>
"""

TABLE_NOTES = {
    "scores": "Primary metric of every run as score [bootstrap interval], on the metric's 0-1 "
    "scale; one row per model, method and prompting method. The full tidy table (every metric, "
    "n, parse-failure rate) is the CSV below.",
    "comparisons": "Change of the primary metric from the unquantized baseline in points "
    "(x100) with its paired-bootstrap interval; * marks p < 0.05. The full table (every "
    "metric, p-values, flip rates) is the CSV below.",
    "memory": "Memory per model and method: the fit estimator (est_*), and what the runs "
    "measured (weights in the deployment dtype, peak GPU and host memory, size on disk).",
    "recommendation": "Per model, the method with the least GPU memory that is shown "
    "non-inferior to the baseline (its loss smaller than the margin) on every task and prompting "
    "method; when none is, the baseline, and the least-memory method never shown inferior as "
    "'not shown to lose'. A verdict is a one-sided bound of the change, pooled over the task's "
    "datasets by a stratified paired bootstrap, with Holm's correction over the method's tests; "
    "the minimum detectable loss is the smallest margin the test sets could have established. "
    "The evidence table lists every test.",
}


def _csv_link(csv_path: Path) -> str:
    import base64

    data = base64.b64encode(csv_path.read_bytes()).decode("ascii")
    return (
        f'<p><a download="{html.escape(csv_path.name)}" '
        f'href="data:text/csv;base64,{data}">Download {html.escape(csv_path.name)}</a></p>'
    )


def _fmt_ci(v: float, lo: float, hi: float, scale: float = 1.0, sign: bool = False) -> str:
    if math.isnan(v):
        return ""
    f = "+.1f" if sign else ".3f"
    if math.isnan(lo) or math.isnan(hi):
        return f"{v * scale:{f}}"
    return f"{v * scale:{f}} [{lo * scale:{f}}, {hi * scale:{f}}]"


def summary_table(kind: str, csv_path: str | Path) -> pd.DataFrame:
    """The report's view of a table: wide and short where the CSV is long (scores and
    comparisons: one row per model x method x prompt, one column per dataset)."""
    if kind in ("scores", "comparisons"):
        df = read_scores(csv_path, primary_only=True)
        if df.empty:
            return df
        if kind == "scores":
            df["cell"] = [
                _fmt_ci(v, lo, hi)
                for v, lo, hi in zip(df["value"], df["ci_low"], df["ci_high"], strict=True)
            ]
        else:
            df["cell"] = [
                _fmt_ci(d, lo, hi, 100, sign=True) + ("*" if p < SIGNIFICANCE else "")
                for d, lo, hi, p in zip(
                    df["diff"], df["diff_ci_low"], df["diff_ci_high"], df["p_value"], strict=True
                )
            ]
        order = Order().with_data(df)
        wide = df.pivot_table(
            index=["model", "method", "prompt"], columns="dataset", values="cell", aggfunc="first"
        )
        wide = wide.reindex(columns=dataset_order(wide.columns))
        wide.columns = [dataset_title(c) for c in wide.columns]
        keys = sorted(
            wide.index,
            key=lambda k: (
                order.models.index(k[0]),
                order.methods.index(k[1]),
                order.prompts.index(k[2]),
            ),
        )
        return wide.reindex(keys).reset_index()
    return _read_csv(csv_path)


def _html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")


def write_table_page(
    kind: str,
    csv_path: str | Path,
    out_path: str | Path,
    *,
    evidence_path: str | Path | None = None,
) -> None:
    """An HTML page for the report (which shows HTML, not CSV): the table, what it holds, and
    the CSV itself as a download. The recommendation is shown one model at a time (field and
    value: its evidence is long text), followed by its evidence table when given."""
    csv_path = Path(csv_path)
    table = summary_table(kind, csv_path)
    body = f'<p class="note">{html.escape(TABLE_NOTES.get(kind, ""))}</p>'
    body += _csv_link(csv_path)
    if evidence_path is not None:
        body += _csv_link(Path(evidence_path))
    if table.empty:
        body += "<p><em>The table has no rows.</em></p>"
    elif kind == "recommendation":
        for _, row in table.iterrows():
            fields = row.drop("model").reset_index()
            fields.columns = ["field", "value"]
            body += f"<h3>{html.escape(str(row['model']))}</h3>"
            body += _html_table(fields).replace("<table", '<table class="wrap"', 1)
        if evidence_path is not None:
            body += "<h3>Evidence: change per task and prompting method (points)</h3>"
            body += _html_table(_read_csv(evidence_path))
    else:
        body += _html_table(table)
    title = f"{kind.capitalize()} table ({csv_path.name})"
    write_text(out_path, _PAGE.format(title=html.escape(title), body=body))


def write_config_page(config: dict[str, Any], out_path: str | Path) -> None:
    """The run's configuration as validated (schema defaults filled in), for the report."""
    import yaml

    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    body = (
        '<p class="note">The configuration this run used, after validation against '
        "workflow/schemas/config.schema.yaml (defaults filled in). config/README.md explains "
        "every key.</p>"
        f"<pre>{html.escape(text)}</pre>"
    )
    write_text(out_path, _PAGE.format(title="Run configuration", body=body))


def order_from_config(config: dict[str, Any]) -> Order:
    """The display order a config implies (for notebooks; the workflow passes it directly)."""
    methods = tuple(config.get("methods", {}))
    baseline = next(
        (m for m, s in config.get("methods", {}).items() if s.get("kind") == "none"), None
    )
    return Order(
        methods, tuple(config.get("models", {})), tuple(config.get("prompts", ())), baseline
    )


def order_from_json(text: str) -> Order:
    """An :class:`Order` from the JSON the workflow passes (keys methods, models, prompts,
    baseline; any may be missing)."""
    raw = json.loads(text) if text else {}
    return replace(
        Order(),
        methods=tuple(raw.get("methods", ())),
        models=tuple(raw.get("models", ())),
        prompts=tuple(raw.get("prompts", ())),
        baseline=raw.get("baseline"),
    )
