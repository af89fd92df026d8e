"""How the command line reports failures: one line for what a user can fix, a bug report
request for what they cannot, and a clean exit on SIGTERM and Ctrl-C.

Expected failures (bad input, a missing file, a network error, a full disk) are one line
naming the cause, exit code 1; a bad option is argparse's one line, exit code 2. Anything else
is a bug in biomedquant: one line saying so and where to report it, exit code 70, and the
traceback only with ``-v`` (so job logs stay readable). SIGTERM, which SLURM sends at a time
limit and Snakemake when it cancels a job, unwinds like Ctrl-C, so every ``finally`` removes
its temporary files before the process ends.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

REPORT = (
    "this is a bug in biomedquant: please report it with the command, its output with -v and"
    " `biomedquant doctor` (docs/guide/troubleshooting.md: 'Reporting a bug')"
)
EXPECTED = (ValueError, KeyError, RuntimeError, OSError, UnicodeError)
EX_SOFTWARE = 70


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with a bad option reported as one line (its usage block is one --help away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt is for SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def one_line(err: BaseException) -> str:
    """One line for an expected error (a KeyError's message is its first argument)."""
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    elif isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.strerror}: {err.filename}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _no_space(command: str, err: OSError) -> int:
    # Outputs are written under a temporary name and renamed when complete, so what was there
    # before is intact; the half-written temporary file is already removed.
    print(
        f"biomedquant {command}: error: no space left on the device"
        f" ({err.filename or 'while writing'}); earlier results are intact."
        " Free space and rerun.",
        file=sys.stderr,
    )
    return 1


def run_reporting_errors(
    func: Callable[[argparse.Namespace], int | None],
    args: argparse.Namespace,
    command: str,
    *,
    verbose: bool = False,
) -> int:
    """Run one subcommand and turn every way it can end into an exit code and one line."""
    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        return int(func(args) or 0)
    except EXPECTED as err:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return _no_space(command, err)
        if verbose:
            traceback.print_exc()
        print(f"biomedquant {command}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated) as err:
        signum = err.signum if isinstance(err, Terminated) else signal.SIGINT
        print(
            f"biomedquant {command}: stopped by {signal.Signals(signum).name}; temporary files"
            " removed, finished outputs intact",
            file=sys.stderr,
        )
        return 128 + signum
    except Exception as err:
        if verbose:
            traceback.print_exc()
        print(
            f"biomedquant {command}: internal error: {type(err).__name__}: "
            f"{one_line(err)[:300]}; {REPORT}",
            file=sys.stderr,
        )
        return EX_SOFTWARE
    finally:
        signal.signal(signal.SIGTERM, previous)
