"""What produced an output: library versions, hardware, seeds.

Recorded next to every artifact so that a number in a table can be traced back to the exact
software and machine that made it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
import resource
import sys
from typing import Any

TRACKED_PACKAGES = (
    "biomedquant",
    "torch",
    "transformers",
    "accelerate",
    "optimum",
    "gptqmodel",
    "bitsandbytes",
    "gguf",
    "llama-cpp-python",
    "tokenizers",
    "safetensors",
    "numpy",
    "snakemake",
)


def versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu": None,
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_total_bytes"] = torch.cuda.get_device_properties(0).total_memory
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def peak_host_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
