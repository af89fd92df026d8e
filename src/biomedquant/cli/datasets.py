"""Commands of the datasets stage (workflow/rules/datasets.smk): the dataset registry,
downloads, preparation.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import (
    positive,
)


def _cmd_datasets(args: argparse.Namespace) -> None:
    from biomedquant.datasets.registry import DATASETS

    header = f"{'dataset':<14}{'task':<6}{'test items':>11}  {'splits':<16}{'few-shot':<10}licence"
    print(header)
    for spec in DATASETS.values():
        splits = ",".join(spec.splits)
        print(
            f"{spec.name:<14}{spec.task:<6}{spec.test_size:>11}  {splits:<16}"
            f"{spec.fewshot_split:<10}{spec.licence}"
        )
    print("test items: official test-set size (benchmark paper); few-shot: the pool's split")


def _cmd_download(args: argparse.Namespace) -> None:
    from biomedquant.datasets.download import download_split

    download_split(
        args.dataset,
        args.split,
        args.base_url,
        args.out,
        lock_path=args.lock or None,
        timeout=args.timeout,
        deadline=args.deadline,
    )


def _cmd_prepare(args: argparse.Namespace) -> None:
    from biomedquant.datasets.prepare import prepare_split

    limit = args.limit or None  # 0 means every item
    prov = prepare_split(args.dataset, args.split, args.raw, args.out, limit=limit, seed=args.seed)
    print(f"{args.dataset}/{args.split}: {prov['n_written']} of {prov['n_source']} items")


def _cmd_study_data(args: argparse.Namespace) -> None:
    from biomedquant.datasets.prepare import write_study_data

    record = write_study_data(args.out, args.files)
    print(f"{args.out}: {len(record['files'])} prepared splits")


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    s = sub.add_parser("datasets", help="print the dataset registry")
    s.set_defaults(func=_cmd_datasets)

    s = sub.add_parser("download", help="fetch one split's source file and check its hash")
    s.add_argument("--dataset", required=True, help="dataset name (biomedquant datasets)")
    s.add_argument("--split", required=True, help="test, dev or train")
    s.add_argument("--base-url", required=True, help="upstream base URL, a folder, or 'demo'")
    s.add_argument("--out", required=True, help="the source file to write")
    s.add_argument(
        "--lock",
        default="resources/raw/checksums.lock",
        help="hashes of files without a pinned one, recorded on first download ('' = off)",
    )
    s.add_argument("--timeout", type=positive, default=60.0, help="seconds per read")
    s.add_argument("--deadline", type=positive, default=3600.0, help="seconds per file")
    s.set_defaults(func=_cmd_download)

    s = sub.add_parser("prepare", help="parse, validate and subsample a split into JSON Lines")
    s.add_argument("--dataset", required=True, help="dataset name (biomedquant datasets)")
    s.add_argument("--split", required=True, help="test, dev or train")
    s.add_argument("--raw", required=True, help="the downloaded source file")
    s.add_argument("--out", required=True, help="the prepared split (JSON Lines)")
    s.add_argument("--limit", type=int, default=0, help="0: every item")
    s.add_argument("--seed", type=int, default=0, help="seed of the stratified sample")
    s.set_defaults(func=_cmd_prepare)

    s = sub.add_parser("study-data", help="record a study's prepared splits and their hashes")
    s.add_argument("--out", required=True, help="the record to write (JSON)")
    s.add_argument("files", nargs="+", help="prepared splits (.jsonl)")
    s.set_defaults(func=_cmd_study_data)
