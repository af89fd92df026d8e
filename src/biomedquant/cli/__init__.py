"""The ``biomedquant`` command line: one subcommand per workflow stage.

Each Snakemake rule is one call of a subcommand (most hand over their resolved settings as one
JSON argument); the same subcommands serve hand use. The commands live in one module per
stage, named like the stage's package and rule file: :mod:`.datasets`, :mod:`.models`,
:mod:`.quantization`, :mod:`.inference`, :mod:`.evaluation`, :mod:`.planning`, :mod:`.analysis`,
:mod:`.exports`, :mod:`.report`; :mod:`.study` (the doctor) and :mod:`.rehearsal` check or rehearse
a whole study.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from biomedquant.cli import (
    analysis,
    datasets,
    evaluation,
    exports,
    inference,
    models,
    planning,
    quantization,
    rehearsal,
    report,
    study,
)
from biomedquant.cli.errors import OneLineErrorParser, run_reporting_errors

# In a study's order (the workflow steps' order in the help).
STAGES = (
    datasets,
    models,
    quantization,
    inference,
    evaluation,
    planning,
    analysis,
    exports,
    report,
    study,
    rehearsal,
)
# The commands a user types, in the order of a study (top of the help); the rest are the
# workflow's steps (each rule calls one), listed after them under their own heading.
USER_COMMANDS = (
    "plan",
    "doctor",
    "rehearse",
    "recommend",
    "datasets",
    "score",
    "compare",
    "parse",
    "plot",
    "cache",
)


# What `biomedquant --help` says first (the module docstring speaks to developers).
DESCRIPTION = (
    "biomedquant: how much accuracy a quantized LLM loses on biomedical NLP benchmarks, and how"
    " much GPU memory it saves. The workflow (snakemake) calls these commands; each also runs"
    " by hand."
)


class _DefaultsShown(argparse.HelpFormatter):
    """Help with each option's default, where it has one worth naming (not None, empty or
    False) and its help does not state it already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            default in (None, False, "", [], argparse.SUPPRESS)
            or "default" in text
            or action.option_strings == []
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _CommandParser(OneLineErrorParser):
    """A subcommand's parser: every option's default shown in its help."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _DefaultsShown)
        super().__init__(**kwargs)


def build_parser() -> OneLineErrorParser:
    from biomedquant import __version__

    p = OneLineErrorParser(
        prog="biomedquant",
        description=textwrap.fill(DESCRIPTION, 79),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"biomedquant {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )
    for stage in STAGES:
        stage.add_commands(sub)
    # user commands listed (in a study's order); workflow steps named in the epilog only
    listed = {a.dest: a for a in sub._choices_actions}
    sub._choices_actions[:] = [listed[name] for name in USER_COMMANDS]
    steps = [name for name in listed if name not in USER_COMMANDS]
    p.epilog = textwrap.fill(
        "workflow steps (each Snakemake rule calls one; also runnable by hand): "
        + ", ".join(steps),
        79,
        break_on_hyphens=False,
    )
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
