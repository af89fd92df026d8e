"""The planning speedups the Snakefile switches on: collector thresholds while a study is planned,
signatures recorded once, the switch that turns them off, and the pinned Snakemake internals
they rely on."""

from __future__ import annotations

import gc
import os
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


SHELL_SNAKEFILE = """
import atexit
from snakemake.jobs import Job
from biomedquant.study import planning_speedups

formats = []
format_wildcards = Job.format_wildcards
Job.format_wildcards = lambda job, *a, **k: formats.append(job.rule.name) or format_wildcards(
    job, *a, **k
)
atexit.register(lambda: print("FORMATS", len(formats)))
SPEEDUPS = planning_speedups.enable()

onstart:
    planning_speedups.restore(SPEEDUPS)

rule all:
    input: expand("out/{n}.txt", n=range(3))

rule make:
    output: "out/{n}.txt"
    params: tag=lambda wildcards: "tag-" + wildcards.n
    resources: mem_mb=lambda wildcards, attempt: 100 * (int(wildcards.n) + 1)
    shell: "echo {params.tag} {resources.mem_mb} > {output}"
"""


def _dry_run(tmp_path, switch: str) -> tuple[list[str], int]:
    folder = tmp_path / switch
    folder.mkdir()
    (folder / "Snakefile").write_text(SHELL_SNAKEFILE, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, SWITCH: switch},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    commands = sorted(
        line.removeprefix("Shell command: ")
        for line in out.splitlines()
        if line.startswith("Shell command: echo ")
    )
    return commands, int(out.split("FORMATS ")[1].split()[0])


def test_a_dry_run_formats_each_shell_command_once_and_prints_the_same_commands(tmp_path):
    """Snakemake's log_info formats a job's command three times; with the speedups once, and
    the printed commands are the same."""
    fast, formatted_once = _dry_run(tmp_path, "1")
    plain, formatted_thrice = _dry_run(tmp_path, "0")
    assert fast == plain == [f"echo tag-{n} {100 * (n + 1)} > out/{n}.txt" for n in range(3)]
    assert formatted_thrice == 3 * 3
    assert formatted_once == 3


def test_format_shell_once_puts_snakemakes_methods_back():
    from snakemake.jobs import Job

    shellcmd, log_info = Job.__dict__["shellcmd"], Job.__dict__["log_info"]
    put_back = planning_speedups.format_shell_once()
    assert Job.__dict__["shellcmd"] is not shellcmd
    assert Job.__dict__["log_info"] is not log_info
    put_back()
    assert Job.__dict__["shellcmd"] is shellcmd
    assert Job.__dict__["log_info"] is log_info
