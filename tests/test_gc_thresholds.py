"""The collector thresholds the Snakefile sets while a study is planned."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

from biomedquant.study.planning_speedups import (
    PLANNING_THRESHOLDS,
    defer_full_collections,
    restore_thresholds,
)


def test_defer_keeps_young_collections_and_restores_what_was_there() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(123, 4, 5)
        previous = defer_full_collections()
        assert previous == (123, 4, 5)
        assert gc.get_threshold() == PLANNING_THRESHOLDS
        # Young generations as Python's defaults; only full collections wait longer.
        assert PLANNING_THRESHOLDS[:2] == (700, 10)
        assert PLANNING_THRESHOLDS[2] >= 100 * 10
        assert gc.isenabled()
        restore_thresholds(previous)
        assert gc.get_threshold() == (123, 4, 5)
    finally:
        gc.set_threshold(*before)


def test_cyclic_garbage_is_still_collected_under_planning_thresholds() -> None:
    before = gc.get_threshold()
    previous = defer_full_collections()
    try:

        class Node:
            def __init__(self) -> None:
                self.me = self

        ref = weakref.ref(Node())
        assert ref() is not None  # a cycle: reference counting alone cannot free it
        gc.collect(0)  # a young collection, as the planning thresholds keep running
        assert ref() is None
    finally:
        restore_thresholds(previous)
        gc.set_threshold(*before)


def test_exit_freezes_objects_and_keeps_the_exit_status_and_output() -> None:
    """At exit every object is frozen (no shutdown collection walks them); the exit status and
    what was printed are as without it."""
    code = (
        "import atexit, gc, sys\n"
        # registered first, so it runs after the freeze (exit hooks run last-in, first-out)
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "from biomedquant.study.planning_speedups import skip_collections_at_exit\n"
        "skip_collections_at_exit()\n"
        "print('planned', end='')\n"
        "sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stdout == "plannedfrozen True\n"
