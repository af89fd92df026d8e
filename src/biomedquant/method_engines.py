"""Which engine runs a method kind, and what hardware a kind needs before anything loads.

* ``gguf`` files run in llama.cpp (the ``llama_cpp`` engine), whatever ``inference.backend``
  says: that is how GGUF is deployed (llama.cpp, Ollama, LM Studio). The transformers and
  vLLM engines keep every other kind.
* ``fp8`` (E4M3 weights) needs an NVIDIA GPU with FP8 tensor cores, compute capability 8.9
  or newer (L4, L40S, RTX 4090, H100, H200). On other machines its jobs stop at once with
  that reason; the fit estimator still sizes it (one byte per weight).
* ``awq`` quantizes and runs through gptqmodel, whose AWQ kernels need a CUDA GPU (see
  :mod:`biomedquant.quantization.awq`).

Torch is imported only to look at the GPU, so the planning code stays light.
"""

from __future__ import annotations

from typing import Any

FP8_MIN_CAPABILITY = (8, 9)


def engine_for(method: dict[str, Any], backend: str) -> str:
    """The engine that runs ``method`` when the config asks for ``backend``."""
    kind = method.get("kind")
    if kind == "gguf":
        return "llama_cpp"
    if kind == "fp8":
        require_fp8_gpu()
    if backend == "llama_cpp":
        raise ValueError(
            f"the llama_cpp engine runs GGUF files only; method kind {kind!r} needs the "
            "transformers or vllm backend"
        )
    return backend


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


def fp8_config(method: dict[str, Any]) -> Any:
    """transformers' FP8 quantization config for an ``fp8`` method (None for other kinds).

    Weights are quantized to E4M3 while the 16-bit model loads, with one scale per 128 x 128
    block (transformers' fine-grained FP8); vLLM's ``quantization="fp8"`` is the served
    equivalent (one scale per tensor).
    """
    if method.get("kind") != "fp8":
        return None
    require_fp8_gpu()
    from transformers import FineGrainedFP8Config

    return FineGrainedFP8Config(modules_to_not_convert=["lm_head"])


def vllm_quantization(method: dict[str, Any]) -> str | None:
    """vLLM's ``quantization`` argument for a kind quantized at load time (None otherwise)."""
    kind = method.get("kind")
    if kind == "fp8":
        require_fp8_gpu()
        return "fp8"
    if kind in ("bnb-int8", "bnb-nf4"):
        return "bitsandbytes"
    return None
