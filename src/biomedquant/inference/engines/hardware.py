"""What hardware a method kind needs before anything loads.

* ``fp8`` (E4M3 weights) needs an NVIDIA GPU with FP8 tensor cores, compute capability 8.9
  or newer (L4, L40S, RTX 4090, H100, H200). On other machines its jobs stop at once with
  that reason; the fit estimator still sizes it (one byte per weight).
* ``awq`` quantizes and runs through gptqmodel, whose AWQ kernels need a CUDA GPU (see
  :mod:`biomedquant.quantization.awq`).

Torch is imported only to look at the GPU, so the planning code stays light.
"""

from __future__ import annotations

from biomedquant.common.gpus import FP8_MIN_CAPABILITY

__all__ = ["FP8_MIN_CAPABILITY", "cuda_capability", "require_fp8_gpu"]


def cuda_capability() -> tuple[int, int] | None:
    """The first CUDA GPU's compute capability, or None without one."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(0))  # type: ignore[return-value]


def require_fp8_gpu() -> None:
    """Raise a RuntimeError naming the missing hardware unless FP8 can run here."""
    cap = cuda_capability()
    need = ".".join(map(str, FP8_MIN_CAPABILITY))
    if cap is None:
        raise RuntimeError(
            f"fp8 methods need an NVIDIA GPU with FP8 support (compute capability {need} or "
            "newer: L4, L40S, H100, H200); this machine has no CUDA GPU. The fit table "
            "estimates fp8 (one byte per weight); run its jobs on such a GPU"
        )
    if cap < FP8_MIN_CAPABILITY:
        raise RuntimeError(
            f"fp8 methods need compute capability {need} or newer (L4, L40S, H100, H200); "
            f"this GPU has {cap[0]}.{cap[1]}"
        )
