"""Job resources from the fit estimator: what GPU jobs ask a scheduler for, and the SLURM
profile's plan of the study (a dry run: no cluster needed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from biomedquant.inference.decoding import Decoding
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.estimator import estimate
from biomedquant.planning.job_resources import (
    SAFETY,
    UNKNOWN,
    InferenceSplit,
    Runtime,
    Workload,
    gpu_constraint,
    infer_workload,
    inference_split,
    job_gpus,
    job_resources,
    perplexity_workload,
    run_seconds,
    time_box_minutes,
)
from biomedquant.planning.throughput import Throughput

from conftest import REPO, copy_workflow

PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
LLAMA8 = PAPER["models"]["llama31_8b"]
LLAMA70 = PAPER["models"]["llama31_70b"]
NONE = {"kind": "none"}
GPTQ4 = PAPER["methods"]["gptq-w4g128"]
WORK = infer_workload("pubmedqa", "zero-shot", decoding=Decoding(batch_size=16))


def test_gpu_memory_is_the_fit_estimate_for_the_batch_token_budget():
    for model in (LLAMA8, LLAMA70):
        for method in (NONE, GPTQ4, {"kind": "bnb-nf4"}):
            res = job_resources(model, method, "infer", workload=WORK)
            total = estimate(shape_for_model(model), method, tokens=WORK.batch_tokens)
            assert res["gpu_mem_mb"] == pytest.approx(total["total_gb"] * 1e9 / 2**20, abs=1)


def test_a_70b_job_asks_for_more_than_an_8b_one_and_4bit_for_less_than_16bit():
    big = job_resources(LLAMA70, NONE, "infer", workload=WORK)
    small = job_resources(LLAMA8, NONE, "infer", workload=WORK)
    quantized = job_resources(LLAMA70, GPTQ4, "infer", workload=WORK)
    for key in ("mem_mb", "gpu_mem_mb", "runtime"):
        assert big[key] > small[key], key
    assert quantized["gpu_mem_mb"] < big["gpu_mem_mb"] / 3
    assert quantized["mem_mb"] < big["mem_mb"]
    # 16-bit 70B weights alone are 141 GB: no single 80 GB GPU holds the job
    assert big["gpu_mem_mb"] * 2**20 > 141e9


def test_runtime_grows_with_the_work_and_the_attempt():
    short = job_resources(LLAMA8, NONE, "infer", workload=WORK)
    cot = infer_workload("pubmedqa", "sc-cot", decoding=Decoding(batch_size=16, sc_samples=5))
    long = job_resources(LLAMA8, NONE, "infer", workload=cot)
    assert long["runtime"] > 5 * short["runtime"]
    limited = infer_workload("chemprot", "five-shot", limit=8)
    # a job of minutes asks its estimate (load, work, 5 minutes of start-up) x 1.3, rounded
    # up to the minute (the former 10-minute floor asked twice what such a job needs)
    load, work = run_seconds(shape_for_model(LLAMA8), NONE, [limited])
    asked = job_resources(LLAMA8, NONE, "infer", workload=limited)["runtime"]
    assert asked == -(-1.3 * ((load + work) / 60 + 5) // 1) and asked < 10
    second = job_resources(LLAMA8, NONE, "infer", workload=WORK, attempt=2)
    assert second["runtime"] == 2 * short["runtime"]
    assert second["mem_mb"] > short["mem_mb"]
    assert second["gpu_mem_mb"] == short["gpu_mem_mb"]  # a GPU does not grow on retry


def test_workloads_follow_the_registry_and_the_config():
    assert WORK.items == 500 and WORK.new_tokens == 128 and WORK.samples == 1
    assert infer_workload("pubmedqa", "cot").new_tokens == 512  # the task's CoT default
    assert infer_workload("pubmedqa", "zero-shot", decoding=Decoding().capped(20)).new_tokens == 20
    sc = infer_workload("hoc", "sc-cot", limit=8, decoding=Decoding(sc_samples=5))
    assert (sc.items, sc.samples) == (8, 5)
    assert infer_workload("hoc", "five-shot").shots == 5
    # one prefill pass plus one per new token, per batch of rows
    assert Workload(items=33, new_tokens=4, batch_size=16).forward_passes == 3 * 5
    ppl = perplexity_workload(["pubmedqa", "medqa"], limit=100)
    assert (ppl.items, ppl.new_tokens) == (200, 0)


def test_quantization_fits_a_gpu_smaller_than_the_16bit_model():
    """GPTQ works block by block: its GPU working set is far below the 16-bit model, its
    host memory above it (the offloaded model and the quantized copy)."""
    res = job_resources(LLAMA70, GPTQ4, "quantize_model")
    sixteen_bit = estimate(shape_for_model(LLAMA70), NONE)["weights_gb"] * 1e9
    assert res["gpu_mem_mb"] * 2**20 < 40 * 2**30
    assert res["mem_mb"] * 2**20 > sixteen_bit
    assert res["runtime"] > job_resources(LLAMA8, GPTQ4, "quantize_model")["runtime"]


def test_models_of_unknown_shape_fall_back_to_params_or_generous_defaults():
    unknown = {"source": "hf", "id": "someone/unlisted-13b", "revision": "main"}
    sized = job_resources({**unknown, "params_b": 13}, NONE, "infer", workload=WORK)
    assert 26e9 < sized["gpu_mem_mb"] * 2**20 < 40e9
    blind = job_resources(unknown, NONE, "infer", workload=WORK)
    assert blind == {**UNKNOWN}
    assert job_resources(unknown, NONE, "infer", workload=WORK, attempt=3)["runtime"] == (
        3 * UNKNOWN["runtime"]
    )


def test_local_models_are_sized_from_their_own_config(tiny_source):
    res = job_resources({"source": "local", "path": str(tiny_source)}, NONE, "infer", workload=WORK)
    assert res["gpu_mem_mb"] < 2048  # a 2-layer toy: the fixed overhead dominates


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="no resource model"):
        job_resources(LLAMA8, NONE, "score")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs its workload"):
        job_resources(LLAMA8, NONE, "infer")
    with pytest.raises(ValueError, match="attempt"):
        job_resources(LLAMA8, NONE, "quantize_model", attempt=0)


def test_gpu_constraint_names_the_smallest_gpu_that_holds_the_job():
    tiers = "80:a100_80g, 24:l4,40:a100_40g"
    assert gpu_constraint(20_000, tiers) == "l4"
    assert gpu_constraint(30_000, tiers) == "a100_40g"
    assert gpu_constraint(40 * 1024, tiers) == "a100_40g"
    assert gpu_constraint(200_000, tiers) == "a100_80g"  # none holds it: the largest
    with pytest.raises(ValueError, match="GiB:feature"):
        gpu_constraint(1, "a100")


def _job_blocks(dry_run: str) -> list[dict[str, str]]:
    """Per job of a dry run: rule, wildcards and resources as printed by Snakemake."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        job = {"rule": head[1]}
        for key in ("wildcards", "resources"):
            m = re.search(rf"^\s+{key}: (.*)$", block, flags=re.M)
            if m:
                job.update(kv.split("=", 1) for kv in m[1].split(", ") if "=" in kv)
        jobs.append(job)
    return jobs


PARTITIONS = {
    "BIOMEDQUANT_SLURM_PARTITION": "cpu",
    "BIOMEDQUANT_SLURM_GPU_PARTITION": "gpu",
    "BIOMEDQUANT_SLURM_ACCOUNT": "lab",
}


def _slurm_dry_run(
    tmp_path, cfg: dict, *extra: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """``snakemake -n`` of ``cfg`` with the SLURM profile, its partition variables set (or
    the environment ``env``)."""
    wd = copy_workflow(tmp_path, yaml.safe_load((REPO / "config/config.yaml").read_text()))
    (wd / "config" / "study.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *extra, "--configfile", "config/study.yaml"]
        + ["--workflow-profile", "workflow/profiles/slurm"],
        cwd=wd,
        capture_output=True,
        text=True,
        env=env if env is not None else {**os.environ, **PARTITIONS},
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_an_unset_partition_variable_is_refused_when_snakemake_starts(tmp_path):
    """Not handed to sbatch as a partition named '$BIOMEDQUANT_SLURM_PARTITION'."""
    cfg = {**PAPER, "models": {"llama31_8b": LLAMA8}, "methods": {"none": NONE}}
    env = {k: v for k, v in os.environ.items() if k not in PARTITIONS}
    env["BIOMEDQUANT_SLURM_GPU_PARTITION"] = "gpu"  # set: not named
    proc = _slurm_dry_run(tmp_path, cfg, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "default-resources.slurm_partition is $BIOMEDQUANT_SLURM_PARTITION, but the environment"
        " variable BIOMEDQUANT_SLURM_PARTITION is not set: export" in out
    ), out[-3000:]
    assert "BIOMEDQUANT_SLURM_ACCOUNT is not set" in out  # every problem at once
    assert "BIOMEDQUANT_SLURM_GPU_PARTITION is not set" not in out
    assert "Building DAG of jobs" not in out  # refused before any planning


def test_unset_variables_names_each_resource_and_variable(monkeypatch):
    from biomedquant.study.config_checks import SchedulerSettingError, check_scheduler_settings

    monkeypatch.delenv("UNSET_FOR_TEST", raising=False)
    monkeypatch.setenv("SET_FOR_TEST", "x")
    rules = {"infer": {"slurm_account": '"${UNSET_FOR_TEST}"', "mem_mb": 4000}}
    with pytest.raises(SchedulerSettingError) as err:
        check_scheduler_settings(["mem_mb=4000 * attempt", "slurm_partition=$SET_FOR_TEST"], rules)
    assert str(err.value) == (
        'set-resources.infer.slurm_account is "${UNSET_FOR_TEST}", but the environment variable'
        " UNSET_FOR_TEST is not set: export UNSET_FOR_TEST=<value> (or UNSET_FOR_TEST= for"
        " none) before starting Snakemake (docs/guide/slurm.md), or write the"
        " value into the profile"
    )
    check_scheduler_settings(["slurm_partition=cpu"], {})  # nothing unset: no error
    check_scheduler_settings(None, None)


PAPER_PROMPTS = PAPER["prompts"]
QWEN72 = PAPER["models"]["qwen25_72b"]


def _group(dataset: str, limit: int | None = None) -> list[Workload]:
    decoding = Decoding.from_config(PAPER)
    return [infer_workload(dataset, p, limit=limit, decoding=decoding) for p in PAPER_PROMPTS]


def test_a_grouped_job_pays_one_load_for_all_its_prompting_methods():
    works = _group("pubmedqa")
    grouped = job_resources(LLAMA8, NONE, "infer", workload=works)["runtime"]
    alone = [job_resources(LLAMA8, NONE, "infer", workload=w)["runtime"] for w in works]
    # each job of its own pays the load and the start-up margin again
    assert grouped < sum(alone)
    assert grouped >= max(alone)


def test_only_jobs_over_the_wall_time_limit_are_time_boxed_and_only_very_long_ones_sharded():
    day = 24 * 60
    assert inference_split(LLAMA8, NONE, _group("pubmedqa"), day) == InferenceSplit(1, 1)
    assert inference_split(LLAMA8, NONE, _group("chemprot", limit=8), day) == InferenceSplit()
    works = _group("chemprot")  # 16,943 items, five prompting methods, sc-cot among them
    boxed = inference_split(QWEN72, NONE, works, day, max_attempts=1000)
    assert boxed.parts == 1 and boxed.attempts > 1
    # every attempt asks for the limit, never more (a retry too)
    for attempt in (1, 2, boxed.attempts):
        res = job_resources(QWEN72, NONE, "infer", workload=works, attempt=attempt, max_minutes=day)
        assert res["runtime"] == day
    # the attempts cover the work at the rate requests are modelled with (the safety factor
    # on the work, one load each), and one fewer would not
    load, work = run_seconds(shape_for_model(QWEN72), NONE, works)
    per_attempt = time_box_minutes(day) * 60 / SAFETY - load
    assert (boxed.attempts - 1) * per_attempt < work <= boxed.attempts * per_attempt
    # capped attempts cut the work into shards side by side, each within the cap
    capped = inference_split(QWEN72, NONE, works, day, max_attempts=3)
    assert capped.parts == -(-boxed.attempts // 3) and capped.attempts <= 3
    # one attempt each: the shards of a job that is never time-boxed, each fitting the limit
    sharded = inference_split(QWEN72, NONE, works, day, max_attempts=1)
    assert sharded.attempts == 1 and sharded.parts >= boxed.attempts
    fits = job_resources(QWEN72, NONE, "infer", workload=works, shards=sharded.parts)
    assert fits["runtime"] <= day
    # a shorter limit needs more attempts
    half_day = inference_split(QWEN72, NONE, works, 12 * 60, max_attempts=1000)
    assert half_day.attempts > boxed.attempts
    with pytest.raises(ValueError, match="leaves no time to generate.*max_job_hours"):
        inference_split(QWEN72, NONE, works, 12)
    with pytest.raises(ValueError, match="max_attempts"):
        inference_split(QWEN72, NONE, works, day, max_attempts=0)


def test_a_long_job_plans_time_boxed_attempts_and_its_shards(tmp_path):
    """The paper's largest kind of job (72B, ChemProt's 16,943 items, self-consistency)
    planned with the SLURM profile: the model x method job asks for the limit and stops 10
    minutes before it; with max_attempts 2, every shard but the last is an infer_shard job
    over the same slice of each dataset, the infer job runs the last one and joins them."""
    cfg = {
        **PAPER,
        "models": {"qwen25_72b": QWEN72},
        "methods": {"none": NONE},
        "datasets": ["chemprot", "pubmedqa"],
        "prompts": ["zero-shot", "sc-cot"],
        "scheduling": {"max_job_hours": 24, "max_attempts": 1000},
        # the transformers engine's static batches (paper.yaml runs vLLM, where this job
        # fits a day): the slowest way to run the paper's largest kind of job
        "inference": {**PAPER["inference"], "backend": "transformers"},
    }
    decoding = Decoding.from_config(cfg)
    works = [
        infer_workload(d, p, decoding=decoding) for d in cfg["datasets"] for p in cfg["prompts"]
    ]
    runtime = Runtime("transformers", Throughput("a100_80g"), gpus=4)  # 16-bit 72B: 4 GPUs
    boxed = inference_split(QWEN72, NONE, works, 24 * 60, runtime, max_attempts=1000)
    assert boxed.parts == 1 and boxed.attempts > 2
    proc = _slurm_dry_run(tmp_path, cfg, "-p")
    jobs = _job_blocks(proc.stdout)
    (job,) = [j for j in jobs if j["rule"] == "infer"]
    assert not [j for j in jobs if j["rule"] == "infer_shard"]
    assert (job["runtime"], job["time_box"], job["gpu"]) == ("1440", "1430", "4")
    (command,) = re.findall(r"biomedquant infer .*", proc.stdout)
    assert "--stop-after-minutes=1430" in command

    cfg["scheduling"]["max_attempts"] = 2
    split = inference_split(QWEN72, NONE, works, 24 * 60, runtime, max_attempts=2)
    n = split.parts
    assert n > 1 and split.attempts <= 2
    proc = _slurm_dry_run(tmp_path / "sharded", cfg, "-p")
    jobs = _job_blocks(proc.stdout)
    shards = [j for j in jobs if j["rule"] == "infer_shard"]
    (last,) = [j for j in jobs if j["rule"] == "infer"]
    assert sorted(j["shard"] for j in shards) == sorted(f"{k}-of-{n}" for k in range(1, n))
    for job in [*shards, last]:
        assert int(job["runtime"]) <= 24 * 60 and job["slurm_partition"] == "gpu"
    folder = "results/generation_shards/qwen25_72b/none"
    commands = re.findall(r"biomedquant infer .*", proc.stdout)
    (join,) = [c for c in commands if f'"shard": "{n}-of-{n}"' in c]
    for dataset in cfg["datasets"]:
        parts = ", ".join(f'"{folder}/{k}-of-{n}/{dataset}"' for k in range(1, n))
        assert f'"parts": [{parts}]' in join
        assert f'"out_dir": "results/generations/qwen25_72b/none/{dataset}"' in join
    for k in range(1, n):
        (cmd,) = [c for c in commands if f'"shard": "{k}-of-{n}"' in c]
        for dataset in cfg["datasets"]:
            assert f'"out_dir": "{folder}/{k}-of-{n}/{dataset}"' in cmd
            assert f'"partial_dir": "{folder}/{k}-of-{n}.partial/{dataset}"' in cmd


def test_slurm_profile_plans_a_study_with_the_estimators_requests(tmp_path):
    """A cut of the paper config planned with the SLURM profile: GPU jobs ask for the
    estimator's figures and a GPU, and the partitions come through. (Which jobs run locally
    shows only in a real run: tests/workflow/test_slurm.py.)"""
    cfg = {
        **PAPER,
        "models": {k: PAPER["models"][k] for k in ("llama31_8b", "llama31_70b")},
        "methods": {k: PAPER["methods"][k] for k in ("none", "gptq-w4g128")},
        "datasets": ["pubmedqa", "ddi"],
        "prompts": ["zero-shot", "sc-cot"],
        # under transformers, where the 70B jobs need time-boxing (under paper.yaml's vLLM
        # none of these does)
        "inference": {**PAPER["inference"], "backend": "transformers"},
    }
    proc = _slurm_dry_run(tmp_path, cfg)
    jobs = _job_blocks(proc.stdout)
    infers = [j for j in jobs if j["rule"] == "infer"]
    assert len(infers) == 2 * 2  # one per model x method, every dataset and prompt in it
    decoding = Decoding.from_config(cfg)
    works = [
        infer_workload(d, p, decoding=decoding) for d in cfg["datasets"] for p in cfg["prompts"]
    ]
    for job in infers:
        model, method = cfg["models"][job["model"]], cfg["methods"][job["method"]]
        gpus = job_gpus(model, method, "infer", gpu_gib=80, tokens=decoding.batch_tokens)
        runtime = Runtime("transformers", Throughput("a100_80g"), gpus)  # the config's backend
        split = inference_split(model, method, works, 24 * 60, runtime, max_attempts=7)
        res = job_resources(
            model,
            method,
            "infer",
            workload=works,
            shards=split.parts,
            runtime=runtime,
            max_minutes=24 * 60,
        )
        assert {k: int(job[k]) for k in res} == res, job
        assert int(job["runtime"]) <= 24 * 60
        assert (job["gpu"], job["slurm_partition"], job["cpus_per_gpu"]) == (str(gpus), "gpu", "2")
        # the 16-bit 70B does not fit one 80 GiB GPU: it asks for two
        assert gpus == (2 if (job["model"], job["method"]) == ("llama31_70b", "none") else 1)
        # the 8B jobs fit a day; the 70B ones with self-consistency on DDI's 5,761 items do not
        boxed = job["model"] == "llama31_70b"
        assert (split.attempts > 1) == boxed and job["time_box"] == ("1430" if boxed else "0")
    for job in (j for j in jobs if j["rule"] == "quantize_model"):
        res = job_resources(
            cfg["models"][job["model"]], cfg["methods"][job["method"]], "quantize_model"
        )
        assert {k: int(job[k]) for k in res} == res, job
    fetch = next(j for j in jobs if j["rule"] == "fetch_model")
    assert "gpu" not in fetch and fetch["slurm_partition"] == "cpu"


def test_the_paper_study_on_slurm_asks_for_gpus_by_memory_and_none_for_cpu_work(tmp_path):
    """The whole config/paper.yaml planned with the SLURM profile: no job over the wall-time
    limit, no 16-bit 70B/72B job on one GPU, no GPU for CPU-only work."""
    jobs = _job_blocks(_slurm_dry_run(tmp_path, PAPER).stdout)
    limit = 60 * PAPER.get("scheduling", {}).get("max_job_hours", 24)
    assert max(int(j["runtime"]) for j in jobs if "runtime" in j) <= limit
    big = {"llama31_70b", "llama33_70b", "openbiollm_70b", "qwen25_72b"}
    sixteen_bit = [
        j
        for j in jobs
        if j["rule"].startswith("infer") and j["model"] in big and j["method"] == "none"
    ]
    assert sixteen_bit and all(int(j["gpu"]) >= 2 for j in sixteen_bit)
    quantize = [j for j in jobs if j["rule"] == "quantize_model"]
    on_cpu = [j for j in quantize if PAPER["methods"][j["method"]]["kind"] in ("rtn", "gguf")]
    assert len(on_cpu) == 3 * len(PAPER["models"])  # rtn-w4g128, gguf-q8_0, gguf-q4_k_m
    # CPU-only quantization asks for no GPU and goes to the CPU partition; GPTQ and AWQ to
    # the GPU one
    assert all(j["gpu"] == "0" and j["gpu_mem_mb"] == "0" for j in on_cpu)
    assert all(j["slurm_partition"] == "cpu" for j in on_cpu)
    assert all(
        j["gpu"] == "1" and j["slurm_partition"] == "gpu" for j in quantize if j not in on_cpu
    )
    # host memory from the model's size: a 70B GPTQ job holds its 16-bit weights (141 GB)
    # and one block being packed, not a second, quantized copy
    gptq70 = [j for j in quantize if j["model"] == "llama31_70b" and j not in on_cpu]
    assert gptq70 and all(141e9 < int(j["mem_mb"]) * 2**20 < 150e9 for j in gptq70)
    _no_first_attempt_asks_more_than_its_estimate_allows(jobs)
    cpu_rules = {j["rule"] for j in jobs if j.get("gpu", "0") == "0"}
    assert {"fetch_model", "download_dataset", "evaluate"} <= cpu_rules
    # What the plan requests, every time-boxed attempt counted, is what `biomedquant plan
    # --cost` says the attempts request, and within twice the expected GPU-hours.
    from biomedquant.planning.cost import study_cost
    from biomedquant.study.loading import load_config

    cost = study_cost(load_config(REPO / "config" / "paper.yaml"))
    attempts = {(j.model, j.method): j.attempts for j in cost.jobs if j.rule == "infer"}
    assert max(attempts.values()) > 1  # the paper has time-boxed jobs
    requested = sum(
        int(j["gpu"])
        * int(j["runtime"])
        / 60
        * (attempts[j["model"], j["method"]] if j["rule"] in ("infer", "infer_shard") else 1)
        for j in jobs
        if j.get("gpu", "0") != "0"
    )
    assert requested == pytest.approx(cost.total(requested=True), rel=0.01)
    assert cost.total() < requested < 2 * cost.total()


def _no_first_attempt_asks_more_than_its_estimate_allows(jobs: list[dict]) -> None:
    """Every GPU-rule job of a dry run of config/paper.yaml asks at most 1.5 x its estimate
    (the runtime model's seconds and the start-up margin); a time-boxed attempt, which works
    until its time box, asks the limit."""
    from biomedquant.planning.cost import study_cost
    from biomedquant.planning.job_resources import STARTUP_MINUTES, quantize_seconds
    from biomedquant.study.loading import load_config

    config = load_config(REPO / "config" / "paper.yaml")
    cost = {(j.rule, j.model, j.method): j for j in study_cost(config).jobs}
    limit = 60 * config["scheduling"]["max_job_hours"]
    checked = 0
    for job in jobs:
        rule = "infer" if job["rule"].startswith("infer") else job["rule"]
        if rule not in ("infer", "quantize_model", "perplexity") or "noise" in job["rule"]:
            continue
        planned = cost[rule, job["model"], job["method"]]
        model, method = config["models"][job["model"]], config["methods"][job["method"]]
        if rule == "quantize_model":
            minutes = quantize_seconds(shape_for_model(model), method) / 60 + STARTUP_MINUTES
        elif planned.attempts > 1:
            minutes = time_box_minutes(limit) + STARTUP_MINUTES
        else:
            # expected GPU-hours of one shard, per GPU, and the start-up margin
            minutes = 60 * planned.hours / planned.gpus / planned.shards + STARTUP_MINUTES
        assert int(job["runtime"]) <= 1.5 * minutes + 1e-9, (job, minutes)
        checked += 1
    assert checked > 300


def test_one_gpu_key_sets_the_gpu_memory_and_a_disagreeing_gpu_gib_is_refused(tmp_path):
    from biomedquant.planning.throughput import gpu_memory_gib

    assert gpu_memory_gib({"gpu": "l4"}) == 24
    assert gpu_memory_gib({"gpu": "h100", "gpu_gib": 80}) == 80  # agrees: accepted
    assert gpu_memory_gib({}) == 80  # the default device, an A100 80GB
    assert gpu_memory_gib({"gpu": "cpu", "gpu_gib": 1.5}) == 1.5  # stand-in GPUs
    message = (
        "scheduling.gpu_gib is 80 GiB but scheduling.gpu is l4, a 24 GiB GPU: drop gpu_gib"
        " (scheduling.gpu sets it) or name the GPU the jobs run on"
    )
    with pytest.raises(ValueError) as err:
        gpu_memory_gib({"gpu": "l4", "gpu_gib": 80})
    assert str(err.value) == message
    # the plan refuses it in one line, the fit table and the cost alike
    cfg = {**PAPER, "models": {"llama31_8b": LLAMA8}, "methods": {"none": NONE}}
    cfg["scheduling"] = {"gpu": "l4", "gpu_gib": 80}
    path = tmp_path / "l4.yaml"
    path.write_text(yaml.safe_dump(cfg))
    for extra in ([], ["--cost"]):
        proc = subprocess.run(
            [sys.executable, "-m", "biomedquant.cli", "plan", "--config", str(path), *extra],
            capture_output=True,
            text=True,
        )
        errors = [line for line in proc.stderr.splitlines() if "warning" not in line]
        assert proc.returncode == 1 and errors == [f"biomedquant plan: error: {message}"]
    # an L4 study sizes a 70B 4-bit job for 24 GiB GPUs
    assert job_gpus(LLAMA70, GPTQ4, "infer", gpu_gib=gpu_memory_gib({"gpu": "l4"})) > 1


def test_the_cpu_quantize_time_counts_the_quality_check_s_own_token_budget():
    from biomedquant.planning import job_resources
    from biomedquant.quantization.quality import HELDOUT_TOKENS, heldout_tokens

    assert job_resources.QUALITY_CHECK_MIN_TOKENS == HELDOUT_TOKENS
    assert heldout_tokens(28_672) == 28_672 and heldout_tokens(512) == HELDOUT_TOKENS
