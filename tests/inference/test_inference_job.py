"""The grouped inference job: one model load for every prompting method of a dataset, item
shards that resume and join into an unsharded run's files, and incremental reruns."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from biomedquant.common.files import read_json, read_jsonl, write_jsonl
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.engines.transformers import TransformersEngine
from biomedquant.inference.job import (
    DatasetJob,
    RunSpec,
    Shard,
    TimeBudgetReached,
    read_partial,
    run_inference,
    run_inference_datasets,
    run_inference_job,
)

from conftest import assert_outputs_vary, numbered_items

PROMPTS = ("zero-shot", "five-shot", "cot")
DECODING = Decoding(batch_size=2).capped(8)


def _pool(demo_prepared) -> Path:
    """PubMedQA's few-shot pool: the demo's train sample, prepared."""
    from biomedquant.datasets.download import download_split
    from biomedquant.datasets.prepare import fewshot_split, prepare_split

    out = demo_prepared["pubmedqa"].with_name("pubmedqa.pool.jsonl")
    if not out.exists():
        split = fewshot_split("pubmedqa", "demo")
        raw = out.with_suffix(".raw")
        download_split("pubmedqa", split, "demo", raw)
        prepare_split("pubmedqa", split, raw, out)
    return out


def _runs(folder: Path, prompts=PROMPTS, decoding=DECODING, parts=None) -> list[RunSpec]:
    return [
        RunSpec(
            p,
            folder / f"{p}.jsonl",
            folder / f"{p}.run.json",
            decoding,
            tuple(parts.get(p, ())) if parts else (),
        )
        for p in prompts
    ]


def _cached_job(model_dir, demo_prepared, tmp_path) -> dict:
    """A job's arguments (but its runs) on four items, with a generation cache."""
    return {
        "model_dir": model_dir,
        "method": {"kind": "none"},
        "dataset": "pubmedqa",
        "data_path": numbered_items(demo_prepared, tmp_path / "items.jsonl", 4),
        "pool_path": _pool(demo_prepared),
        "cache_dir": tmp_path / "cache",
    }


class CountingLoads:
    """The transformers engine's own ``load``, counted (the job's ``engine_loader``)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return TransformersEngine.load(*args, **kwargs)


def _strip(rows):
    return [{k: r[k] for k in ("id", "prompt_sha256", "output", "stop_reason")} for r in rows]


def test_one_model_load_serves_every_prompting_method(tiny_fetched, demo_prepared, tmp_path):
    data = numbered_items(demo_prepared, tmp_path / "items.jsonl", 6)
    pool = _pool(demo_prepared)
    loads = CountingLoads()
    records = run_inference_job(
        model_dir=tiny_fetched,
        method={"kind": "none"},
        dataset="pubmedqa",
        data_path=data,
        runs=_runs(tmp_path / "grouped"),
        pool_path=pool,
        engine_loader=loads,
    )
    assert loads.calls == 1
    assert [r["prompt_method"] for r in records] == list(PROMPTS)
    for rec in records:
        assert rec["model_load"]["loads_in_job"] == 1
        assert rec["model_load"]["shared_by"] == list(PROMPTS)
        assert rec["model_load"]["seconds"] == rec["load_seconds"] > 0
        assert rec["n_generated"] == 6
    # The same runs as jobs of their own (one load each) write the same files.
    for prompt in PROMPTS:
        alone = tmp_path / "alone" / f"{prompt}.jsonl"
        run_inference(
            model_dir=tiny_fetched,
            method={"kind": "none"},
            dataset="pubmedqa",
            data_path=data,
            prompt_method=prompt,
            out_path=alone,
            run_path=alone.with_suffix(".run.json"),
            pool_path=pool,
            decoding=DECODING,
        )
        grouped = tmp_path / "grouped" / f"{prompt}.jsonl"
        assert _strip(read_jsonl(grouped)) == _strip(read_jsonl(alone))
        assert_outputs_vary([r["output"] for r in read_jsonl(grouped)])


def test_nothing_left_to_generate_loads_no_model(tiny_fetched, demo_prepared, tmp_path):
    args = _cached_job(tiny_fetched, demo_prepared, tmp_path)
    run_inference_job(runs=_runs(tmp_path / "a"), **args)
    loads = CountingLoads()
    again = run_inference_job(runs=_runs(tmp_path / "b"), engine_loader=loads, **args)
    assert loads.calls == 0
    assert all(r["n_generated"] == 0 and r["model_load"]["loads_in_job"] == 0 for r in again)


def test_a_changed_template_regenerates_only_its_prompting_method(
    tiny_fetched, demo_prepared, tmp_path, monkeypatch
):
    import biomedquant.inference.prompting as prompting

    args = _cached_job(tiny_fetched, demo_prepared, tmp_path)
    first = run_inference_job(runs=_runs(tmp_path / "a"), **args)
    assert [r["n_generated"] for r in first] == [4, 4, 4]
    # A new chain-of-thought instruction changes the cot prompts, and only those.
    monkeypatch.setattr(prompting, "COT_INSTRUCTION", "Reason briefly, then 'Answer: ...'.")
    loads = CountingLoads()
    second = run_inference_job(runs=_runs(tmp_path / "b"), engine_loader=loads, **args)
    by_prompt = {r["prompt_method"]: r for r in second}
    assert by_prompt["zero-shot"]["n_generated"] == 0
    assert by_prompt["five-shot"]["n_generated"] == 0
    assert by_prompt["cot"]["n_generated"] == 4 and by_prompt["cot"]["n_from_cache"] == 0
    assert loads.calls == 1
    assert by_prompt["cot"]["model_load"]["loaded_for"] == ["cot"]


def test_shards_partition_the_items():
    for n in (1, 2, 3, 7):
        for count in range(1, n + 1):
            slices = [Shard(k, count).items(n) for k in range(count)]
            assert [i for s in slices for i in s] == list(range(n))
            assert max(len(s) for s in slices) - min(len(s) for s in slices) <= 1
    assert Shard.parse("2-of-3") == Shard(1, 3) and Shard(1, 3).label == "2-of-3"
    for bad in ("0-of-2", "3-of-2", "2of3", "1-of-0", "join-of-0"):
        with pytest.raises(ValueError, match="shard"):
            Shard.parse(bad)
    # the job that joins every shard of a dataset answers none of its items itself
    join = Shard.parse("join-of-3")
    assert join.joins and join.label == "join-of-3" and join.parts_joined == 3
    assert list(join.items(7)) == [] and not join.writes_part
    assert Shard(2, 3).parts_joined == 2 and Shard(0, 3).writes_part


def _infer_cmd(model_dir, data, pool, folder, shard, *extra):
    prompts = [arg for p in ("zero-shot", "five-shot") for arg in ("--prompt", p)]
    return [
        sys.executable, "-m", "biomedquant.cli", "infer",
        "--model-dir", str(model_dir), "--method", '{"kind": "none"}',
        "--dataset", "pubmedqa", "--data", str(data), "--pool", str(pool), *prompts,
        "--out-dir", str(folder), "--record-dir", str(folder), "--shard", shard,
        "--max-new-tokens", "12", "--batch-size", "2", "--cpu-threads", "1", *extra,
    ]  # fmt: skip


def test_a_killed_shard_resumes_and_the_joined_files_equal_an_unsharded_run(
    tiny_fetched, demo_prepared, tmp_path
):
    data = numbered_items(demo_prepared, tmp_path / "items.jsonl", 60)
    pool = _pool(demo_prepared)
    first = tmp_path / "shard1"
    # Shard 1 of 2 is killed mid-run (as at a queue's time limit), then rerun. As in the
    # workflow, its unfinished batches wait beside its part folder, which Snakemake deletes
    # when a job fails.
    waiting = ("--partial-dir", f"{first}.partial")
    proc = subprocess.Popen(_infer_cmd(tiny_fetched, data, pool, first, "1-of-2", *waiting))
    partial = tmp_path / "shard1.partial" / "zero-shot.jsonl.partial"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if partial.exists() and len(read_partial(partial)) >= 6:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the shard finished before it could be killed"
    assert not (first / "zero-shot.jsonl").exists()
    done_before_kill = len(read_partial(partial))
    shutil.rmtree(first, ignore_errors=True)  # what Snakemake does to a failed job's folder
    subprocess.run(_infer_cmd(tiny_fetched, data, pool, first, "1-of-2", *waiting), check=True)
    assert not partial.parent.exists()  # emptied and removed once the part is complete
    part = read_json(first / "zero-shot.run.json")
    assert part["n_items"] == 30 and part["n_resumed"] == done_before_kill
    assert part["n_generated"] == 30 - done_before_kill
    assert len(read_jsonl(first / "zero-shot.jsonl")) == 30  # a part: its slice only

    # The last shard generates its slice and joins shard 1's parts.
    joined = tmp_path / "joined"
    cmd = _infer_cmd(tiny_fetched, data, pool, joined, "2-of-2", "--parts", str(first))
    subprocess.run(cmd, check=True)
    whole = tmp_path / "whole"
    subprocess.run(_infer_cmd(tiny_fetched, data, pool, whole, "1-of-1"), check=True)
    for prompt in ("zero-shot", "five-shot"):
        got = read_jsonl(joined / f"{prompt}.jsonl")
        assert [r["id"] for r in got] == [f"q{i}" for i in range(60)]
        assert got == read_jsonl(whole / f"{prompt}.jsonl")
        assert_outputs_vary([r["output"] for r in got])  # an item in the wrong place shows
        rec = read_json(joined / f"{prompt}.run.json")
        assert rec["n_items"] == 60 and rec["n_from_shards"] == 30 and rec["n_generated"] == 30
        assert rec["model_load"]["shard"] == "2-of-2"
        assert [s["shard"] for s in rec["shards"]] == ["1-of-2"]


def _two_datasets(demo_prepared, folder: Path) -> list[DatasetJob]:
    """PubMedQA and MedQA (four items each), one prompting method, as one model x method job."""
    jobs = []
    for name in ("pubmedqa", "medqa"):
        data = folder.parent / f"{name}.4.jsonl"
        write_jsonl(data, read_jsonl(demo_prepared[name])[:4])
        runs = _runs(folder / name, ("zero-shot",))
        jobs.append(DatasetJob(name, data, tuple(runs)))
    return jobs


def test_a_time_boxed_job_stops_saving_its_batches_and_resumes_until_done(
    tiny_fetched, demo_prepared, tmp_path
):
    """A job over two datasets whose time box has passed saves one batch per attempt and
    stops (the cache off, as for the noise floor); after each stop its files are deleted, as
    Snakemake deletes a failed job's outputs. Attempts go on, one model load each, until one
    finishes, and its files equal those of a job that was never stopped."""
    limited = [
        DatasetJob(j.dataset, j.data_path, j.runs)
        for j in _two_datasets(demo_prepared, tmp_path / "boxed")
    ]
    common = {"model_dir": tiny_fetched, "method": {"kind": "none"}}
    outputs = [p for j in limited for r in j.runs for p in (r.out_path, r.run_path)]
    attempts, loads = 0, []
    while True:
        attempts += 1
        counting = CountingLoads()
        try:
            records = run_inference_datasets(
                **common, datasets=limited, engine_loader=counting, stop_at=time.monotonic() - 1
            )
        except TimeBudgetReached as stop:
            assert "every finished batch is saved" in str(stop)
            loads.append(counting.calls)
            for path in outputs:
                path.unlink(missing_ok=True)
            assert attempts < 20, "no progress between attempts"
            continue
        loads.append(counting.calls)
        break
    # 2 datasets x 4 items in batches of 2: one batch per attempt, then one that finds them all
    assert attempts == 5 and loads == [1, 1, 1, 1, 0]
    assert records["medqa"][0]["n_resumed"] == 4 and records["medqa"][0]["n_generated"] == 0
    assert not list((tmp_path / "boxed").rglob("*.partial"))  # removed once the job succeeded
    whole = run_inference_datasets(
        **common, datasets=_two_datasets(demo_prepared, tmp_path / "whole")
    )
    for name in ("pubmedqa", "medqa"):
        assert whole[name][0]["n_generated"] == 4
        boxed = read_jsonl(tmp_path / "boxed" / name / "zero-shot.jsonl")
        assert boxed == read_jsonl(tmp_path / "whole" / name / "zero-shot.jsonl")
        assert_outputs_vary([r["output"] for r in boxed])


def test_cli_exits_75_at_its_time_box(tiny_fetched, demo_prepared, tmp_path, capsys):
    from biomedquant.cli import main

    entries = [
        {"dataset": "pubmedqa", "data": str(demo_prepared["pubmedqa"]),
         "out_dir": str(tmp_path / "out"), "record_dir": str(tmp_path / "out")},
    ]  # fmt: skip
    with pytest.raises(SystemExit) as stopped:
        main([
            "infer", "--model-dir", str(tiny_fetched), "--method", '{"kind": "none"}',
            "--prompt", "zero-shot", "--datasets", json.dumps(entries), "--batch-size", "2",
            "--max-new-tokens", "4", "--cpu-threads", "1", "--stop-after-minutes", "0.0001",
        ])  # fmt: skip
    assert stopped.value.code == 75
    err = capsys.readouterr().err
    assert "time box of 0.0001 min reached" in err and "next attempt resumes" in err
    assert len(read_partial(tmp_path / "out" / "zero-shot.jsonl.partial")) == 2
    assert not (tmp_path / "out" / "zero-shot.jsonl").exists()


def test_the_last_shard_refuses_parts_of_another_model(tiny_fetched, demo_prepared, tmp_path):
    data = numbered_items(demo_prepared, tmp_path / "items.jsonl", 4)
    part = tmp_path / "part" / "zero-shot.jsonl"
    write_jsonl(part, [{"key": "x", "id": "q0", "generation": {"outputs": ["yes"]}}])
    with pytest.raises(ValueError, match="lack 2 of the other shards' 2 items"):
        run_inference_job(
            model_dir=tiny_fetched,
            method={"kind": "none"},
            dataset="pubmedqa",
            data_path=data,
            runs=_runs(tmp_path / "out", ("zero-shot",), parts={"zero-shot": [part]}),
            shard=Shard(1, 2),
        )


def test_cli_refuses_a_part_count_that_does_not_match_the_shard(tiny_fetched, tmp_path, capsys):
    from biomedquant.cli import main

    base = [
        "infer", "--model-dir", str(tiny_fetched), "--method", '{"kind": "none"}',
        "--dataset", "pubmedqa", "--data", "x.jsonl", "--prompt", "zero-shot",
    ]  # fmt: skip
    folders = ["--out-dir", str(tmp_path), "--record-dir", str(tmp_path)]
    for extra, message in [
        ([*folders, "--shard", "3-of-3", "--parts", "a"], "shard 3-of-3 takes 2 part folder"),
        ([*folders, "--shard", "1-of-3", "--parts", "a"], "shard 1-of-3 takes 0 part folder"),
        ([*folders, "--shard", "4-of-3"], "shard '4-of-3': no such shard"),
        ([*folders, "--shard", "join-of-2", "--parts", "a"], "shard join-of-2 takes 2 part"),
        (["--out", "a.jsonl"], "give one --prompt with both, or --out-dir and --record-dir"),
    ]:
        assert main([*base, *extra]) != 0
        assert message in capsys.readouterr().err


class FakeVllm:
    """vLLM cannot run without a CUDA GPU: this stands in for ``vllm.LLM`` and
    ``vllm.SamplingParams`` to check what the engine hands it (one request list across
    prompting methods), not vLLM's behaviour."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[dict]]] = []

    def module(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(SamplingParams=lambda **kw: kw, LLM=None)

    def generate(self, prompts, params, use_tqdm=False):
        # the engine hands token ids (one BOS at most); the stand-in reads them back as text
        prompts = ["".join(map(chr, p["prompt_token_ids"])) for p in prompts]
        self.calls.append((list(prompts), list(params)))
        outs = []
        for prompt, p in zip(prompts, params, strict=True):
            chains = [
                types.SimpleNamespace(
                    text=f"{prompt}|{k}", finish_reason="length", stop_reason=None, token_ids=[1]
                )
                for k in range(p["n"])
            ]
            outs.append(types.SimpleNamespace(outputs=chains, prompt_token_ids=[1, 2]))
        return outs


def test_vllm_gets_every_prompting_method_in_one_request_list(monkeypatch):
    from biomedquant.inference.decoding import Sampling
    from biomedquant.inference.engines.vllm import VllmEngine

    fake = FakeVllm()
    monkeypatch.setitem(sys.modules, "vllm", fake.module())
    tokenizer = types.SimpleNamespace(
        convert_tokens_to_ids=lambda t: 7, chat_template=None, special_tokens_map={}
    )
    # a character tokenizer with no BOS (the engine hands vLLM token ids)
    monkeypatch.setattr(
        "biomedquant.inference.engines.vllm.prompt_token_ids",
        lambda tok, prompt: [ord(c) for c in prompt],
    )
    monkeypatch.setattr("biomedquant.inference.prompting.end_of_turn_tokens", lambda tok: [])
    engine = VllmEngine(fake, tokenizer)
    greedy, sampled = Sampling(max_new_tokens=5), Sampling(20, samples=3, temperature=0.7, seed=1)
    got: list[dict] = [{}, {}]
    stats: list[dict] = [{}, {}]
    results = engine.generate_runs(
        [(["a", "b", "c"], greedy), (["x", "y"], sampled)],
        on_batch=[got[0].update, got[1].update],
        stats=stats,
    )
    assert len(fake.calls) == 1  # both runs in one request list: vLLM batches across them
    prompts, params = fake.calls[0]
    assert sorted(prompts) == ["a", "b", "c", "x", "y"]
    assert {p["n"] for q, p in zip(prompts, params, strict=True) if q in "xy"} == {3}
    assert [r["outputs"] for r in results[0]] == [["a|0"], ["b|0"], ["c|0"]]
    assert [len(r["outputs"]) for r in results[1]] == [3, 3]
    assert sorted(got[0]) == [0, 1, 2] and sorted(got[1]) == [0, 1]
    # What the runtime model's refit counts: each run its prompts' tokens, and its share (by
    # tokens decoded) of the one chunk's decode steps, so that the job's records add up.
    assert stats[0] == {
        "batches": 1,
        "prefill_tokens": 6,  # 3 prompts of 2 tokens
        "decode_row_steps": 3,
        "decode_context_token_steps": 3 * (2 + 0.5),
        "decode_steps": pytest.approx(1 / 3),
    }
    assert stats[1]["decode_row_steps"] == 6 and stats[1]["decode_steps"] == pytest.approx(2 / 3)


def test_the_cache_is_closed_when_a_job_fails(tiny_fetched, demo_prepared, tmp_path, monkeypatch):
    """A load or batch that fails still closes the job's cache (and what it committed stays)."""
    from biomedquant.inference import cache as cache_module

    closed = []
    real_close = cache_module.GenerationCache.close

    def close(self):
        closed.append(self.path)
        real_close(self)

    monkeypatch.setattr(cache_module.GenerationCache, "close", close)

    def failing_load(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (injected)")

    args = _cached_job(tiny_fetched, demo_prepared, tmp_path)
    with pytest.raises(RuntimeError, match="injected"):
        run_inference_job(runs=_runs(tmp_path / "a"), engine_loader=failing_load, **args)
    assert len(closed) == 1 and closed[0].parent == tmp_path / "cache"
    run_inference_job(runs=_runs(tmp_path / "b"), **args)  # the cache still opens and serves
    assert len(closed) == 2
