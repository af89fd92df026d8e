"""Every figure of the study, declared once, as data: how it is drawn, the tables it reads,
its caption and its place in the report.

``biomedquant plot NAME`` draws from this registry, and the workflow builds its figure rules
and its targets from it (workflow/rules/report.smk, common.smk's ``final_targets``). Adding a
figure: write its drawing function (``draw(*table_paths, out_paths, *, order)``) in the
module of its family, add an entry here and a caption in ``workflow/report/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from biomedquant.report.figures.accuracy import plot_scores_by_dataset
from biomedquant.report.figures.comparisons import plot_change_heatmap, plot_flip_rate
from biomedquant.report.figures.cpu_deployment import plot_cpu_deployment
from biomedquant.report.figures.deployment import plot_deployment_choice
from biomedquant.report.figures.domain import plot_domain_edge
from biomedquant.report.figures.fit import plot_fit
from biomedquant.report.figures.labels import plot_change_by_label
from biomedquant.report.figures.memory import (
    plot_memory,
    plot_memory_estimate_check,
    plot_memory_vs_score,
)
from biomedquant.report.figures.prompting import plot_prompting
from biomedquant.report.figures.recommendation import plot_recommendation
from biomedquant.report.figures.style import Order
from biomedquant.report.figures.summary import plot_summary

FIGURE_DIR = "results/figures"
# The tables a figure can read, by the name the registry and `biomedquant plot --NAME` use.
TABLES = {
    "scores": "results/tables/scores.csv",
    "comparisons": "results/tables/comparisons.csv",
    "comparisons_by_label": "results/tables/comparisons_by_label.csv",
    "memory": "results/tables/memory.csv",
    "recommendation": "results/tables/recommendation.csv",
    "evidence": "results/tables/recommendation_evidence.csv",
    "fit": "results/tables/fit.csv",
    "cpu_deployment": "results/tables/cpu_deployment.csv",
    "deployment_choice": "results/tables/deployment_choice.csv",
}
# Tables a study has only when it compares a quantized method with an unquantized baseline.
COMPARED_TABLES = frozenset(
    {"comparisons", "comparisons_by_label", "recommendation", "evidence", "deployment_choice"}
)


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the study.

    ``inputs`` are table names of :data:`TABLES`, in the drawing function's argument order;
    ``caption`` a file in ``workflow/report/``; ``category`` the report's menu entry.
    ``formats``: the files written (an SVG where an HTML page inlines the figure). ``rule``:
    the workflow rule that draws the figure beside its own table (the estimator's plan, the
    CPU deployment table); None for the figure rules of report.smk.
    """

    draw: Callable[..., None]
    inputs: tuple[str, ...]
    title: str
    caption: str
    category: str
    formats: tuple[str, ...] = ("png", "pdf")
    rule: str | None = None

    @property
    def needs_comparisons(self) -> bool:
        """Whether the figure reads a table only a study with a baseline and a quantized
        method has."""
        return bool(COMPARED_TABLES & set(self.inputs))


FIGURES: dict[str, FigureSpec] = {
    "summary": FigureSpec(
        plot_summary,
        ("comparisons", "memory", "evidence"),
        "Summary: change per task, every model and method",
        "summary.rst",
        "Summary",
        # it opens the report's landing page, inlined there as the recommendation is
        formats=("png", "pdf", "svg"),
    ),
    "scores_by_dataset": FigureSpec(
        plot_scores_by_dataset,
        ("scores",),
        "Scores by dataset",
        "scores_by_dataset.rst",
        "Accuracy",
    ),
    "prompting": FigureSpec(
        plot_prompting,
        ("scores",),
        "Prompting methods under quantization",
        "prompting.rst",
        "Accuracy",
    ),
    "domain_edge": FigureSpec(
        plot_domain_edge,
        ("scores",),
        "Biomedical against general models under quantization",
        "domain_edge.rst",
        "Accuracy",
    ),
    "change_heatmap": FigureSpec(
        plot_change_heatmap,
        ("comparisons",),
        "Change from the baseline",
        "change_heatmap.rst",
        "Accuracy",
    ),
    "flip_rate": FigureSpec(
        plot_flip_rate, ("comparisons",), "Flip rate", "flip_rate.rst", "Accuracy"
    ),
    "change_by_label": FigureSpec(
        plot_change_by_label,
        ("comparisons_by_label",),
        "Change by label",
        "change_by_label.rst",
        "Accuracy",
    ),
    "memory": FigureSpec(plot_memory, ("memory",), "GPU memory", "memory.rst", "Memory"),
    "memory_vs_score": FigureSpec(
        plot_memory_vs_score,
        ("scores", "memory"),
        "Memory versus score",
        "memory_vs_score.rst",
        "Memory",
    ),
    "memory_estimate_check": FigureSpec(
        plot_memory_estimate_check,
        ("memory",),
        "Estimated versus measured memory",
        "memory_estimate_check.rst",
        "Memory",
    ),
    "fit": FigureSpec(
        plot_fit,
        ("fit",),
        "Which GPU each model fits (estimate)",
        "fit.rst",
        "Memory",
        rule="plan",
    ),
    "cpu_deployment": FigureSpec(
        plot_cpu_deployment,
        ("cpu_deployment",),
        "CPU deployment",
        "cpu_deployment.rst",
        "Memory",
        rule="cpu_deployment_table",
    ),
    "recommendation": FigureSpec(
        plot_recommendation,
        ("recommendation", "evidence"),
        "Recommendation",
        "recommendation.rst",
        "Recommendation",
        # inlined into the report's landing page (an <img> there could not be self-contained)
        formats=("png", "pdf", "svg"),
    ),
    "deployment_choice": FigureSpec(
        plot_deployment_choice,
        ("deployment_choice",),
        "What to deploy",
        "deployment_choice.rst",
        "Recommendation",
        rule="recommend",
    ),
}


def figure_paths(name: str) -> list[str]:
    """The files figure ``name`` is written to, in its formats' order."""
    return [f"{FIGURE_DIR}/{name}.{ext}" for ext in FIGURES[name].formats]


def figure_rule_names(*, compared: bool) -> list[str]:
    """The figures the workflow's figure rules draw, in registry order: all of them when the
    study compares methods with a baseline, else those that need no comparison."""
    return [
        name
        for name, spec in FIGURES.items()
        if spec.rule is None and (compared or not spec.needs_comparisons)
    ]


def draw_figure(
    name: str,
    tables: Mapping[str, str | Path | None],
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
        flags = ", ".join(f"--{t.replace('_', '-')}" for t in missing)
        raise ValueError(f"figure {name} needs the table(s): {', '.join(missing)} ({flags})")
    spec.draw(*(tables[t] for t in spec.inputs), out_paths, order=order)
