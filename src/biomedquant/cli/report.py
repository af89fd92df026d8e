"""Commands of the figures and report stage (workflow/rules/figures.smk, report.smk):
figures, the recommendation, report pages.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import (
    add_manifests_arg,
    json_arg,
    listed_files,
)


def _cmd_plot(args: argparse.Namespace) -> None:
    from biomedquant.figures.registry import TABLES, draw_figure
    from biomedquant.figures.style import order_from_json

    tables = {name: getattr(args, name) for name in TABLES}
    draw_figure(args.figure, tables, args.out, order=order_from_json(args.order))


def _cmd_recommend(args: argparse.Namespace) -> None:
    from biomedquant.recommendation import write_recommendation

    task_margins = {}
    for item in args.task_margin:
        task, _, value = item.partition("=")
        try:
            task_margins[task] = float(value)
        except ValueError:
            raise ValueError(
                f"--task-margin wants TASK=POINTS (e.g. ner=2), got {item!r}"
            ) from None
    comparisons = list(args.comparisons)
    comparisons += listed_files(args.manifests, "comparisons")
    if not comparisons:
        raise ValueError("recommend: no comparison files (give files or --manifests)")
    rec = write_recommendation(
        comparisons,
        args.memory,
        args.out,
        args.evidence_out,
        margin_points=args.margin,
        task_margin_points=task_margins,
        alpha=args.alpha,
    )
    for r in rec.itertuples():
        print(f"{r.model}: {r.recommended} ({r.memory_gb:.3g} GB, {r.memory_source}): {r.verdict}")


def _cmd_report_table(args: argparse.Namespace) -> None:
    from biomedquant.report import write_table_page

    write_table_page(args.kind, args.table, args.out, evidence_path=args.evidence or None)


def _cmd_report_config(args: argparse.Namespace) -> None:
    from biomedquant.report import write_config_page

    write_config_page(args.config_json, args.out)


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    from biomedquant.figures.registry import FIGURES, TABLES

    s = sub.add_parser("plot", help="draw one figure of the study from the tidy tables")
    s.add_argument(
        "figure",
        choices=tuple(FIGURES),
        help="which figure (biomedquant.figures.registry lists the tables each reads)",
    )
    for name, path in TABLES.items():
        s.add_argument(f"--{name.replace('_', '-')}", default="", help=f"the table ({path})")
    s.add_argument("--order", default="", help="JSON: models, methods, prompts, baseline")
    s.add_argument("--out", required=True, nargs="+", help="PNG, PDF and/or SVG paths")
    s.set_defaults(func=_cmd_plot)

    s = sub.add_parser(
        "recommend",
        help="per model, the least-memory method shown non-inferior to the baseline everywhere",
    )
    s.add_argument("--memory", required=True)
    s.add_argument(
        "--margin",
        type=float,
        default=None,
        help="points (0.01 on a 0-1 scale) for every task (default: per task, ner 2.5, re 1.5,"
        " mlc 3, qa 3)",
    )
    s.add_argument(
        "--task-margin", action="append", default=[], help="TASK=POINTS, overrides --margin"
    )
    s.add_argument("--alpha", type=float, default=0.05, help="one-sided, per test")
    s.add_argument("--out", required=True)
    s.add_argument("--evidence-out", required=True)
    add_manifests_arg(s, "comparison files")
    s.add_argument("comparisons", nargs="*", help="comparison files (JSON) of every method")
    s.set_defaults(func=_cmd_recommend)

    from biomedquant.report import TABLE_PAGES

    s = sub.add_parser("report-table", help="an HTML page of a table for the report")
    s.add_argument("--kind", required=True, choices=TABLE_PAGES)
    s.add_argument("--table", required=True)
    s.add_argument("--evidence", default="", help="recommendation only: its evidence table")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_report_table)

    s = sub.add_parser("report-config", help="an HTML page of the run's configuration")
    s.add_argument("--config-json", required=True, type=json_arg)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_report_config)
