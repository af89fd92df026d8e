"""The benchmark scripts the documentation cites still run (on small sizes: they assert nothing)."""

from __future__ import annotations

import subprocess
import sys

from biomedquant.datasets.registry import DATASETS

from conftest import REPO


def test_the_scoring_benchmark_runs_on_every_dataset():
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_scoring.py"),
            "--synthetic",
            "--items",
            "120",
            "--resamples",
            "20",
            "--old-resamples",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split()[0] for line in out.stdout.splitlines()[1:-1]]
    assert rows == [
        "bc5cdr_chem",
        "ncbi_disease",
        "chemprot",
        "ddi",
        "hoc",
        "litcovid",
        "medqa",
        "pubmedqa",
    ]


def test_the_verdict_simulation_runs_every_scenario():
    # two small datasets (one F1 task, one accuracy task), one study, few resamples: seconds
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_verdicts.py"), "--sims", "1",
         "--resamples", "100", "--flip-rate", "0.05", "--datasets", "ncbi_disease,pubmedqa"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for line in ("no true loss", "loss = margin (RTN)", "loss = 2 x margin"):
        assert sum(row.startswith(line) for row in text.splitlines()) == 2, line
    assert "detectable loss (points, median over lossless tests): ner" in text
    for task in ("ner", "qa"):
        assert f"on {task}: recommended" in text
    assert "flip 0.05, recommend(): lossless" in text


def test_the_metric_conventions_benchmark_prints_every_dataset():
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_metric_conventions.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()[1:-1]
    # a line per dataset, and under each multi-label one its two possible readings
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == list(DATASETS.names())
    readings = [line for line in lines if line.startswith(" ")]
    assert len(readings) == 2 and all("label-set strings" in line for line in readings)
