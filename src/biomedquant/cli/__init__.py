"""The ``biomedquant`` command line: one subcommand per workflow stage.

Each Snakemake rule is one call of a subcommand (most hand over their resolved settings as one
JSON argument); the same subcommands serve hand use. The commands live with their stage:
:mod:`.data`, :mod:`.models`, :mod:`.inference`, :mod:`.scoring`, :mod:`.plan`, :mod:`.report`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from biomedquant.cli import data, inference, models, plan, rehearsal, report, scoring
from biomedquant.cli_errors import OneLineErrorParser, run_reporting_errors

STAGES = (data, models, inference, scoring, plan, report, rehearsal)


# What `biomedquant --help` says first (the module docstring speaks to developers).
DESCRIPTION = (
    "biomedquant: how much accuracy a quantized LLM loses on biomedical NLP benchmarks, and how"
    " much GPU memory it saves. The workflow (snakemake) calls these commands; each also runs"
    " by hand."
)


def build_parser() -> OneLineErrorParser:
    from biomedquant import __version__

    p = OneLineErrorParser(prog="biomedquant", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"biomedquant {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        stage.add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; failures are reported by :func:`run_reporting_errors`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_reporting_errors(args.func, args, args.command, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
