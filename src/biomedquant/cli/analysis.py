"""Commands of the analysis stage (workflow/rules/analysis.smk): the memory table, the CPU
deployment table, the recommendation and the deployment answer.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import add_manifests_arg, config_args, listed_files, study_config


def _cmd_memory_table(args: argparse.Namespace) -> None:
    from biomedquant.analysis.memory_table import MEMORY_COLUMNS, memory_rows
    from biomedquant.common.files import write_csv

    runs = [*args.runs, *listed_files(args.manifests, "run_record")]
    rows = memory_rows(study_config(args), runs)
    write_csv(args.out, MEMORY_COLUMNS, rows)
    print(f"{len(rows)} rows -> {args.out}")


def _cmd_cpu_deployment(args: argparse.Namespace) -> None:
    from biomedquant.analysis.cpu_deployment import cpu_deployment_rows, write_cpu_deployment
    from biomedquant.report.figures.registry import draw_figure

    runs = [*args.runs, *listed_files(args.manifests, "run_record")]
    rows = cpu_deployment_rows(runs, args.comparisons or None, args.perplexity or None)
    write_cpu_deployment(rows, args.out)
    if args.figure:
        draw_figure("cpu_deployment", {"cpu_deployment": args.out}, args.figure)
    print(f"{len(rows)} rows -> {args.out}")


def _pairs(items: list[str], flag: str, form: str) -> dict[str, str]:
    """``A=B`` items as a mapping (an error naming the flag and its form otherwise)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not (sep and key and value):
            raise ValueError(f"{flag} wants {form}, got {item!r}")
        out[key] = value
    return out


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
        deploy_prompts=args.deploy_prompt or None,
        controls=args.control,
        control_of=_pairs(args.control_of, "--control-of", "CANDIDATE=CONTROL"),
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


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    s = sub.add_parser("memory-table", help="estimates beside the memory the runs measured")
    config_args(s)
    s.add_argument("--out", required=True, help="the table (CSV)")
    add_manifests_arg(s, "run records")
    s.add_argument("runs", nargs="*", help="run records (.run.json)")
    s.set_defaults(func=_cmd_memory_table)

    s = sub.add_parser("cpu-deployment", help="speed and memory of CPU runs beside accuracy")
    s.add_argument("--out", required=True, help="the table (CSV)")
    s.add_argument("--comparisons", default="", help="comparisons table (optional)")
    s.add_argument("--perplexity", default="", help="perplexity table (optional)")
    s.add_argument("--figure", nargs="*", default=[], help="figure files (.png, .pdf)")
    add_manifests_arg(s, "run records")
    s.add_argument("runs", nargs="*", help="run records (.run.json)")
    s.set_defaults(func=_cmd_cpu_deployment)

    s = sub.add_parser(
        "recommend",
        help="per model, the least-memory candidate shown non-inferior to the baseline",
    )
    s.add_argument("--memory", required=True, help="the memory table (CSV)")
    s.add_argument(
        "--margin",
        type=float,
        default=None,
        help="points (0.01 on a 0-1 scale) for every task (default: per task, ner 2, re 2,"
        " mlc 3, qa 2.5)",
    )
    s.add_argument(
        "--task-margin", action="append", default=[], help="TASK=POINTS, overrides --margin"
    )
    s.add_argument(
        "--alpha", type=float, default=0.05, help="family-wise error over the candidates"
    )
    s.add_argument(
        "--deploy-prompt",
        action="append",
        default=[],
        help="a prompting method the claim must hold under, repeatable (default: every one)",
    )
    s.add_argument(
        "--control",
        action="append",
        default=[],
        help="a method measured beside the candidates, never recommended, repeatable",
    )
    s.add_argument(
        "--control-of",
        action="append",
        default=[],
        metavar="CANDIDATE=CONTROL",
        help="a candidate's control, whose change the evidence sets beside its own, repeatable",
    )
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
