"""The SLURM profile against a real Slurm: a single-node cluster started on this machine.

Runs a small demo study through ``snakemake --workflow-profile workflow/profiles/slurm`` and
checks what a user's first run on their cluster depends on: every cluster job went through
sbatch and ended COMPLETED in accounting, GPU jobs were given a GPU (the cluster's GPUs are
fake devices: the work runs on the CPU), the estimator's memory and time requests reached
Slurm, the results equal a local run's, and a failing job is reported and retried with more
time. Needs root on Debian (scripts/slurm/local_cluster.sh installs and starts the daemons);
skipped elsewhere. About 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from biomedquant.inference.decoding import Decoding
from biomedquant.planning.job_resources import Runtime, infer_workload, job_gpus, job_resources
from biomedquant.planning.throughput import Throughput

from conftest import REPO, copy_workflow, snakemake

SCRIPT = REPO / "scripts" / "slurm" / "local_cluster.sh"
PARTITION = "main"  # what local_cluster.sh creates
ACCOUNT = "biomedquant"
# Hard bounds: the plugin ignores SIGTERM, so runs are interrupted with SIGINT (it then
# cancels its jobs), and killed 30 s later if that did not end them.
RUN_LIMIT_S = 420
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+)")


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux: starts a local Slurm cluster"
    if os.geteuid() != 0:
        return "needs root: installs Slurm and starts its daemons (munge, mariadb, slurm*)"
    if not Path("/etc/debian_version").exists():
        return "needs Debian: installs Slurm 22.05 from Debian packages"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs apt-get to install Slurm"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "needs snakemake-executor-plugin-slurm (pip install -e '.[slurm]')"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and "local_cluster.sh" not in conf.read_text(errors="replace"):
        return "this machine has its own Slurm configuration; not starting a test cluster on it"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]


# One GPU's memory as the scheduling settings see it: small enough that the demo model's
# inference and perplexity jobs (about 1.5 GB each) ask for two of the cluster's fake GPUs,
# so the multi-GPU request goes through a real Slurm.
GPU_GIB = 1.5


def small_demo_config() -> dict:
    """The demo config cut to minutes: 2 datasets x 4 items, 16-bit only, zero-shot, on
    GPUs of :data:`GPU_GIB`."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    # gpu_gib sets the GPU memory alone only with gpu: cpu (one GPU key: with a real GPU named,
    # its datasheet's memory), and the CPU's rates are what the cluster's fake GPUs run at
    cfg["scheduling"] = {"gpu": "cpu", "gpu_gib": GPU_GIB}
    cfg["datasets"] = ["chemprot", "medqa"]
    cfg["data"]["limit"] = 4
    cfg["methods"] = {"none": {"kind": "none"}}
    cfg["prompts"] = ["zero-shot"]
    cfg["scoring"]["bootstrap_resamples"] = 100
    return cfg


def slurm_env() -> dict[str, str]:
    """The variables the SLURM profile reads for partition and account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(
        BIOMEDQUANT_SLURM_PARTITION=PARTITION,
        BIOMEDQUANT_SLURM_GPU_PARTITION=PARTITION,
        BIOMEDQUANT_SLURM_ACCOUNT=ACCOUNT,
    )
    return env


def slurm_command(*args: str) -> list[str]:
    """snakemake with the repository's SLURM profile as a user runs it, bounded in time."""
    return [
        "timeout",
        "-s",
        "INT",
        "-k",
        "30",
        str(RUN_LIMIT_S),
        sys.executable,
        "-m",
        "snakemake",
        "--workflow-profile",
        str(REPO / "workflow" / "profiles" / "slurm"),
        "--executor",
        "slurm",
        "--slurm-init-seconds-before-status-checks",
        "1",
        *args,
    ]


def run_on_slurm(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        slurm_command(*args), cwd=workdir, env=slurm_env(), capture_output=True, text=True
    )


def sacct(job_ids: list[str]) -> list[dict[str, str]]:
    """Accounting records of the jobs themselves (no steps), as dicts."""
    fields = "JobID,State,ExitCode,AllocTRES,ReqMem,Timelimit,Comment"
    proc = subprocess.run(
        ["sacct", "-X", "-P", "-j", ",".join(job_ids), "-o", fields],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(csv.DictReader(io.StringIO(proc.stdout), delimiter="|"))


def accounted(job_ids: list[str]) -> list[dict[str, str]]:
    """sacct's records once slurmdbd holds a final state for each job (it lags slurmctld)."""
    rows: list[dict[str, str]] = []
    for _ in range(50):
        rows = sacct(job_ids)
        if len(rows) == len(job_ids) and not any(
            r["State"] in ("PENDING", "RUNNING", "COMPLETING") for r in rows
        ):
            break
        time.sleep(0.2)
    return rows


def rule_of(row: dict[str, str]) -> str:
    """The rule a job ran: the plugin writes 'rule_<name>[_wildcards_...]' as its comment."""
    return row["Comment"].removeprefix("rule_").split("_wildcards_")[0]


def timelimit_minutes(text: str) -> int:
    days, _, hms = text.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (s > 0)


def job_stats(log: str) -> dict[str, int]:
    """Jobs per rule from the 'Job stats' table Snakemake prints before running."""
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def output_of(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    """A running single-node cluster; stopped afterwards unless it was running before."""
    was_running = (
        subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0
    )
    start = subprocess.run(
        ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=600
    )
    try:
        assert start.returncode == 0, f"cluster did not start:\n{start.stdout}{start.stderr}"
        yield
    finally:
        if not was_running:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120)


FLAKY = """\
# Fails on its first attempt: the profile's retries must resubmit it with more time.
rule flaky:
    output:
        "flaky.txt",
    resources:
        attempt_number=lambda wildcards, attempt: attempt,
    shell:
        "test {resources.attempt_number} -ge 2 && echo ok > {output}"
"""


@pytest.fixture(scope="module")
def flaky_run(slurm_cluster, tmp_path_factory) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A workflow whose one job fails once, run through the SLURM profile in the background
    (it mostly waits on the scheduler, so it overlaps with the study run)."""
    wd = tmp_path_factory.mktemp("flaky")
    (wd / "Snakefile").write_text(FLAKY)
    # Output to a file: nobody reads a pipe until the test runs, and a full pipe would block.
    with (wd / "run.log").open("w") as out:
        proc = subprocess.Popen(
            slurm_command(), cwd=wd, env=slurm_env(), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield wd, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_study_on_slurm_matches_a_local_run(slurm_cluster, flaky_run, tmp_path):
    cfg = small_demo_config()
    (tmp_path / "slurm").mkdir()
    (tmp_path / "local").mkdir()
    wd = copy_workflow(tmp_path / "slurm", cfg)
    local = copy_workflow(tmp_path / "local", cfg)
    # The model is fetched once, locally, for both runs: a download and a conversion, not
    # what this test is about (the flaky workflow has a CPU job on the cluster).
    snakemake(local, "resources/models/smollm2_135m/none", gpus=2)
    shutil.copytree(local / "resources" / "models", wd / "resources" / "models")

    # The study's results (the plan, perplexity and report targets add nothing to test here),
    # on the cluster and, at the same time, locally as the reference.
    target = "results/tables/scores.csv"
    local_cmd = [sys.executable, "-m", "snakemake", target, "--cores", "1"]
    local_cmd += ["--resources", "gpu=2"]
    with (tmp_path / "local.log").open("w") as out:
        reference = subprocess.Popen(local_cmd, cwd=local, stdout=out, stderr=subprocess.STDOUT)
    proc = run_on_slurm(wd, target)
    reference.wait(timeout=RUN_LIMIT_S)
    local_log = (tmp_path / "local.log").read_text()
    log = output_of(proc)
    assert proc.returncode == 0, log[-6000:]
    assert reference.returncode == 0, local_log[-6000:]

    # Every job Snakemake did not run itself (as a local rule) was submitted to Slurm, and
    # ended COMPLETED.
    planned = job_stats(log)
    local_jobs = re.findall(r"^localrule (\w+):$", log, flags=re.M)
    job_ids = SUBMITTED.findall(log)
    assert job_ids and len(job_ids) == sum(planned.values()) - len(local_jobs), log[-4000:]
    rows = accounted(job_ids)
    assert sorted(r["JobID"] for r in rows) == sorted(job_ids)
    assert all(r["State"] == "COMPLETED" and r["ExitCode"] == "0:0" for r in rows), rows
    by_rule: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_rule.setdefault(rule_of(row), []).append(row)
    assert set(by_rule) == set(planned) - set(local_jobs)

    # GPU rules got the GPUs their memory estimate asks for (two of 1.5 GiB), the others none;
    # small CPU rules never reached the scheduler.
    assert len(by_rule["infer"]) == 1  # one model x method: every dataset on one load
    model = cfg["models"]["smollm2_135m"]
    tokens = Decoding.from_config(cfg).batch_tokens
    gpus = job_gpus(model, cfg["methods"]["none"], "infer", gpu_gib=GPU_GIB, tokens=tokens)
    assert gpus == 2
    for rule, jobs in by_rule.items():
        gpu_rule = rule in ("infer", "quantize_model", "perplexity")
        for row in jobs:
            assert (f"gres/gpu={gpus}" in row["AllocTRES"]) == gpu_rule, (rule, row)
    assert not {"evaluate_baseline", "aggregate_scores", "download_dataset"} & set(by_rule)
    assert "localrule evaluate_baseline:" in log

    # The estimator's host memory and runtime are what Slurm was asked for.
    works = [
        infer_workload(d, p, limit=cfg["data"]["limit"], decoding=Decoding.from_config(cfg))
        for d in cfg["datasets"]
        for p in cfg["prompts"]
    ]
    res = job_resources(
        model,
        cfg["methods"]["none"],
        "infer",
        workload=works,
        runtime=Runtime(throughput=Throughput.from_config(cfg), gpus=gpus),
    )
    expected = {(f"{res['mem_mb']}M", res["runtime"])}
    asked = {(r["ReqMem"], timelimit_minutes(r["Timelimit"])) for r in by_rule["infer"]}
    assert asked == expected

    # The local run gave the same predictions and scores.
    predictions = sorted(wd.glob("results/predictions/**/*.jsonl"))
    assert len(predictions) == len(cfg["datasets"])
    for path in predictions:
        twin = local / path.relative_to(wd)
        assert path.read_bytes() == twin.read_bytes(), path
    scores = "results/tables/scores.csv"
    assert (wd / scores).read_text() == (local / scores).read_text()
    assert "localrule infer:" in local_log


def test_failing_job_is_reported_and_retried_with_more_time(flaky_run):
    wd, proc = flaky_run
    proc.wait(timeout=RUN_LIMIT_S + 60)
    log = (wd / "run.log").read_text()
    assert proc.returncode == 0, log[-6000:]
    assert (wd / "flaky.txt").read_text() == "ok\n"
    job_ids = SUBMITTED.findall(log)
    assert len(job_ids) == 2, log[-4000:]
    assert f"SLURM-job '{job_ids[0]}' failed" in log
    assert "Trying to restart job" in log
    first, second = sorted(accounted(job_ids), key=lambda r: int(r["JobID"]))
    assert (first["State"], second["State"]) == ("FAILED", "COMPLETED")
    assert rule_of(first) == rule_of(second) == "flaky"
    assert "gres/gpu" not in first["AllocTRES"] + second["AllocTRES"]  # a CPU job
    # The profile's default runtime and memory grow with the attempt.
    assert timelimit_minutes(second["Timelimit"]) == 2 * timelimit_minutes(first["Timelimit"])
    assert int(second["ReqMem"].rstrip("M")) == 2 * int(first["ReqMem"].rstrip("M"))
