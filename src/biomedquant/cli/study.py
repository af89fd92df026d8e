"""Commands that check a whole study before it runs: the doctor (the rehearsal, which runs
one in miniature, is :mod:`.rehearsal`).

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import config_args


def _cmd_doctor(args: argparse.Namespace) -> int:
    from biomedquant.study.doctor import run_doctor
    from biomedquant.study.loading import load_yaml

    # The raw file: the doctor validates it against the schema first and reports what fails.
    config = args.config_json if args.config_json is not None else load_yaml(args.config)
    source = "--config-json" if args.config_json is not None else args.config
    findings, code = run_doctor(
        config, args.workdir, source=source, strict_revisions=args.strict_revisions
    )
    for f in findings:
        print(f.line())
    return code


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    s = sub.add_parser("doctor", help="check this machine against a study config, before it runs")
    config_args(s)
    s.add_argument("--workdir", default=".", help="where the workflow will write")
    s.add_argument(
        "--strict-revisions",
        action="store_true",
        help="fail on models not pinned to a commit hash (also on with strict_revisions: true)",
    )
    s.set_defaults(func=_cmd_doctor)
