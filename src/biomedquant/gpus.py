"""The common GPU sizes, declared once: the fit table's columns, the recommendation's smallest
GPU and the dashed lines of every figure use these.

GPU sizes are marketed in GiB ("40 GB" A100 = 40 GiB = 42.9 GB) while the tables speak in GB
(10^9 bytes), so capacities are converted before comparing. Torch- and matplotlib-free: the
fit estimator's table code imports it.
"""

from __future__ import annotations

from biomedquant.memory import GIB

# 24 GB (L4, RTX 4090), 40 GB (A100 40GB), 48 GB (RTX A6000, L40S), 80 GB (A100 80GB, H100).
GPU_SIZES_GIB = (24, 40, 48, 80)


def gpu_gb(gib: int) -> float:
    """A marketed GPU size in GB (10^9 bytes), the tables' unit."""
    return gib * GIB / 1e9


def smallest_gpu(total_gb: float) -> int | None:
    """The smallest common GPU (its marketed GiB) that holds ``total_gb``, or None."""
    return next((g for g in GPU_SIZES_GIB if total_gb * 1e9 <= g * GIB), None)
