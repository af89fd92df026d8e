"""Every method runs on an engine that runs it as specified (biomedquant.methods.engines).

One test per row of the compatibility table, and the two rows that once ran a method as
something else (bnb-int8 under vLLM as NF4, GPTQ-3 handed to vLLM) followed through what a
study does with them: its job settings, its runtime model, its plan-time check and the vLLM
engine's own refusal.
"""

from __future__ import annotations

import copy

import pytest

from biomedquant.methods.engines import (
    ENGINE_SUPPORT,
    FALLBACK_ENGINE,
    FALLS_BACK,
    EngineRefused,
    EngineSupport,
    engine_for,
    substitution,
    support,
)
from biomedquant.methods.kinds import METHOD_KINDS, method_kind
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.job_resources import Runtime, infer_workload, run_seconds
from biomedquant.planning.throughput import BACKENDS
from biomedquant.study.checks import study_problems
from biomedquant.study.jobs import StudyJobs
from biomedquant.study.loading import load_config

from conftest import REPO

PAPER = load_config(REPO / "config" / "paper.yaml")
INT8 = {"kind": "bnb-int8"}
GPTQ3 = {"kind": "gptq", "bits": 3, "group_size": 128}


def _method(row: EngineSupport) -> dict:
    """A method entry of the row's kind at its first bits (4 where the row holds any)."""
    bits = row.bits[0] if row.bits else 4
    method = {"kind": row.kind, "bits": bits, "group_size": 128}
    if row.kind == "gguf":
        method = {"kind": "gguf", "type": "Q4_K_M"}
    elif row.kind == "awq":
        method = {"kind": "awq", "bits": bits, "group_size": 128}
    return method


@pytest.mark.parametrize(
    "row",
    ENGINE_SUPPORT,
    ids=[
        f"{r.kind}-{'x'.join(map(str, r.bits)) if r.bits else 'any'}-{r.engine}"
        for r in ENGINE_SUPPORT
    ],
)
def test_each_row_decides_the_engine(row: EngineSupport):
    method = _method(row)
    assert support(method, row.engine) is row
    assert row.reason and row.versions, "every row says why and for which engine versions"
    own = method_kind(method).engine
    if row.runs == "native":
        assert engine_for(method, row.engine) == row.engine
        return
    if own is None and row.engine in FALLS_BACK:
        # runs in the same study under the engine that runs it as specified, and says so
        chosen = engine_for(method, row.engine)
        assert chosen == FALLBACK_ENGINE and support(method, chosen).runs == "native"
        assert row.reason in substitution(method, row.engine)
    elif own is not None:
        assert engine_for(method, row.engine) == own  # GGUF: llama.cpp, whatever the backend
        assert substitution(method, row.engine) is None
    else:
        with pytest.raises(EngineRefused, match=row.reason):
            engine_for(method, row.engine)


def test_every_kind_has_a_row_on_every_engine():
    for kind in METHOD_KINDS:
        for engine in ("transformers", "vllm", "llama_cpp"):
            assert any(r.kind == kind and r.engine == engine for r in ENGINE_SUPPORT), (
                kind,
                engine,
            )


def test_a_method_no_row_covers_is_refused_in_one_line():
    with pytest.raises(EngineRefused, match=r"cannot run under llama_cpp: .*GGUF files only"):
        engine_for({"kind": "gptq", "bits": 4, "group_size": 128}, "llama_cpp")
    row = support({"kind": "gptq", "bits": 5, "group_size": 128}, "vllm")
    assert row.runs == "refused" and "no row" in row.reason
    assert engine_for({"kind": "gptq", "bits": 5, "group_size": 128}, "vllm") == "transformers"


def _vllm_study(methods: dict) -> dict:
    cfg = copy.deepcopy(PAPER)
    cfg["methods"] = {"none": {"kind": "none"}, **methods}
    cfg["inference"]["backend"] = "vllm"
    return cfg


@pytest.mark.parametrize(
    ("name", "method", "reason"),
    [
        ("bnb-int8", INT8, "int8 would run as NF4"),
        ("gptq-w3g128", GPTQ3, "run 4 and 8 bits only"),
    ],
)
def test_under_vllm_the_method_runs_under_transformers_and_the_plan_says_so(name, method, reason):
    cfg = _vllm_study({name: method})
    jobs = StudyJobs(cfg)
    assert jobs.infer_settings("none")["backend"] == "vllm"
    assert jobs.infer_settings(name)["backend"] == "transformers"
    warnings = [p for p in study_problems(cfg) if p.topic == "engine"]
    assert [p.level for p in warnings] == ["warning"]
    line = warnings[0].line()
    assert "\n" not in line and f"methods.{name}:" in line and "runs under transformers" in line
    assert reason in line
    # the runtime model costs the engine that runs it
    shape = shape_for_model(PAPER["models"]["llama31_8b"])
    work = infer_workload("medqa", "zero-shot", limit=50)
    load, _ = run_seconds(shape, method, [work], Runtime("vllm"))
    assert load == pytest.approx(run_seconds(shape, method, [work], Runtime("transformers"))[0])
    assert BACKENDS["transformers"].start_s != BACKENDS["vllm"].start_s


@pytest.mark.parametrize("method", [INT8, {"kind": "bnb-nf4"}, GPTQ3])
def test_the_vllm_engine_refuses_what_vllm_would_run_as_something_else(method, tmp_path):
    from biomedquant.inference.decoding import Decoding
    from biomedquant.inference.engines.vllm import llm_kwargs

    with pytest.raises(EngineRefused, match="vLLM does not run .* as specified"):
        llm_kwargs(tmp_path, method, Decoding())


def test_no_method_of_the_shipped_configs_is_refused():
    for name in ("config.yaml", "paper.yaml", "methods.yaml"):
        cfg = load_config(REPO / "config" / name)
        for backend in ("transformers", "vllm"):
            cfg["inference"]["backend"] = backend
            assert [
                p.line() for p in study_problems(cfg) if p.topic == "engine" and p.level == "error"
            ] == []


def test_the_engines_guide_shows_the_table_as_declared():
    from biomedquant.methods.engines import support_table

    page = (REPO / "docs" / "guide" / "engines.md").read_text(encoding="utf-8")
    assert support_table() in page


def test_plan_prints_one_line_per_method_that_runs_under_another_engine(tmp_path, capsys):
    """``biomedquant plan`` runs the same check as the Snakefile and ``doctor``."""
    import yaml

    from biomedquant.cli import main

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg.setdefault("inference", {})["backend"] = "vllm"
    cfg["methods"]["bnb-int8"] = INT8
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["plan", "--config", str(path)]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if "runs under" in x]
    assert lines == [
        "biomedquant plan: warning: methods.bnb-int8: bitsandbytes int8 runs under transformers,"
        " not inference.backend vllm: " + support(INT8, "vllm").reason
    ]
