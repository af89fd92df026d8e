"""Commands of the models stage (workflow/rules/models.smk): fetching a model.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import json_arg


def _cmd_fetch(args: argparse.Namespace) -> None:
    from biomedquant.models.fetch import fetch_model
    from biomedquant.study.config_checks import check_revision

    if not isinstance(args.spec, dict):
        raise ValueError("--spec must be a JSON object (the model's config entry)")
    if args.strict_revisions:
        check_revision(args.model, args.spec)
    prov = fetch_model(args.model, args.spec, args.out)
    print(f"{args.model}: {prov['size_bytes'] / 1e6:.1f} MB in {prov['wall_seconds']} s")


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    s = sub.add_parser("fetch-model", help="materialize a model as a 16-bit safetensors folder")
    s.add_argument("--model", required=True, help="the model's slug")
    s.add_argument("--spec", required=True, type=json_arg, help="the model's config entry")
    s.add_argument("--out", required=True, help="the model folder to write")
    s.add_argument(
        "--strict-revisions",
        action="store_true",
        help="refuse a Hugging Face revision that is not a full commit hash (e.g. main)",
    )
    s.set_defaults(func=_cmd_fetch)
