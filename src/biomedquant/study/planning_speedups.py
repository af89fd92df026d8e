"""Python's garbage collector while Snakemake plans a study.

Planning the paper's study builds about 650,000 live objects (jobs, their files, wildcards,
resources). Python's cyclic collector runs a *full* collection, which walks every tracked
object, each time the objects that survived younger collections grow by a quarter: nine full
collections while the paper config is planned, most of the collector's 1.3 s in an 11 s dry
run, and the cost grows faster than the study (each walk is longer and there are more).
Almost none of those objects are garbage; they live until Snakemake exits.

:func:`defer_full_collections` keeps the young collections as they are (they are cheap and
catch the short-lived cycles asyncio and Snakemake make) and lets the oldest generation wait
for a thousand collections of the middle one instead of ten. The Snakefile calls it before
any rule is defined, and restores the defaults in ``onstart`` (a real run, about to execute
jobs for hours), so only planning runs with it. Peak memory of the paper's dry run is
unchanged (330 MB either way): it holds no cyclic garbage to speak of.

The same objects cost once more at exit: the interpreter's shutdown collections walked them all
again, 1.3 s between Snakemake's last line and the end of the process for the paper config.
:func:`skip_collections_at_exit` freezes every object at exit (``gc.freeze``: moved to the
permanent generation, which no collection walks) so the operating system reclaims the memory
at once. Nothing depends on that last walk: Snakemake closes its logs, locks and files
explicitly before it exits, ``weakref.finalize`` callbacks (temporary folders) run from their
own exit hook, and Python never promised finalizers of objects alive at exit.

``benchmarks/bench_plan.py`` measures the gain of both.
"""

from __future__ import annotations

import atexit
import gc

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
