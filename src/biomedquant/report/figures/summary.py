"""The study's main result on one page: per task, how much each quantized method changes its
model's primary metric, across every model, methods ordered by the memory they need, each
change with its interval and its verdict.

At the paper's scale the per-dataset figures are dozens of panels; this one stays four panels
(one per task) of one row per method, whatever the number of models: each model is one dot (at
the same height within every row, so a model can be followed down the rows), the median over
models a black bar. The dashed line is the task's non-inferiority margin.

A dot alone misleads: a row of dots left of the margin reads "loses more than the margin",
where the verdicts may say "insufficient evidence" or "inconclusive". So each dot carries what
the verdicts read (:func:`dot_evidence`): a line through it spanning the intervals of the
task's change under each prompting method (from the lowest lower bound to the highest upper
bound of the recommendation's tests, the bounds the verdicts are decided on), and its marker
says the verdict over those tests. A line entirely right of the margin is a method shown
non-inferior on every prompting method; entirely left of it, inferior on one at least.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from biomedquant.analysis.tables import numeric, read_comparisons, read_memory, read_verdicts
from biomedquant.evaluation.stats.verdicts import DEFAULT_MARGINS
from biomedquant.report.figures.draw import (
    fig_legend,
    no_data_figure,
    save_figure,
    subplots,
    suptitle,
)
from biomedquant.report.figures.style import TASK_TITLES, Order, styled

if TYPE_CHECKING:
    import pandas as pd

TITLE = "Change of the primary metric from each model's 16-bit baseline, per task"
# How a dot shows the verdict over its tests: (marker, filled, legend label). Filled only
# where the verdicts show the method non-inferior, so "shown safe" is what stands out.
VERDICT_MARKERS = {
    "non-inferior": ("o", True, "non-inferior on every prompting method"),
    "inconclusive": ("o", False, "inconclusive"),
    "insufficient evidence": ("s", False, "insufficient evidence"),
    "inferior": ("X", True, "inferior on a prompting method"),
    None: ("D", False, "no verdict (interval from the comparisons)"),
}


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


def combined_verdict(verdicts: Sequence[str]) -> str | None:
    """One verdict for a model x method x task over its prompting methods' tests, as the
    recommendation reads them: ``inferior`` if any test is, ``non-inferior`` only if every
    test is; otherwise ``insufficient evidence`` if a test could not be decided at all, else
    ``inconclusive``. None without tests."""
    found = [v for v in verdicts if isinstance(v, str)]
    if not found:
        return None
    if "inferior" in found:
        return "inferior"
    if all(v == "non-inferior" for v in found):
        return "non-inferior"
    return "insufficient evidence" if "insufficient evidence" in found else "inconclusive"


def dot_evidence(comparisons: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per task x method x model: the dot (``change``: the mean change in points over
    the task's datasets and prompting methods), its line (``low``, ``high``) and its verdict.

    The line: where the recommendation tested the method, from the lowest lower bound to the
    highest upper bound of its tests over the prompting methods (each test's bounds are
    one-sided at the test's alpha: each prompting method's interval is the 1 - 2 alpha one,
    90% at alpha 0.05). Where it did not (a control, a study without the evidence table),
    and for a bound no test gives (a test with too few changed units has no lower bound, the
    exact bound no upper one), from the comparison table: per prompting method the mean
    over the datasets of the paired-bootstrap interval's ends (wider than the mean's
    interval, as the datasets vary independently), then the lowest and highest over
    prompting methods. The marker, not the line, then says what the verdicts concluded.
    """
    import pandas as pd

    keys = ["task", "method", "model"]
    df = comparisons.assign(
        change=100 * numeric(comparisons, "diff"),
        ci_low=100 * numeric(comparisons, "diff_ci_low"),
        ci_high=100 * numeric(comparisons, "diff_ci_high"),
    )
    dots = df.groupby(keys, sort=False)["change"].mean().reset_index()
    per_prompt = df.groupby([*keys, "prompt"], sort=False)[["ci_low", "ci_high"]].mean()
    fallback = per_prompt.groupby(level=keys).agg(low=("ci_low", "min"), high=("ci_high", "max"))
    dots = dots.merge(fallback.reset_index(), on=keys, how="left").assign(verdict=None)
    if not verdicts.empty and {"lower_bound_points", "upper_bound_points"} <= set(verdicts):
        tested = verdicts.groupby(keys, sort=False).agg(
            t_low=("lower_bound_points", "min"),
            t_high=("upper_bound_points", "max"),
            t_verdict=("verdict", lambda v: combined_verdict(list(v))),
        )
        dots = dots.merge(tested.reset_index(), on=keys, how="left")
        has = dots["t_verdict"].notna()
        dots.loc[has, "verdict"] = dots.loc[has, "t_verdict"]
        dots.loc[has, "low"] = dots.loc[has, "t_low"].fillna(dots.loc[has, "low"])
        dots.loc[has, "high"] = dots.loc[has, "t_high"].fillna(dots.loc[has, "high"])
        dots = dots.drop(columns=["t_low", "t_high", "t_verdict"])
    dots["low"] = pd.concat([dots["low"], dots["change"]], axis=1).min(axis=1)
    dots["high"] = pd.concat([dots["high"], dots["change"]], axis=1).max(axis=1)
    return dots


def task_margins(verdicts: pd.DataFrame) -> dict[str, float]:
    """The margin each task was tested at (the evidence's, where one per task), else the
    default margins."""
    margins = dict(DEFAULT_MARGINS)
    if not verdicts.empty and "margin_points" in verdicts:
        for task, m in verdicts.groupby("task")["margin_points"]:
            values = m.dropna().unique()
            if len(values) == 1:
                margins[task] = float(values[0])
    return margins


@styled
def plot_summary(
    comparisons_path: str | Path,
    memory_path: str | Path | None,
    evidence_path: str | Path | None,
    out_paths: Sequence[str | Path],
    *,
    order: Order | None = None,
) -> None:
    """Per task (panels), each quantized method's change in points (mean over the task's
    datasets and prompting methods) for every model, with its interval and verdict
    (:func:`dot_evidence`), methods from the most to the least memory."""
    import numpy as np
    from matplotlib.lines import Line2D

    df = read_comparisons(comparisons_path, primary_only=True)
    if df.empty:
        no_data_figure(
            out_paths,
            TITLE,
            "No comparisons: the config has no quantized method or no unquantized baseline.",
        )
        return
    order = (order or Order()).with_data(df)
    verdicts = read_verdicts(evidence_path)
    dots = dot_evidence(df, verdicts)
    margins = task_margins(verdicts)
    tasks = [t for t in TASK_TITLES if t in set(dots["task"])]
    models = Order.sort(order.models, dots["model"])
    share = method_memory_share(memory_path, order.baseline)
    methods = Order.sort(order.methods, dots["method"])
    # most memory first (top); methods without a memory figure after them, in config order
    methods.sort(key=lambda m: (m not in share, -share.get(m, 0.0)))
    # a row grows with the models, so that each model's line keeps room of its own
    row_in = max(0.34, 0.045 * len(models))
    dot_size = 26 if len(models) <= 4 else 18
    fig, axes = subplots(
        1, len(tasks), 2.6, max(1.2, row_in * len(methods) + 0.3), extra_w=2.0, extra_h=1.9,
        sharey=True,
    )  # fmt: skip
    offsets = np.linspace(-0.3, 0.3, len(models)) if len(models) > 1 else np.zeros(1)
    shown_verdicts: set[str | None] = set()
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = dots[dots["task"] == task]
        for row, method in enumerate(methods):
            rows = sub[sub["method"] == method].set_index("model").reindex(models)
            if not rows["change"].notna().any():
                continue
            color = order.color(method)
            for y, (_, r) in zip(row + offsets, rows.iterrows(), strict=True):
                if np.isnan(r["change"]):
                    continue
                verdict = r["verdict"] if isinstance(r["verdict"], str) else None
                marker, filled, _ = VERDICT_MARKERS.get(verdict, VERDICT_MARKERS[None])
                shown_verdicts.add(verdict if verdict in VERDICT_MARKERS else None)
                ax.plot([r["low"], r["high"]], [y, y], color=color, linewidth=0.9, zorder=1)
                ax.scatter(
                    [r["change"]], [y], s=dot_size, marker=marker, zorder=3, linewidth=0.7,
                    color=color if filled else "white", edgecolor="black" if filled else color,
                )  # fmt: skip
            xs = rows["change"].dropna().to_numpy()
            ax.plot(
                [np.median(xs)] * 2, [row - 0.4, row + 0.4], color="black", linewidth=1.4, zorder=2
            )
        ax.axvline(0, color="#444444", linewidth=0.8)
        margin = margins.get(task)
        if margin is not None:
            ax.axvline(-margin, color="#444444", linewidth=0.8, linestyle="--")
        ax.set_title(TASK_TITLES[task])
        ax.set_xlabel("mean change (points)")
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        lows, highs = sub["low"].dropna(), sub["high"].dropna()
        lo = min(float(lows.min()) if len(lows) else 0.0, -(margin or 1.0))
        hi = max(float(highs.max()) if len(highs) else 0.0, 0.0)
        pad = 0.06 * (hi - lo) + 0.3
        ax.set_xlim(lo - pad, hi + pad)
    labels = [
        order.name(m) + (f"\n{share[m]:.0%} of 16-bit memory" if m in share else "")
        for m in methods
    ]
    axes[0][0].set_yticks(range(len(methods)), labels)
    axes[0][0].set_ylim(len(methods) - 0.5, -0.5)
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker=marker,
            markersize=6,
            label=label,
            markerfacecolor="#777777" if filled else "white",
            markeredgecolor="black",
        )  # fmt: skip
        for verdict, (marker, filled, label) in VERDICT_MARKERS.items()
        if verdict in shown_verdicts
    ]
    fig_legend(fig, handles, title="dot: verdict over the prompting methods")
    suptitle(
        fig,
        f"{TITLE} ({len(models)} model(s): one dot each, the median a bar; line: the"
        " verdicts' bounds over prompting methods; dashed: the margin)",
    )
    save_figure(fig, out_paths)
