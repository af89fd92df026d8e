"""Commands of the quantization stage (workflow/rules/quantization.smk): quantizing,
the quality table.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import add_gpus_arg, cpu_threads, hide_gpus, json_arg, pairs


def quantizes_on_cpu(method: dict[str, Any], gpus: int) -> bool:
    """Whether ``biomedquant quantize`` runs ``method`` on the CPU with every GPU hidden: for a
    kind that quantizes without a GPU (``quantizes_on_cpu``: rtn, gguf), whose jobs ask the
    scheduler for none, even on a GPU machine, and for any kind given ``--gpus 0``."""
    from biomedquant.methods.kinds import method_kind

    return gpus == 0 or method_kind(method).quantizes_on_cpu


def _cmd_quantize(args: argparse.Namespace) -> None:
    if not isinstance(args.method, dict):
        raise ValueError("--method must be a JSON object (the method's config entry)")
    on_cpu = quantizes_on_cpu(args.method, args.gpus)
    if on_cpu:
        # Before anything imports torch: CUDA reads CUDA_VISIBLE_DEVICES once, at its start.
        # Such a job was given no GPU, so it must not open one another job was given.
        hide_gpus(
            f"method kind {args.method.get('kind')!r} quantizes on the CPU"
            if args.gpus
            else "--gpus 0"
        )
    from biomedquant.quantization import quantize_model
    from biomedquant.study.config_checks import check_group_size_for_folder

    check_group_size_for_folder(args.source, args.method)
    cpu_threads(args.cpu_threads)
    prov = quantize_model(
        args.source,
        args.out,
        args.method,
        seed=args.seed,
        pools=pairs(args.pools),
        test_raws=pairs(args.test_files),
        heldout=args.heldout,
        gpus=0 if on_cpu else args.gpus,
    )
    print(f"quantized in {prov['quantize_seconds']} s, {prov['size_bytes'] / 1e6:.1f} MB")


def _cmd_quality_table(args: argparse.Namespace) -> None:
    from biomedquant.common.files import write_csv
    from biomedquant.quantization.quality import QUALITY_COLUMNS, quality_rows

    rows = quality_rows(args.artifacts)
    write_csv(args.out, QUALITY_COLUMNS, rows)
    for r in rows:
        if r["verdict"] == "warn":
            print(
                f"WARNING {r['model']}/{r['method']}: worse than round-to-nearest on"
                f" {r['n_worse_than_rtn']} of {r['n_layers']} layers (held-out text)"
            )
    print(f"{len(rows)} rows -> {args.out}")


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    s = sub.add_parser("quantize", help="quantize a fetched model with one method")
    s.add_argument("--source", required=True, help="the fetched 16-bit model folder")
    s.add_argument("--method", required=True, type=json_arg, help="the method's config entry")
    s.add_argument("--out", required=True, help="the artifact folder to write")
    s.add_argument("--seed", type=int, default=0, help="seed of the calibration windows")
    s.add_argument("--pools", default="", help="in-domain calibration: 'dataset=train.jsonl ...'")
    s.add_argument(
        "--test-files", default="", help="in-domain calibration: 'dataset=test.raw ...' to exclude"
    )
    s.add_argument("--cpu-threads", default="job", help="'job', 'all' or a number")
    add_gpus_arg(s)
    s.add_argument("heldout", nargs="*", help="prepared test JSON Lines: the quality check's text")
    s.set_defaults(func=_cmd_quantize)

    s = sub.add_parser("quality-table", help="gather quantization quality checks into a table")
    s.add_argument("--out", required=True, help="the table (CSV)")
    s.add_argument("artifacts", nargs="*", help="quantized artifact folders (model/method)")
    s.set_defaults(func=_cmd_quality_table)
