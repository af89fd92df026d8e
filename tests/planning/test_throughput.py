"""The runtime model per backend (biomedquant.planning.throughput), its refit from run records, and
the study's cost (biomedquant.planning.cost) against what the jobs request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from biomedquant.common.files import read_json
from biomedquant.inference.decoding import Decoding
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.cost import cost_lines, study_cost
from biomedquant.planning.job_resources import Runtime, infer_workload, job_resources, run_seconds
from biomedquant.planning.throughput import (
    CPU_RATES,
    DEVICES,
    Throughput,
    device_key,
    observation,
    read_output_lengths,
    read_rates,
    refit,
)
from biomedquant.study.loading import load_config

from conftest import REPO

# Run records of the demo model (16-bit, float32 on the CPU) over every demo dataset and three
# prompting methods, as `biomedquant infer` wrote them on this project's 2-core machine.
RECORDS = sorted((Path(__file__).resolve().parents[1] / "data" / "run_records").glob("*.run.json"))
PAPER = load_config(REPO / "config" / "paper.yaml")
LLAMA8 = PAPER["models"]["llama31_8b"]
LLAMA70 = PAPER["models"]["llama31_70b"]
NONE = {"kind": "none"}
GPTQ4 = PAPER["methods"]["gptq-w4g128"]


def _records() -> list[tuple[str, dict]]:
    return [(str(p), read_json(p)) for p in RECORDS]


def test_the_fixtures_are_real_cpu_runs_with_the_counts_a_refit_needs():
    assert len(RECORDS) >= 20
    for path, rec in _records():
        assert rec["device"] == "cpu" and rec["backend"] == "transformers", path
        assert observation(rec) is not None, path
    seconds = [rec["generate_seconds"] for _, rec in _records()]
    assert max(seconds) > 3 * min(seconds)  # the runs differ enough to pin three rates


def test_a_refit_reproduces_every_measured_run_within_25_percent():
    fitted = refit(_records())
    cpu = fitted["transformers"]["cpu"]
    assert cpu["n_records"] == len(RECORDS)
    assert cpu["max_abs_relative_error"] <= 0.25
    rates = read_rates_from(fitted)
    for path, rec in _records():
        obs = observation(rec)
        predicted = rates.seconds(*obs.features)
        assert abs(predicted / rec["generate_seconds"] - 1) <= 0.25, path


def test_the_shipped_cpu_rates_are_the_refit_of_the_fixtures():
    """CPU_RATES were written from `biomedquant refit-throughput tests/data/run_records/*`."""
    cpu = refit(_records())["transformers"]["cpu"]
    shipped = CPU_RATES["transformers"]
    for key in ("flops", "step_overhead_s", "bandwidth"):
        assert getattr(shipped, key) == pytest.approx(cpu[key], rel=0.1), key
    for _, rec in _records():
        obs = observation(rec)
        assert abs(shipped.seconds(*obs.features) / rec["generate_seconds"] - 1) <= 0.25


def read_rates_from(fitted: dict):
    from biomedquant.planning.throughput import Rates

    r = fitted["transformers"]["cpu"]
    return Rates(r["flops"], r["step_overhead_s"], r["bandwidth"])


def test_the_refit_command_writes_rates_a_config_then_plans_with(tmp_path):
    out = tmp_path / "rates.json"
    proc = subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "refit-throughput", "--out", str(out)]
        + [str(p) for p in RECORDS],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "transformers on cpu:" in proc.stdout and f"from {len(RECORDS)} records" in proc.stdout
    fitted = read_rates(out)["transformers"]["cpu"]
    assert fitted.flops == pytest.approx(CPU_RATES["transformers"].flops, rel=0.1)
    # the output lengths the records measured replace the prior in the next plan: ChemProt
    # zero-shot's 8 outputs, 6 of them at the 20-token cap, the other 2 with 37 tokens
    assert "output lengths of " in proc.stdout
    lengths = read_output_lengths(out)
    chemprot = lengths["chemprot", "zero-shot"]
    assert (chemprot.rows, chemprot.cap_share, chemprot.stopped) == (8, 0.75, 18.5)
    planned = infer_workload("chemprot", "zero-shot", decoding=Decoding(), lengths=lengths)
    assert (planned.stopped_tokens, planned.cap_share) == (18.5, 0.75)
    cost_cfg = load_config(REPO / "config" / "paper_original.yaml")
    cost_cfg["scheduling"]["throughput_file"] = str(out)
    said = "\n".join(cost_lines(study_cost(cost_cfg), config=cost_cfg))
    assert "measured by the refit file for 8 dataset x prompting method(s)" in said
    # A site that measured its GPUs slower than the defaults asks for more time.
    slow = {
        "transformers": {"a100_80g": {"flops": 1e12, "step_overhead_s": 0.1, "bandwidth": 1e11}}
    }
    out.write_text(json.dumps(slow))
    cfg = {"scheduling": {"gpu": "a100_80g", "throughput_file": str(out)}}
    work = infer_workload("pubmedqa", "zero-shot", decoding=Decoding())
    default = job_resources(LLAMA8, NONE, "infer", workload=work)["runtime"]
    measured = job_resources(
        LLAMA8,
        NONE,
        "infer",
        workload=work,
        runtime=Runtime(throughput=Throughput.from_config(cfg)),
    )["runtime"]
    assert measured > 2 * default


def test_records_that_cannot_be_fitted_are_left_out_with_no_error():
    _, rec = _records()[0]
    assert observation({**rec, "n_from_cache": 3}) is None  # the seconds are not the items'
    assert observation({**rec, "generated_with": ["zero-shot", "cot"]}) is None  # vLLM, shared
    assert observation({k: v for k, v in rec.items() if k != "model_shape"}) is None
    assert refit([("x", {"device": "cpu"})]) == {}
    proc = subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "refit-throughput", "--out", "/dev/null"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "none of the 0 run records" in proc.stderr


def test_gpu_names_map_to_the_devices():
    def rec(name):
        return {"device": "cuda", "hardware": {"gpu": name}}

    assert device_key(rec("NVIDIA H100 80GB HBM3")) == "h100"
    assert device_key(rec("NVIDIA A100-SXM4-80GB")) == "a100_80g"
    assert device_key(rec("NVIDIA A100-SXM4-40GB")) == "a100_40g"
    assert device_key(rec("NVIDIA L4")) == "l4"
    assert device_key(rec("NVIDIA L40S")) == "l40s"
    assert device_key({"device": "cpu"}) == "cpu"


def test_the_model_ranks_engines_devices_and_gpus_as_published_figures_do():
    shape = shape_for_model(LLAMA8)
    works = [infer_workload("ddi", "zero-shot", decoding=Decoding())]

    def seconds(backend="transformers", device="a100_80g", method=NONE, gpus=1, model=shape):
        runtime = Runtime(backend, Throughput(device), gpus)
        return run_seconds(model, method, works, runtime)[1]

    assert seconds("vllm") < seconds("transformers") / 4  # continuous batching, CUDA graphs
    assert seconds(device="h100") < seconds(device="a100_80g") < seconds(device="l4")
    # vLLM's GPTQ kernels read the packed weights; transformers' generate does not gain
    assert seconds("vllm", method=GPTQ4) < seconds("vllm")
    assert seconds(method=GPTQ4) == pytest.approx(seconds())
    # tensor parallelism: faster, but less than linearly
    big = shape_for_model(LLAMA70)
    one, two = seconds("vllm", model=big), seconds("vllm", model=big, gpus=2)
    assert one / 2 < two < one
    # a decode step of an 8B 16-bit model at batch 1 under vLLM on an H100: about 150 tokens/s
    single = infer_workload("pubmedqa", "zero-shot", decoding=Decoding(continuous_rows=1))
    vllm = Runtime("vllm", Throughput("h100"))
    # the tokens it decodes: the output prior's expected lengths (not every output at its cap)
    tokens = single.items * single.output_tokens
    rate = tokens / run_seconds(shape, NONE, [single], vllm)[1]
    assert 100 < rate < 200
    assert set(DEVICES) == {"h100", "h200", "a100_80g", "a100_40g", "l40s", "l4"}


def test_the_study_cost_and_the_requests_agree_within_the_margin():
    for backend in ("vllm", "transformers"):
        cost = study_cost(PAPER, backend=backend, device="h100")
        expected, requested = cost.total(), cost.total(requested=True)
        assert expected < requested < 2 * expected, backend
        by_prompt = sum(r["gpu_hours"] for r in cost.rows)
        assert by_prompt == pytest.approx(cost.total("infer"), rel=1e-3)
    vllm, hf = study_cost(PAPER, backend="vllm", device="h100"), cost
    assert vllm.total() < hf.total()
    # self-consistency's five chains per item dominate, as the README says
    sc = sum(r["gpu_hours"] for r in vllm.rows if r["prompt"] == "sc-cot")
    assert sc > 0.5 * vllm.total("infer")


def test_plan_cost_prints_the_totals_the_largest_jobs_and_the_shards(tmp_path):
    out = tmp_path / "cost.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "biomedquant.cli",
            "plan",
            "--config",
            str(REPO / "config/paper.yaml"),
        ]
        + ["--cost", "--backend", "vllm", "--gpu", "h100", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    cost = study_cost(PAPER, backend="vllm", device="h100")
    assert lines[0].startswith(f"expected GPU-hours under vllm on h100: {cost.total():,.0f}")
    # per stage, expected and requested GPU-hours, quantization apart from inference and
    # evaluation (perplexity on GPUs, scores and tables on CPUs)
    stages = {line.split("  ")[1].strip(): line for line in lines[2:7]}
    assert set(stages) == {
        "inference",
        "perplexity (held-out texts)",
        "evaluation (scores, tables)",
        "= inference and evaluation",
        "quantization (apart)",
    }
    assert f"{cost.total('infer'):,.1f}" in stages["inference"]
    assert f"{cost.total('quantize_model', requested=True):,.1f}" in stages["quantization (apart)"]
    assert "(36 on CPUs, no GPU)" in stages["quantization (apart)"]
    assert any(
        line.startswith("inference jobs (model x method): 132; time-boxed:") for line in lines
    )
    assert "largest jobs (GPU-hours):" in lines
    # the assumptions it used: engines per method, tokens, output prior, speed factors
    at = lines.index("assumptions (estimates from the runtime model, not measurements):")
    said = "\n".join(lines[at:])
    assert "transformers: gptq-w3g128, bnb-int8, bnb-nf4" in said
    assert "llama_cpp: gguf-q8_0, gguf-q4_k_m" in said
    assert "prompt tokens per model x method: 67.61M" in said
    assert "2% of direct answers and 10% of chains at the cap" in said
    assert "bnb-int8 x2, bnb-nf4 x1.6, gptq-w3g128 x1.5" in said
    rows = out.read_text().splitlines()
    assert rows[0] == "model,method,prompt,gpus,gpu_hours"
    assert len(rows) - 1 == len(PAPER["models"]) * len(PAPER["methods"]) * len(PAPER["prompts"])


def test_runs_an_engine_generated_together_are_fitted_as_one_job():
    """vLLM takes a job's prompting methods in one request list: each record holds the joint
    seconds and its share of the counts; the refit sums them into one observation."""
    from biomedquant.planning.throughput import observations

    _, base = _records()[0]
    together = {"generated_with": ["zero-shot", "cot"], "generate_seconds": 30.0}
    a = {**base, **together, "prompt_method": "zero-shot"}
    b = {
        **base,
        **together,
        "prompt_method": "cot",
        "batch_decode_steps": 2 * base["batch_decode_steps"],
    }
    (obs,) = observations([("a", a), ("b", b)])
    single = observation(base)
    assert obs.seconds == 30.0 and obs.source == "a + b"
    assert obs.features[1] == 3 * base["batch_decode_steps"]
    assert obs.features[0] == pytest.approx(2 * single.features[0])
    assert observations([("a", a)]) == []  # half a job: its seconds are not its own
