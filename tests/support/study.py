"""The tiny study of the tests: 16-bit and GPTQ 4-bit on a tiny random model, every dataset,
run once per test session (for all workers) and shared by the workflow, report and notebook tests;
its config is also the base of the config-check cases."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from biomedquant.datasets.registry import DATASETS

from conftest import copy_workflow

TINY_DATASETS = list(DATASETS)
TINY_PROMPTS = ["zero-shot"]


def tiny_config(model_path: Path) -> dict:
    """The tiny model on every dataset's demo samples: 16-bit and GPTQ 4-bit, zero-shot, short
    answers and few resamples (the config checks' base)."""
    return {
        "seed": 1,
        "data": {"base_url": "demo"},
        "datasets": list(DATASETS),
        "models": {"tiny": {"source": "local", "path": str(model_path)}},
        "methods": {
            "none": {"kind": "none"},
            "gptq-w4g32": {
                "kind": "gptq",
                "bits": 4,
                "group_size": 32,
                "calibration": {"source": "generic", "n_samples": 8, "seq_len": 32},
            },
        },
        "prompts": ["zero-shot"],
        "inference": {"batch_size": 4, "max_new_tokens": {"ner": 8, "re": 4, "mlc": 4, "qa": 4}},
        "scoring": {"bootstrap_resamples": 20},
    }


def tiny_study_config(model_path: Path) -> dict:
    """:func:`tiny_config` with four items per dataset: every stage and figure has something
    to do, in about two minutes on two cores (tests/report/test_figures.py covers the layouts
    of larger studies)."""
    return {
        **tiny_config(model_path),
        "data": {"base_url": "demo", "limit": 4},
        "datasets": TINY_DATASETS,
        "prompts": TINY_PROMPTS,
        "recommendation": {"margin_points": 1.0},
    }


def tiny_study(tmp_path_factory: pytest.TempPathFactory, tiny_source: Path) -> Path:
    """A workflow folder with a finished tiny study, run once per test session and shared by
    the workflow, report and notebook tests, on whichever worker runs them: the first to ask
    builds it under a lock, the others wait for it. A test that changes it works on a copy
    (:func:`copy_study`); its config is the study's own (``config/config.yaml``: the tiny
    model's path is the building worker's)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # shared by workers
    wd, done = root / "tiny_study", root / "tiny_study" / ".study_done"
    with (root / "tiny_study.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            if wd.exists():
                shutil.rmtree(wd)
            wd.mkdir()
            copy_workflow(wd, tiny_study_config(tiny_source))
            # two cores: scoring and figures overlap the GPU-class jobs (those one at a time)
            proc = subprocess.run(
                [sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=1"],
                cwd=wd,
                capture_output=True,
                text=True,
            )
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            done.touch()
    return wd


def copy_study(study: Path, dest: Path) -> Path:
    """A copy of a finished study, Snakemake's records and the files' times kept: Snakemake
    plans nothing in it until something changes."""
    shutil.copytree(study, dest, symlinks=True)
    return dest
