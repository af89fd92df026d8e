"""The planning speedups the Snakefile switches on: collector thresholds while a study is planned,
signatures recorded once, the switch that turns them off, and the pinned Snakemake internals
they rely on."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import pytest
from snakemake import common as snakemake_common
from snakemake.resources import Resource

from biomedquant.study import planning_speedups
from biomedquant.study.planning_speedups import (
    PLANNING_THRESHOLDS,
    SWITCH,
    defer_full_collections,
    restore_thresholds,
    signature_once,
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


def test_snakemake_reads_a_recorded_signature_instead_of_inspecting_the_function(monkeypatch):
    """The pinned Snakemake's hook that signature_once relies on: a recorded parameter list is
    what it reads, and it then never inspects the function again."""
    assert hasattr(snakemake_common, "FUNC_OVERWRITE_PARAMS_ATTR")

    def params(wildcards, input):
        return wildcards

    signature_once(params)
    calls = []
    real = snakemake_common.inspect.signature
    monkeypatch.setattr(snakemake_common.inspect, "signature", lambda f: calls.append(f) or real(f))
    kept = snakemake_common.get_input_function_aux_params(
        params, {"wildcards": 1, "input": 2, "output": 3, "threads": 4}
    )
    assert kept == {"wildcards": 1, "input": 2}
    assert calls == []  # read from the record, not inspected


def test_resource_evaluate_takes_any_keyword_so_its_recorded_signature_serves_every_resource():
    """Resource.evaluate is recorded once for all resources: that holds while the pinned
    Snakemake defines it as (self, *args, **kwargs) and forwards the keywords its evaluator
    asks for."""
    import inspect

    names = list(inspect.signature(Resource.evaluate).parameters)
    assert names == ["self", "args", "kwargs"]
    previous = planning_speedups.enable()
    try:
        assert getattr(Resource.evaluate, snakemake_common.FUNC_OVERWRITE_PARAMS_ATTR)
        resource = Resource("mem_mb", lambda wildcards, attempt: 1000 * attempt)
        evaluated = resource.evaluate(wildcards={}, attempt=3, input=[], threads=1)
        assert evaluated.value == 3000
    finally:
        planning_speedups.restore(previous)


def test_the_switch_turns_every_speedup_off(monkeypatch):
    monkeypatch.setenv(SWITCH, "0")
    before = gc.get_threshold()

    def params(wildcards):
        return wildcards

    assert planning_speedups.enable() is None
    assert gc.get_threshold() == before
    signature_once(params)
    assert not hasattr(params, snakemake_common.FUNC_OVERWRITE_PARAMS_ATTR)
    planning_speedups.restore(None)
    assert gc.get_threshold() == before


@pytest.mark.parametrize("value", ["", "1", "yes"])
def test_anything_but_zero_leaves_them_on(monkeypatch, value):
    monkeypatch.setenv(SWITCH, value)
    assert planning_speedups.enabled()
