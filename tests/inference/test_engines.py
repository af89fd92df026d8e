"""The engines and the job: token-budget batches, out-of-memory halving, resume after SIGKILL,
the generation cache, the engine registry, and the optional vLLM engine's settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from biomedquant.common.files import read_json, read_jsonl, write_jsonl
from biomedquant.inference.decoding import Decoding, Sampling
from biomedquant.inference.engines.transformers import generate, load_model, plan_batches
from biomedquant.inference.job import read_partial

from conftest import assert_outputs_vary, numbered_items


def test_plan_batches_sorts_and_respects_the_token_budget():
    lengths = [50, 10, 30, 10, 200, 20, 40]
    batches = plan_batches(lengths, max_new_tokens=10, batch_size=3, batch_tokens=100)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every item exactly once
    assert [lengths[i] for i in flat] == sorted(lengths)  # shortest first
    for b in batches:
        assert len(b) <= 3
        cost = len(b) * (max(lengths[i] for i in b) + 10)
        assert cost <= 100 or len(b) == 1  # only a lone oversize prompt may exceed it
    assert [4] in batches  # 200 + 10 tokens: alone
    # Without a budget: fixed-size batches of the sorted items.
    assert plan_batches([3, 1, 2], 5, 2, None) == [[1, 2], [0]]


def test_plan_batches_counts_each_sampled_chain_as_a_row():
    """Self-consistency: a prompt's 5 chains are 5 rows, against both limits."""
    lengths = [10, 10, 10, 10]
    assert plan_batches(lengths, 10, batch_size=10, batch_tokens=None, samples=5) == [
        [0, 1],
        [2, 3],
    ]
    # 2 prompts x 5 chains x (10 + 10) tokens = 200 > 150: one prompt per batch
    assert plan_batches(lengths, 10, 10, 150, samples=5) == [[0], [1], [2], [3]]
    # a prompt whose chains alone exceed batch_size still runs, alone
    assert plan_batches(lengths, 10, batch_size=4, batch_tokens=None, samples=5) == [
        [0],
        [1],
        [2],
        [3],
    ]


@pytest.fixture(scope="module")
def tiny(tiny_fetched):
    model, tok, _ = load_model(tiny_fetched, {"kind": "none"})
    return model, tok


PROMPTS = [f"item {i}: " + "word " * (i % 7) for i in range(11)]


def test_token_budget_batches_equal_one_by_one_greedy(tiny):
    model, tok = tiny
    one = generate(model, tok, PROMPTS, max_new_tokens=6, batch_size=1)
    budget = generate(model, tok, PROMPTS, max_new_tokens=6, batch_size=8, batch_tokens=60)
    assert budget == one


class OomAbove:
    """Wraps a model so that generate() runs out of memory above ``limit`` rows, as a GPU
    would (the real torch.OutOfMemoryError type; CUDA itself cannot run here)."""

    def __init__(self, model, limit: int) -> None:
        self._model, self.limit, self.calls = model, limit, []

    def generate(self, **kwargs):
        import torch

        rows = kwargs["input_ids"].shape[0]
        self.calls.append(rows)
        if rows > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self._model.generate(**kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


def test_out_of_memory_halves_the_batch_and_records_what_worked(tiny):
    model, tok = tiny
    expected = generate(model, tok, PROMPTS, max_new_tokens=5, batch_size=1)
    flaky = OomAbove(model, limit=3)
    stats: dict = {}
    out = generate(flaky, tok, PROMPTS, max_new_tokens=5, batch_size=8, stats=stats)
    assert out == expected
    assert stats["oom_retries"] >= 2 and stats["largest_batch"] <= 3
    assert flaky.calls[0] == 8 and 4 in flaky.calls and max(flaky.calls[1:]) <= 4
    with pytest.raises(RuntimeError, match="out of memory generating a single prompt"):
        generate(OomAbove(model, limit=0), tok, PROMPTS[:2], max_new_tokens=3, batch_size=2)


class FakeCudaCounters:
    """torch.cuda's peak counters for one GPU, as this machine has none: a batch of n rows
    peaks at n GB, an attempt that runs out of memory at the GPU's 80 GB."""

    def __init__(self) -> None:
        self.peak = 0

    def max_memory(self, device=None) -> int:
        return self.peak

    def reset(self, device=None) -> None:
        self.peak = 0

    def ran(self, rows: int) -> None:
        self.peak = max(self.peak, rows * 10**9)


class CountedOom(OomAbove):
    def __init__(self, model, limit: int, counters: FakeCudaCounters) -> None:
        super().__init__(model, limit)
        self.counters = counters

    def generate(self, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        if rows > self.limit:
            self.counters.peak = 80 * 10**9
        else:
            self.counters.ran(rows)
        return super().generate(**kwargs)


def test_a_batch_that_ran_out_of_memory_does_not_count_in_the_peak(tiny, monkeypatch):
    """The peak is that of the batches that ran (3 rows: 3 GB), not the 80 GB an attempt
    that ran out of memory left in torch's counters."""
    import torch

    from biomedquant.inference.engines.gpu_peaks import GpuPeaks

    model, tok = tiny
    counters = FakeCudaCounters()
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", counters.max_memory)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", counters.max_memory)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", counters.reset)
    peaks = GpuPeaks(devices=1)
    stats: dict = {}
    generate(
        CountedOom(model, 3, counters), tok, PROMPTS, max_new_tokens=3, batch_size=8,
        stats=stats, peaks=peaks,
    )  # fmt: skip
    assert stats["oom_retries"] == peaks.failed_attempts >= 2
    assert peaks.total("allocated") == peaks.total("reserved") == 3 * 10**9
    # without the engine's peaks, torch's counter would have said what failed last, or 80 GB
    counters.peak = 80 * 10**9
    peaks.forget_failed()
    assert peaks.total("allocated") == 3 * 10**9
    assert GpuPeaks(devices=0).total("allocated") is None


def _infer_cmd(model_dir, data, out, *extra):
    return [
        sys.executable, "-m", "biomedquant.cli", "infer",
        "--model-dir", str(model_dir), "--method", '{"kind": "none"}',
        "--dataset", "pubmedqa", "--data", str(data), "--prompt", "zero-shot",
        "--out", str(out), "--run-record", f"{out}.run.json",
        "--max-new-tokens", "24", "--cpu-threads", "1", *extra,
    ]  # fmt: skip


def test_sigkill_then_rerun_resumes_without_regenerating(tiny_fetched, demo_prepared, tmp_path):
    data = numbered_items(demo_prepared, tmp_path / "items.jsonl", 120)
    out = tmp_path / "killed.jsonl"
    partial = tmp_path / "killed.jsonl.partial"
    proc = subprocess.Popen(_infer_cmd(tiny_fetched, data, out, "--batch-size", "2"))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if partial.exists() and len(read_partial(partial)) >= 10:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the job finished before it could be killed"
    assert not out.exists()  # no final output from a killed job
    finished = len(read_partial(partial))
    assert 10 <= finished < 120
    with open(partial, "a") as fh:
        fh.write('{"key": "torn')  # a line cut by the kill: ignored on resume

    subprocess.run(_infer_cmd(tiny_fetched, data, out, "--batch-size", "2"), check=True)
    run = read_json(f"{out}.run.json")
    assert run["n_resumed"] == finished and run["n_generated"] == 120 - finished
    assert not partial.exists()  # cleaned up once the output is complete

    whole = tmp_path / "whole.jsonl"
    subprocess.run(_infer_cmd(tiny_fetched, data, whole, "--batch-size", "2"), check=True)
    strip = lambda rows: [{k: r[k] for k in ("id", "output", "stop_reason")} for r in rows]  # noqa: E731
    assert strip(read_jsonl(out)) == strip(read_jsonl(whole))
    assert_outputs_vary([r["output"] for r in read_jsonl(out)])  # a resumed item misplaced shows


def test_generation_cache_serves_an_unchanged_prompt_with_zero_generations(
    tiny_fetched, demo_prepared, tmp_path
):
    from biomedquant.cli import main

    data = numbered_items(demo_prepared, tmp_path / "items.jsonl", 12)
    cache = tmp_path / "cache"
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    cmd = _infer_cmd(tiny_fetched, data, first, "--cache-dir", str(cache))[3:]
    assert main(cmd) == 0
    run = read_json(f"{first}.run.json")
    assert run["n_generated"] == 12
    # A hand run without batch flags batches as the workflow does by default.
    assert (run["batch_size"], run["batch_tokens"]) == (8, 8192)
    assert (Decoding().batch_size, Decoding().batch_tokens) == (8, 8192)

    # The same prompts again (say, after an unrelated change reran the job): all cached,
    # the model is not even loaded.
    assert main(_infer_cmd(tiny_fetched, data, second, "--cache-dir", str(cache))[3:]) == 0
    run = read_json(f"{second}.run.json")
    assert run["n_generated"] == 0 and run["n_from_cache"] == 12
    assert run["model_load"]["loads_in_job"] == 0 and run["model_load"]["seconds"] is None
    # ...yet its record keeps what the job that loaded the model measured, and says so.
    measuring = read_json(f"{first}.run.json")
    assert measuring["measured_in"] == "this job"
    assert run["measured_in"] == "an earlier job (generation cache)"
    for fact in ("load_seconds", "weights_bytes", "peak_host_rss_bytes", "measured_at"):
        assert run[fact] == measuring[fact] is not None, fact
    assert run["measured_on"] == measuring["measured_on"]
    assert read_jsonl(first) == read_jsonl(second)
    assert_outputs_vary([r["output"] for r in read_jsonl(second)])  # served item by item

    # One changed item: only that one is generated.
    items = read_jsonl(data)
    items[3]["question"] += " Why?"
    write_jsonl(data, items)
    assert main(_infer_cmd(tiny_fetched, data, second, "--cache-dir", str(cache))[3:]) == 0
    assert read_json(f"{second}.run.json")["n_generated"] == 1

    # Other decoding parameters are other entries.
    args = _infer_cmd(tiny_fetched, data, second, "--cache-dir", str(cache))[3:]
    args[args.index("--max-new-tokens") + 1] = "8"
    assert main(args) == 0 and read_json(f"{second}.run.json")["n_generated"] == 12

    assert main(["cache", "clear", "--dir", str(cache), "--yes"]) == 0
    assert not list(cache.glob("*.sqlite"))


def test_every_registered_engine_offers_the_interface():
    """Each engine's load, generate and close take what the job passes (checked on the
    signatures: the vLLM and llama.cpp engines cannot all run here)."""
    import inspect

    from biomedquant.inference.engines import ENGINES, get_engine
    from biomedquant.inference.engines.base import Engine

    def params(fn):
        return [
            (p.name, p.kind) for p in inspect.signature(fn).parameters.values() if p.name != "self"
        ]

    for name in ENGINES:
        engine = get_engine(name)
        assert engine.name == name
        for method in ("generate", "close"):
            assert params(getattr(engine, method)) == params(getattr(Engine, method)), name
        # load may take more, optional, keywords (llama.cpp: logits for perplexity)
        wanted = params(Engine.load.__func__)[1:]
        assert params(engine.load)[: len(wanted)] == wanted, name


def test_vllm_engine_without_vllm_names_the_missing_package(tiny_fetched, monkeypatch):
    from biomedquant.inference.engines import get_engine
    from biomedquant.inference.engines.base import EngineUnavailable

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    engine = get_engine("vllm")
    assert engine.name == "vllm"
    missing = r"needs the 'vllm' package.*pip install -e '\.\[vllm\]'"
    with pytest.raises(EngineUnavailable, match=missing):
        engine.load(tiny_fetched, {"kind": "none"}, Decoding())
    with pytest.raises(ValueError, match="unknown inference engine 'vlm'.*did you mean 'vllm'"):
        get_engine("vlm")


def test_vllm_llm_gets_the_decoding_settings_batch_shape(tiny_fetched):
    from biomedquant.inference.engines.vllm import llm_kwargs

    decoding = Decoding(batch_size=32, batch_tokens=4096, continuous_rows=128)
    assert llm_kwargs(tiny_fetched, {"kind": "none"}, decoding) == {
        "model": str(tiny_fetched),
        "max_num_seqs": 128,
        "max_num_batched_tokens": 4096,
        "gpu_memory_utilization": 0.9,  # the fit estimator's share (common.gpus)
        "enable_prefix_caching": True,
    }
    gptq = llm_kwargs(tiny_fetched, {"kind": "gptq", "bits": 4, "group_size": 128}, Decoding())
    # a GPTQ artifact carries its own quantization config; bitsandbytes never reaches vLLM
    assert "quantization" not in gptq and gptq["max_num_batched_tokens"] == 8192
    # the transformers engine's static batch size does not throttle a continuous batcher
    assert gptq["max_num_seqs"] == Decoding().continuous_rows == 256


def test_vllm_sampled_requests_carry_the_job_seed():
    """Sampled chains get the job's seed (vLLM then seeds each request's own generator, so a
    prompt's chains do not depend on its batch); greedy requests get none."""
    from biomedquant.inference.engines.vllm import sampling_kwargs

    sampled = Sampling(max_new_tokens=64, samples=5, temperature=0.7, seed=42, stop=("\n\n",))
    assert sampling_kwargs(sampled, [7]) == {
        "n": 5,
        "temperature": 0.7,
        "max_tokens": 64,
        "stop": ["\n\n"],
        "stop_token_ids": [7],
        "seed": 42,
    }
    greedy = sampling_kwargs(Sampling(max_new_tokens=16), [])
    assert (greedy["n"], greedy["temperature"], greedy["seed"]) == (1, 0.0, None)
    assert greedy["stop"] is None and greedy["stop_token_ids"] is None


def test_sampled_generations_record_an_engines_own_seeding():
    """An engine that seeds chains its own way says so in the key of every sampled generation
    (and the run record), so the cache never hands over chains seeded another way; greedy
    generations, and the transformers engine's, keep the keys they had."""
    from biomedquant.inference.engines import get_engine
    from biomedquant.inference.engines.base import decoding_identity

    sampled = Sampling(max_new_tokens=64, samples=5, temperature=0.7, seed=42)
    greedy = Sampling(max_new_tokens=64)
    transformers, vllm = get_engine("transformers"), get_engine("vllm")
    assert decoding_identity(sampled, transformers) == sampled.identity()
    assert decoding_identity(greedy, vllm) == greedy.identity()
    assert decoding_identity(sampled, vllm) == {
        **sampled.identity(),
        "seeding": "vLLM request seed = job seed",
    }


class _LLMCalled(Exception):
    pass


def test_the_job_hands_its_token_budget_to_vllm(tiny_fetched, demo_prepared, tmp_path, monkeypatch):
    """The job's decoding settings reach ``vllm.LLM`` (they once stopped at the engine's own
    defaults). vLLM cannot run here: the stand-in module below only records the keyword
    arguments ``vllm.LLM`` is called with and stops the job there; nothing of vLLM's behaviour
    is imitated."""
    import types

    from biomedquant.inference.job import run_inference

    seen: dict = {}

    def record(**kwargs):
        seen.update(kwargs)
        raise _LLMCalled

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=record))
    with pytest.raises(_LLMCalled):
        run_inference(
            model_dir=tiny_fetched,
            method={"kind": "none"},
            dataset="pubmedqa",
            data_path=demo_prepared["pubmedqa"],
            prompt_method="zero-shot",
            out_path=tmp_path / "p.jsonl",
            run_path=tmp_path / "p.run.json",
            decoding=Decoding(batch_size=4, batch_tokens=2048, continuous_rows=64),
            backend="vllm",
        )
    assert (seen["max_num_seqs"], seen["max_num_batched_tokens"]) == (64, 2048)
