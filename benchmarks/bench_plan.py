#!/usr/bin/env python
"""Benchmark: how long Snakemake takes to plan each study (a dry run), and how many jobs.

Every run of the workflow, on a laptop or on a cluster's login node, first builds the whole
job graph; its cost grows with the number of jobs. For the demo, the methods config, the paper
config and a synthetic config twice the paper's size (every model listed twice, 24 models),
this prints the median wall time (and the median CPU time: on a busy machine, wall time also
counts waiting for a core) of ``snakemake -n`` over ``--repeats`` runs (each in a fresh
copy of the workflow, so nothing already computed shortens the plan) and the planned job
counts per rule, GPU rules first. The first row, ``startup``, is a one-rule workflow: what
every run of Snakemake pays before planning anything (imports, and the executor plugins'
probes). Wall time far above CPU time in that row means a probe waits: with a SLURM client
configured for a controller that is not running (as ``scripts/slurm/local_cluster.sh`` left it
before its ``stop`` removed its configuration), the SLURM plugin waits about 9 s for
``scontrol`` in every run, local ones included. A benchmark, not a test: it asserts nothing.

    python benchmarks/bench_plan.py [--repeats 3]
        [--configs startup demo methods paper_study paper paper_x2]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
GPU_RULES = (
    "quantize_model",
    "infer",
    "infer_shard",
    "infer_noise_floor",
    "infer_noise_floor_shard",
    "perplexity",
)


# The methods of the original study (Zhan et al.): 16-bit, GPTQ 8/4/3-bit, bitsandbytes.
STUDY_METHODS = ("none", "gptq-w8g128", "gptq-w4g128", "gptq-w3g128", "bnb-int8", "bnb-nf4")


def load_config(name: str) -> dict[str, Any]:
    """A shipped config by short name. ``paper_study`` is the paper config with the original
    study's methods only; ``paper_x2`` is the paper config with every model twice."""
    files = {"demo": "config.yaml", "methods": "methods.yaml", "paper": "paper.yaml"}
    if name == "paper_study":
        cfg = load_config("paper")
        cfg["methods"] = {m: s for m, s in cfg["methods"].items() if m in STUDY_METHODS}
        return cfg
    if name == "paper_x2":
        cfg = load_config("paper")
        cfg["models"] = {
            **cfg["models"],
            **{f"{slug}_copy": spec for slug, spec in cfg["models"].items()},
        }
        return cfg
    return yaml.safe_load((REPO / "config" / files[name]).read_text())


def job_counts(stdout: str) -> dict[str, int]:
    """Job counts from Snakemake's 'Job stats' table of a dry run."""
    table = stdout.split("Job stats:")[1].split("Reasons:")[0] if "Job stats:" in stdout else ""
    counts = {}
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


STARTUP_SNAKEFILE = 'rule all:\n    output:\n        "x"\n    shell:\n        "touch {output}"\n'


def dry_run(cfg: dict[str, Any] | None) -> tuple[float, float, dict[str, int]]:
    """Wall and CPU seconds of one ``snakemake -n`` of ``cfg`` in a fresh copy of the
    workflow (None: of a one-rule workflow), and its job counts."""
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        if cfg is None:
            (wd / "Snakefile").write_text(STARTUP_SNAKEFILE)
            cmd = [sys.executable, "-m", "snakemake", "-n"]
        else:
            for name in ("Snakefile", "workflow", "envs", "config"):
                src = REPO / name
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, wd / name)
            (wd / "config" / "bench.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            cmd = [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/bench.yaml"]
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run(
            [*cmd, "--cores", "8"], cwd=wd, capture_output=True, text=True, check=False
        )
        seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, cpu, job_counts(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--configs",
        nargs="+",
        default=["startup", "demo", "methods", "paper_study", "paper", "paper_x2"],
    )
    args = p.parse_args(argv)
    print(
        f"{'config':<12}{'wall s':>8}{'CPU s':>8}{'wall runs (s)':>20}{'jobs':>7}{'GPU jobs':>10}"
        "  per rule"
    )
    for name in args.configs:
        cfg = None if name == "startup" else load_config(name)
        runs, cpus, counts = [], [], {}
        for _ in range(args.repeats):
            seconds, cpu, counts = dry_run(cfg)
            runs.append(seconds)
            cpus.append(cpu)
        total = counts.get("total", 0)
        gpu = sum(counts.get(r, 0) for r in GPU_RULES)
        rules = sorted(
            ((r, n) for r, n in counts.items() if r != "total"),
            key=lambda rn: (rn[0] not in GPU_RULES, -rn[1]),
        )
        listed = ", ".join(f"{r} {n}" for r, n in rules if n > 1 or r in GPU_RULES)
        shown = " ".join(f"{s:.1f}" for s in runs)
        print(
            f"{name:<12}{statistics.median(runs):>8.1f}{statistics.median(cpus):>8.1f}"
            f"{shown:>20}{total:>7}{gpu:>10}  {listed}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
