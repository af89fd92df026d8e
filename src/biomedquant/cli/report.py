"""Commands of the report stage and of the recommendation (workflow/rules/report.smk,
analysis.smk): figures, the recommendation, report pages.

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
    from biomedquant.report.figures.registry import TABLES, draw_figure
    from biomedquant.report.figures.style import order_from_json

    tables = {name: getattr(args, name) for name in TABLES}
    draw_figure(args.figure, tables, args.out, order=order_from_json(args.order))


def _cmd_recommend(args: argparse.Namespace) -> None:
    from biomedquant.analysis.recommendation import write_recommendation

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
    hardware = _hardware(args)
    if hardware:
        from biomedquant.analysis.deployment import deployment_lines, write_deployment

        rows = write_deployment(
            args.out, args.evidence_out, args.memory, hardware, args.deployment_out or None
        )
        print("\n".join(deployment_lines(rows)))
        if args.deployment_figure:
            from biomedquant.report.figures.registry import draw_figure
            from biomedquant.report.figures.style import order_from_json

            if not args.deployment_out:
                raise ValueError("--deployment-figure draws from the table: give --deployment-out")
            tables = {"deployment_choice": args.deployment_out}
            draw_figure(
                "deployment_choice",
                tables,
                args.deployment_figure,
                order=order_from_json(args.order),
            )
    elif args.deployment_out or args.deployment_figure:
        raise ValueError("--deployment-out needs hardware: --gpu-gb, --cpu or --hardware")


def _hardware(args: argparse.Namespace) -> list[Any]:
    """The hardware of the deployment answer: the one --gpu-gb or --cpu describe, and each
    --hardware name."""
    from biomedquant.analysis.deployment import hardware_by_name
    from biomedquant.common.gpus import Hardware, parse_capability

    out = [hardware_by_name(name) for name in args.hardware]
    if args.gpu_gb is not None and args.cpu:
        raise ValueError("give --gpu-gb (a GPU) or --cpu (none), not both")
    capability = parse_capability(args.compute_capability) if args.compute_capability else None
    if args.gpu_gb is not None:
        out.append(Hardware(args.gpu_gb, args.gpus, capability))
    elif args.cpu:
        out.append(Hardware(None, ram_gb=args.ram_gb))
    elif args.compute_capability or args.gpus != 1 or args.ram_gb is not None:
        raise ValueError("--gpus, --compute-capability and --ram-gb describe --gpu-gb or --cpu")
    return out


def _cmd_model_card(args: argparse.Namespace) -> None:
    from biomedquant.exports.model_card import write_model_card

    write_model_card(
        args.artifact,
        args.out,
        model=args.model,
        method_name=args.method_name,
        model_spec=args.model_spec,
        method=args.method,
        scores_path=args.scores or None,
        evidence_path=args.evidence or None,
    )
    print(f"model card -> {args.out}")


def _cmd_lm_eval_export(args: argparse.Namespace) -> None:
    from biomedquant.exports.lm_eval import export_lm_eval

    files = export_lm_eval(
        args.manifest, args.model, args.model_spec, args.method_name, args.method, args.out
    )
    print(f"lm-eval results and {len(files) - 1} sample file(s) -> {args.out}")


def _cmd_export(args: argparse.Namespace) -> None:
    from biomedquant.exports.model import MethodExport, export_model

    if not isinstance(args.methods, list):
        raise ValueError("--methods: a JSON list of {name, spec, manifest, artifact}")
    methods = [MethodExport.from_json(entry) for entry in args.methods]
    files = export_model(
        args.model,
        args.model_spec,
        methods,
        args.out,
        scores_path=args.scores or None,
        evidence_path=args.evidence or None,
    )
    cards = sum(1 for f in files if f.name == "README.md")
    print(f"{args.model}: {len(methods)} lm-eval folder(s), {cards} model card(s) -> {args.out}")


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


def _model_method_args(s: argparse.ArgumentParser) -> None:
    """A model x method by its names and config entries (the exports' rules hand both over)."""
    s.add_argument("--model", required=True, help="the model's name in the config")
    s.add_argument("--model-spec", required=True, type=json_arg, help="its config entry (JSON)")
    s.add_argument("--method-name", required=True, help="the method's name in the config")
    s.add_argument("--method", required=True, type=json_arg, help="its config entry (JSON)")


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    from biomedquant.report.figures.registry import FIGURES, TABLES

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

    s = sub.add_parser(
        "recommend",
        help="per model, the least-memory method shown non-inferior to the baseline everywhere",
    )
    s.add_argument("--memory", required=True, help="the memory table (CSV)")
    s.add_argument(
        "--margin",
        type=float,
        default=None,
        help="points (0.01 on a 0-1 scale) for every task (default: per task, ner 2, re 1,"
        " mlc 3, qa 2.5)",
    )
    s.add_argument(
        "--task-margin", action="append", default=[], help="TASK=POINTS, overrides --margin"
    )
    s.add_argument("--alpha", type=float, default=0.05, help="one-sided, per test")
    s.add_argument("--out", required=True, help="the recommendation table (CSV)")
    s.add_argument("--evidence-out", required=True, help="its evidence table (CSV)")
    g = s.add_argument_group(
        "deployment answer",
        "what to deploy on your hardware: per model and over all models, the best-scoring"
        " model x method that runs and fits there and is shown non-inferior to its baseline",
    )
    g.add_argument(
        "--gpu-gb", type=float, help="memory of each GPU as marketed (40 for an A100 40GB)"
    )
    g.add_argument("--gpus", type=int, default=1, help="how many such GPUs (1, 2, 4 or 8)")
    g.add_argument(
        "--compute-capability",
        metavar="X.Y",
        help="their CUDA compute capability (A100 8.0, L4 and L40S 8.9, H100 9.0); FP8 needs 8.9",
    )
    g.add_argument("--cpu", action="store_true", help="no GPU: what runs on a CPU")
    g.add_argument("--ram-gb", type=float, help="with --cpu: memory the model may take")
    g.add_argument(
        "--hardware",
        action="append",
        default=[],
        help="a device by name (a100_40g, 2xh100, l4, cpu ...), repeatable",
    )
    g.add_argument("--deployment-out", default="", help="write the deployment answer (CSV)")
    g.add_argument(
        "--deployment-figure", nargs="*", default=[], help="and its figure (PNG/PDF paths)"
    )
    g.add_argument("--order", default="", help="JSON: models, methods, prompts, baseline")
    add_manifests_arg(s, "comparison files")
    s.add_argument("comparisons", nargs="*", help="comparison files (JSON) of every method")
    s.set_defaults(func=_cmd_recommend)

    s = sub.add_parser(
        "model-card",
        help="a model card (hub metadata, quantization, the study's scores) for an artifact",
    )
    s.add_argument("--artifact", required=True, help="the quantized artifact folder")
    _model_method_args(s)
    s.add_argument("--scores", default="", help="scores.csv")
    s.add_argument("--evidence", default="", help="recommendation_evidence.csv")
    s.add_argument("--out", required=True, help="the card (README.md)")
    s.set_defaults(func=_cmd_model_card)

    s = sub.add_parser(
        "lm-eval-export",
        help="a model x method's results in lm-evaluation-harness's format (results, samples)",
    )
    s.add_argument("--manifest", required=True, help="its evaluate manifest (JSON)")
    _model_method_args(s)
    s.add_argument("--out", required=True, help="the folder to write")
    s.set_defaults(func=_cmd_lm_eval_export)

    s = sub.add_parser(
        "export",
        help="a model's exports: every method's lm-eval folder and its artifacts' model cards",
    )
    s.add_argument("--model", required=True, help="the model's name in the config")
    s.add_argument("--model-spec", required=True, type=json_arg, help="its config entry (JSON)")
    s.add_argument(
        "--methods",
        required=True,
        type=json_arg,
        help="JSON list: per method its name, config entry (spec), evaluate manifest and"
        " quantized artifact folder (artifact, or null: no card)",
    )
    s.add_argument("--scores", default="", help="scores.csv (the cards' tables)")
    s.add_argument("--evidence", default="", help="recommendation_evidence.csv (their verdicts)")
    s.add_argument("--out", required=True, help="the model's export folder")
    s.set_defaults(func=_cmd_export)

    from biomedquant.report.pages import TABLE_PAGES

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
