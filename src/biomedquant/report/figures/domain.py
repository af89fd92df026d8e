"""Domain knowledge under quantization: does a biomedical model's edge over general models of
its size class survive quantization?

The paper states that quantized models keep their domain-specific knowledge. The claim is
read here as the difference, in points, between the mean primary score of the biomedical
models and that of the general models of the same size class (``models.<name>.domain`` and
``params_b`` in the config), per task and per method: a line that stays level from 16-bit to
3-bit says the edge (or the gap) survives. A config without both kinds of model in one size
class cannot support the claim, and the figure says so instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from biomedquant.analysis.tables import numeric, read_scores
from biomedquant.report.figures.draw import no_data_figure, save_figure, subplots, suptitle
from biomedquant.report.figures.style import TASK_TITLES, Order, styled

TITLE = "Biomedical against general models of the same size class, under each method"
# one marker per task, so the lines read without colour (colours here are tasks, not methods)
TASK_STYLE = {
    "ner": ("o", "#0072B2"),
    "re": ("s", "#D55E00"),
    "mlc": ("^", "#009E73"),
    "qa": ("D", "#CC79A7"),
}


def comparable_classes(order: Order) -> dict[str, dict[str, list[str]]]:
    """Size classes holding both biomedical and general models: class -> domain -> models."""
    classes: dict[str, dict[str, list[str]]] = {}
    for model, domain, size in order.domains:
        classes.setdefault(size, {}).setdefault(domain, []).append(model)
    return {c: d for c, d in classes.items() if {"biomedical", "general"} <= set(d)}


@styled
def plot_domain_edge(
    scores_path: str | Path, out_paths: Sequence[str | Path], *, order: Order | None = None
) -> None:
    """Per size class (panels), the biomedical models' mean primary score minus the general
    models' (points; mean over the task's datasets and prompting methods), per task (lines),
    across the methods from 16-bit to the fewest bits."""
    order = order or Order()
    classes = comparable_classes(order)
    df = read_scores(scores_path, primary_only=True)
    if df.empty or not classes:
        no_data_figure(
            out_paths,
            TITLE,
            "This config cannot show it: it has no biomedical and general models of the same"
            " size class (set models.<name>.domain to biomedical or general, with params_b).",
        )
        return
    order = order.with_data(df)
    df = df.assign(score=100 * numeric(df, "value"))
    methods = Order.sort(order.methods, df["method"])
    bits = {m: b for m, _, b in order.families}
    # from 16-bit to the fewest bits, config order within the same bits
    methods.sort(key=lambda m: -bits.get(m, 16 if m == order.baseline else 0))
    fig, axes = subplots(
        1, len(classes), max(3.2, 0.42 * len(methods) + 1.0), 2.8, extra_w=1.0, extra_h=2.2,
        sharey=True,
    )  # fmt: skip
    for ax, (size, domains) in zip(axes[0], sorted(classes.items()), strict=True):
        for task, (marker, color) in TASK_STYLE.items():
            sub = df[df["task"] == task]
            if sub.empty:
                continue
            edge = []
            for method in methods:
                rows = sub[sub["method"] == method]
                means = {
                    d: rows[rows["model"].isin(models)]["score"].mean()
                    for d, models in domains.items()
                }
                edge.append(means["biomedical"] - means["general"])
            ax.plot(
                range(len(methods)), edge, marker=marker, color=color, label=TASK_TITLES[task],
                linewidth=1.0, markersize=4,
            )  # fmt: skip
        ax.axhline(0, color="#444444", linewidth=0.8)
        ax.set_xticks(range(len(methods)), [order.name(m) for m in methods], rotation=40,
                      ha="right")  # fmt: skip
        counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(domains.items()))
        ax.set_title(f"{size} ({counts})")
        ax.grid(axis="y", color="#dddddd", linewidth=0.5)
    axes[0][0].set_ylabel("biomedical minus general (points)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, frameon=False)
    suptitle(
        fig,
        f"{TITLE}: the biomedical models' mean primary score minus the general models' (mean"
        " over datasets and prompting methods); a level line means the edge survives",
    )
    save_figure(fig, out_paths)
