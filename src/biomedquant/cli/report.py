"""Commands of the report stage (workflow/rules/report.smk): figures and the report's pages.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import json_arg


def _cmd_plot(args: argparse.Namespace) -> None:
    from biomedquant.report.figures.registry import TABLES, draw_figure
    from biomedquant.report.figures.style import order_from_json

    tables = {name: getattr(args, name) for name in TABLES}
    draw_figure(args.figure, tables, args.out, order=order_from_json(args.order))


def _cmd_report_table(args: argparse.Namespace) -> None:
    from biomedquant.report.figures.style import order_from_json
    from biomedquant.report.pages import write_table_page

    names = dict(order_from_json(args.order).names) if args.order else None
    write_table_page(
        args.kind, args.table, args.out, evidence_path=args.evidence or None, names=names
    )


def _cmd_report_config(args: argparse.Namespace) -> None:
    from biomedquant.report.pages import write_config_page

    write_config_page(args.config_json, args.out)


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    from biomedquant.report.figures.registry import FIGURES, TABLES
    from biomedquant.report.pages import TABLE_PAGES

    s = sub.add_parser("plot", help="draw one figure of the study from the tidy tables")
    s.add_argument(
        "figure",
        choices=tuple(FIGURES),
        help="which figure (biomedquant.report.figures.registry lists the tables each reads)",
    )
    for name, path in TABLES.items():
        s.add_argument(f"--{name.replace('_', '-')}", default="", help=f"the table ({path})")
    s.add_argument("--order", default="", help="JSON: models, methods, prompts, baseline")
    s.add_argument("--out", required=True, nargs="+", help="PNG, PDF and/or SVG paths")
    s.set_defaults(func=_cmd_plot)

    s = sub.add_parser("report-table", help="an HTML page of a table for the report")
    s.add_argument("--kind", required=True, choices=TABLE_PAGES, help="which table")
    s.add_argument("--table", required=True, help="the table (CSV)")
    s.add_argument("--evidence", default="", help="recommendation only: its evidence table")
    s.add_argument(
        "--order", default="", help="JSON as for plot: the methods' display names are shown"
    )
    s.add_argument("--out", required=True, help="the page (HTML)")
    s.set_defaults(func=_cmd_report_table)

    s = sub.add_parser("report-config", help="an HTML page of the run's configuration")
    s.add_argument("--config-json", required=True, type=json_arg, help="the validated config")
    s.add_argument("--out", required=True, help="the page (HTML)")
    s.set_defaults(func=_cmd_report_config)
