"""What makes Snakemake plan a full study in seconds: the garbage collector's thresholds while it
plans, signatures recorded once, and a dry run's shell commands formatted once. :func:`enable`
switches them on (the Snakefile calls it first; ``onstart`` puts back what a run's jobs would
notice); ``BIOMEDQUANT_PLANNING_SPEEDUPS=0`` in the environment leaves Snakemake as it is, to
rule them out when something looks wrong. ``benchmarks/bench_plan.py`` measures them.

The collector. Planning the paper's study builds about 650,000 live objects (jobs, their
files, wildcards, resources). Python's cyclic collector runs a *full* collection, which walks
every tracked object, each time the objects that survived younger collections grow by a
quarter: nine full collections while the paper config is planned, most of the collector's 1.3 s
in an 11 s dry run, and the cost grows faster than the study (each walk is longer and there are
more). Almost none of those objects are garbage; they live until Snakemake exits.
:func:`defer_full_collections` keeps the young collections as they are (they are cheap and
catch the short-lived cycles asyncio and Snakemake make) and lets the oldest generation wait
for a thousand collections of the middle one instead of ten. The Snakefile restores the
defaults in ``onstart`` (a real run, about to execute jobs for hours), so only planning runs
with it. Peak memory of the paper's dry run is unchanged (330 MB either way): it holds no
cyclic garbage to speak of.

The same objects cost once more at exit: the interpreter's shutdown collections walked them all
again, 1.3 s between Snakemake's last line and the end of the process for the paper config.
:func:`skip_collections_at_exit` freezes every object at exit (``gc.freeze``: moved to the
permanent generation, which no collection walks) so the operating system reclaims the memory
at once. Nothing depends on that last walk: Snakemake closes its logs, locks and files
explicitly before it exits, ``weakref.finalize`` callbacks (temporary folders) run from their
own exit hook, and Python never promised finalizers of objects alive at exit.

Signatures. Snakemake inspects the signature of an input, params or resource function every
time it calls it, once per job and directive (``snakemake.common.get_function_params``): for a
study of thousands of jobs that was a tenth of a dry run. It reads a recorded one instead when
the function carries one (``overwrite_function_params``, the mechanism behind its own
``subpath``). :func:`signature_once` records a function's; the rule files decorate their input
functions with it. Snakemake's own resource wrapper, the bound method ``Resource.evaluate``,
had its signature inspected anew on every call (30,000 times for the paper's study): a bound
method reads attributes of its function, so recording the function's parameters once serves
every resource of every job. Recorded, they read ``(self, *args, **kwargs)`` where the bound
method's read ``(*args, **kwargs)``: both take any keyword, which is all Snakemake asks of them.

Shell commands. A dry run prints every job, and Snakemake's ``Job.log_info`` formats the job's
shell command three times for it (``Job.shellcmd`` is a property, formatted anew from the
rule's template, the job's files, params and resources on each read): 0.6 s of the paper's
6.7 s dry run under cProfile. :func:`format_shell_once` formats it once per print. The command
is held only while that one job prints, so nothing read later (a retried job's resources) can
see a stale one.

These rely on Snakemake internals; the project pins Snakemake (tests/test_pins.py), and
tests/study/test_planning_speedups.py fails if the pinned version stops honouring them.
"""

from __future__ import annotations

import atexit
import gc
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Set to 0 to plan without any of these (Snakemake as it is).
SWITCH = "BIOMEDQUANT_PLANNING_SPEEDUPS"

# Young generations as Python's defaults (700 allocations, 10 passes); the oldest after 1000
# passes of the middle one, not 10.
PLANNING_THRESHOLDS = (700, 10, 1000)


def defer_full_collections() -> tuple[int, int, int]:
    """Set :data:`PLANNING_THRESHOLDS`; return the thresholds that were in force."""
    previous = gc.get_threshold()
    gc.set_threshold(*PLANNING_THRESHOLDS)
    return previous


def restore_thresholds(previous: tuple[int, int, int]) -> None:
    """Put back the thresholds :func:`defer_full_collections` returned."""
    gc.set_threshold(*previous)


def skip_collections_at_exit() -> None:
    """Freeze every object when the interpreter exits, so that its shutdown collections have
    nothing to walk."""
    atexit.register(gc.freeze)


def enabled() -> bool:
    """Whether the speedups are on (everything but ``BIOMEDQUANT_PLANNING_SPEEDUPS=0``)."""
    return os.environ.get(SWITCH, "1").strip() != "0"


def signature_once(func: F) -> F:
    """Record ``func``'s signature for Snakemake once (a no-op when the speedups are off)."""
    if enabled():
        from snakemake.common import overwrite_function_params

        overwrite_function_params(func, inspect.signature(func).parameters)
    return func


def format_shell_once() -> Callable[[], None]:
    """Let ``Job.log_info`` format a job's shell command once and read it thrice; return what
    puts Snakemake's own methods back."""
    from snakemake.jobs import Job

    printing: dict[int, str | None] = {}  # id(job) -> its command, while that job prints
    formatted = Job.shellcmd
    log_info = Job.log_info

    def shellcmd(job: Job) -> str | None:
        key = id(job)
        return printing[key] if key in printing else formatted.fget(job)

    def log_info_once(job: Job, *args: Any, **kwargs: Any) -> None:
        printing[id(job)] = formatted.fget(job)
        try:
            log_info(job, *args, **kwargs)
        finally:
            del printing[id(job)]

    Job.shellcmd = property(shellcmd, doc=formatted.__doc__)
    Job.log_info = log_info_once

    def put_back() -> None:
        Job.shellcmd = formatted
        Job.log_info = log_info

    return put_back


@dataclass(frozen=True)
class Enabled:
    """What :func:`enable` changed, for :func:`restore`."""

    thresholds: tuple[int, int, int]
    put_back: tuple[Callable[[], None], ...]


def enable() -> Enabled | None:
    """Switch every planning speedup on; return what to restore when the jobs start
    (:func:`restore`), or None when the switch leaves them off."""
    if not enabled():
        return None
    from snakemake.resources import Resource

    signature_once(Resource.evaluate)
    skip_collections_at_exit()
    put_back = (format_shell_once(),)
    return Enabled(defer_full_collections(), put_back)


def restore(previous: Enabled | None) -> None:
    """Put back what :func:`enable` changed for the run itself (nothing when it was off): the
    collector's thresholds and Snakemake's own shell-command methods. Recorded signatures stay:
    they are what inspection would find."""
    if previous is not None:
        restore_thresholds(previous.thresholds)
        for undo in previous.put_back:
            undo()
