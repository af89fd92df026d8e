"""Commands of the planning stage (workflow/rules/planning.smk): the fit table, the cost
estimate, the throughput refit.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import add_manifests_arg, config_args, listed_files, study_config
from biomedquant.planning.throughput import BACKENDS as BACKEND_NAMES
from biomedquant.planning.throughput import DEVICES as DEVICE_NAMES


def _cmd_plan(args: argparse.Namespace) -> int:
    import sys

    from biomedquant.common.files import write_csv
    from biomedquant.common.gpus import parse_capability
    from biomedquant.planning.fit_table import FIT_COLUMNS, fit_lines, fit_rows
    from biomedquant.planning.throughput import gpu_memory_gib
    from biomedquant.report.figures.registry import draw_figure
    from biomedquant.study.checks import study_problems

    config = study_config(args)
    # The Snakefile's check, in its words, for a study config given as a file (the workflow's
    # plan rule hands over parts of a config the Snakefile has checked already).
    problems = study_problems(config) if args.config_json is None else []
    for p in problems:  # one line each, as every command reports an error
        print(f"biomedquant plan: {p.line()}", file=sys.stderr)
    if any(p.level == "error" for p in problems):
        return 1
    # one GPU key: scheduling.gpu sets the GPU memory, and a gpu_gib that disagrees is refused
    # (the workflow's plan rule hands over no scheduling: the Snakefile has checked it)
    if "scheduling" in config:
        gpu_memory_gib(config["scheduling"])
    if args.cost:
        return _print_cost(config, args)
    rows = fit_rows(config)
    if args.figure and not args.out:
        raise ValueError("--figure draws from the table: give --out too")
    if args.out:
        write_csv(args.out, FIT_COLUMNS, rows)
    if args.figure:
        draw_figure("fit", {"fit": args.out}, args.figure)
    capability = parse_capability(args.compute_capability) if args.compute_capability else None
    print("\n".join(fit_lines(rows, capability)))
    return 0


def _print_cost(config: dict[str, Any], args: argparse.Namespace) -> int:
    from biomedquant.common.files import write_csv
    from biomedquant.planning.cost import COST_COLUMNS, cost_lines, study_cost

    cost = study_cost(config, backend=args.backend, device=args.gpu)
    if args.out:
        write_csv(args.out, COST_COLUMNS, cost.rows)
    print("\n".join(cost_lines(cost, config=config)))
    return 0


def _cmd_refit_throughput(args: argparse.Namespace) -> None:
    from biomedquant.common.files import read_json
    from biomedquant.planning.throughput import (
        OUTPUT_LENGTHS_KEY,
        output_lengths_json,
        refit,
        write_rates,
    )
    from biomedquant.planning.tokens import fit_output_lengths

    runs = [*args.runs, *listed_files(args.manifests, "run_record")]
    records = [(str(path), read_json(path)) for path in runs]
    fitted = refit(records)
    if not fitted:
        raise ValueError(
            f"none of the {len(runs)} run records holds the counts a refit needs (records"
            " written by this version's transformers engine, generated in one session)"
        )
    # the output lengths the study measured, which replace the prior of the next plan
    lengths = fit_output_lengths(rec for _, rec in records)
    write_rates({**fitted, OUTPUT_LENGTHS_KEY: output_lengths_json(lengths)}, args.out)
    for backend, devices in fitted.items():
        for device, r in devices.items():
            print(
                f"{backend} on {device}: {r['flops']:.3g} FLOP/s, {r['step_overhead_s']:.3g} s"
                f" per step, {r['bandwidth']:.3g} bytes/s from {r['n_records']} records"
                f" (largest error {100 * r['max_abs_relative_error']:.0f}%) -> {args.out}"
            )
    print(
        f"output lengths of {len(lengths)} dataset x prompting method(s) from"
        f" {sum(v.rows for v in lengths.values())} outputs -> {args.out}"
    )


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    s = sub.add_parser("plan", help="estimate GPU memory per model and method, before a run")
    config_args(s)
    s.add_argument("--out", help="write the table here (CSV)")
    s.add_argument("--figure", nargs="*", default=[], help="write the figure here (PNG/PDF)")
    s.add_argument(
        "--cost",
        action="store_true",
        help="the expected GPU-hours instead of the fit table (--out: per model x method x"
        " prompting method)",
    )
    s.add_argument(
        "--backend",
        choices=sorted(BACKEND_NAMES),
        help="inference engine to cost (default: the config's inference.backend)",
    )
    s.add_argument(
        "--gpu",
        choices=[*DEVICE_NAMES, "cpu"],
        help="device to cost on (default: the config's scheduling.gpu)",
    )
    s.add_argument(
        "--compute-capability",
        metavar="X.Y",
        help="your GPU's CUDA compute capability (A100 8.0, L4 and L40S 8.9, H100 9.0): methods"
        " it cannot run (FP8 below 8.9) are marked not runnable",
    )
    s.set_defaults(func=_cmd_plan)

    s = sub.add_parser(
        "refit-throughput",
        help="fit the runtime model's rates to a finished study's run records",
    )
    s.add_argument("--out", required=True, help="rates file (JSON) for scheduling.throughput_file")
    add_manifests_arg(s, "run records")
    s.add_argument("runs", nargs="*", help="run records (.run.json)")
    s.set_defaults(func=_cmd_refit_throughput)
