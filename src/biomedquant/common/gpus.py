"""GPUs, declared once, and the one rule of what fits on them: the fit table's columns, the
recommendation's smallest GPU and deployment answer, a job's GPU request and the dashed lines
of every figure use these.

GPU sizes are marketed in GiB ("40 GB" A100 = 40 GiB = 42.9 GB) while the tables speak in GB
(10^9 bytes), so capacities are converted before comparing.

The fit rule: a model x method estimated (or measured) at ``total_gb`` runs on ``n`` GPUs of
``gib`` each when ``total + (n - 1) x 1 GiB <= n x 0.9 x gib``. The 0.9 is the share of each GPU
an engine fills: vLLM's default ``gpu_memory_utilization``, and the share of each GPU the
transformers engine hands accelerate's device map (headroom for the CUDA context and allocator
slack); each further GPU holds its own CUDA context and communication buffers. One rule, so a
table that says "fits" and the job that then asks for one GPU agree.

Torch- and matplotlib-free: the fit estimator's table code imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3

# 24 GB (L4, RTX 4090), 40 GB (A100 40GB), 48 GB (RTX A6000, L40S), 80 GB (A100 80GB, H100).
GPU_SIZES_GIB = (24, 40, 48, 80)
# GPUs per job: powers of two, as tensor parallelism needs a divisor of the attention heads
# (every study model's head count is a multiple of 8).
GPU_COUNTS = (1, 2, 4, 8)
# Of each GPU, the share weights, KV cache and activations may take (see the module docstring).
GPU_MEMORY_FRACTION = 0.9
# Each further GPU holds its own CUDA context and communication buffers.
PER_GPU_OVERHEAD_BYTES = GIB
# FP8 tensor cores: Ada Lovelace (L4, L40S, RTX 4090) and Hopper (H100, H200); not the A100 (8.0).
FP8_MIN_CAPABILITY = (8, 9)


def gpu_gb(gib: float) -> float:
    """A marketed GPU size in GB (10^9 bytes), the tables' unit."""
    return gib * GIB / 1e9


def gpus_needed(total_gb: float, gpu_gib: float, max_gpus: int = GPU_COUNTS[-1]) -> int | None:
    """The fewest GPUs of ``gpu_gib`` GiB that hold ``total_gb`` GB (1, 2, 4 or 8, at most
    ``max_gpus``), or None when even ``max_gpus`` do not."""
    usable = GPU_MEMORY_FRACTION * gpu_gib * GIB
    for n in GPU_COUNTS:
        if n > max_gpus:
            break
        if total_gb * 1e9 + (n - 1) * PER_GPU_OVERHEAD_BYTES <= n * usable:
            return n
    return None


def single_gpu_capacity_gb(gib: float) -> float:
    """The most ``total_gb`` one GPU of ``gib`` GiB holds under the fit rule."""
    return GPU_MEMORY_FRACTION * gpu_gb(gib)


def smallest_gpu(total_gb: float) -> int | None:
    """The smallest common GPU (its marketed GiB) one of which holds ``total_gb``, or None."""
    return next((g for g in GPU_SIZES_GIB if gpus_needed(total_gb, g, max_gpus=1)), None)


def fit_text(total_gb: float, gpu_gib: float) -> str:
    """How ``total_gb`` fits GPUs of ``gpu_gib``: "yes" (one), "2 x" (several), "no"."""
    n = gpus_needed(total_gb, gpu_gib)
    return "no" if n is None else "yes" if n == 1 else f"{n} x"


def capability_text(capability: tuple[int, int] | None) -> str:
    """``(8, 9)`` as "8.9"; None as an empty string."""
    return "" if capability is None else f"{capability[0]}.{capability[1]}"


def parse_capability(text: str) -> tuple[int, int]:
    """ "8.0" (or "8") as ``(8, 0)``; an error naming the expected form otherwise."""
    major, _, minor = str(text).strip().partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        raise ValueError(
            f"compute capability wants MAJOR.MINOR (A100 8.0, L40S and L4 8.9, H100 9.0),"
            f" got {text!r}"
        ) from None


@dataclass(frozen=True)
class Hardware:
    """What a lab deploys on: ``gpus`` GPUs of ``gpu_gib`` GiB of a compute capability (None:
    not given, so no kind is ruled out by it), or a CPU-only machine (``gpu_gib`` None) with
    ``ram_gb`` of memory for the model (None: not limited)."""

    gpu_gib: float | None
    gpus: int = 1
    compute_capability: tuple[int, int] | None = None
    ram_gb: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.gpu_gib is not None and self.gpu_gib <= 0:
            raise ValueError(f"GPU memory must be > 0 GB, got {self.gpu_gib}")
        if self.gpus not in GPU_COUNTS:
            raise ValueError(
                f"GPUs must be one of {GPU_COUNTS} (tensor parallelism), got {self.gpus}"
            )
        if self.ram_gb is not None and self.ram_gb <= 0:
            raise ValueError(f"memory must be > 0 GB, got {self.ram_gb}")

    @property
    def cpu(self) -> bool:
        return self.gpu_gib is None

    @property
    def label(self) -> str:
        """How a table names it: "1 x 40 GB GPU (compute 8.0)", "CPU (64 GB)"."""
        if self.name:
            return self.name
        if self.cpu:
            return "CPU" + ("" if self.ram_gb is None else f" ({self.ram_gb:g} GB)")
        cap = capability_text(self.compute_capability)
        return f"{self.gpus} x {self.gpu_gib:g} GB GPU" + (f" (compute {cap})" if cap else "")

    def gpus_used(self, total_gb: float) -> int | None:
        """GPUs a model x method of ``total_gb`` takes here (0 on a CPU that holds it), or
        None when it does not fit."""
        if self.cpu:
            return 0 if self.ram_gb is None or total_gb <= self.ram_gb else None
        return gpus_needed(total_gb, self.gpu_gib, max_gpus=self.gpus)
