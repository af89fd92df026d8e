"""Inference engines behind one interface (:class:`biomedquant.inference.engines.base.Engine`).

The registry below names each engine and where its class lives; a module is imported only
when its engine is chosen, so vLLM (CUDA only, not a dependency) and llama.cpp stay optional
and the planning code never imports torch through here.

Which engine runs a job is decided in one place, :func:`biomedquant.methods.engines.engine_for`
(re-exported here): ``inference.backend`` (transformers or vllm), except for a method kind that
names its own engine (``gguf`` files always run in llama.cpp) and a method the backend does not
run as specified (:data:`biomedquant.methods.engines.ENGINE_SUPPORT`: bitsandbytes and GPTQ-3
under vLLM run under transformers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from biomedquant.common.registry import Registry
from biomedquant.inference.engines.hardware import require_fp8_gpu
from biomedquant.methods.engines import engine_for
from biomedquant.methods.kinds import method_kind

__all__ = ["BACKENDS", "ENGINES", "engine_for", "get_engine", "require_hardware"]

if TYPE_CHECKING:
    from biomedquant.inference.engines.base import Engine

# name -> "module:class"
ENGINES: Registry[str] = Registry(
    "inference engine",
    {
        "transformers": "biomedquant.inference.engines.transformers:TransformersEngine",
        "vllm": "biomedquant.inference.engines.vllm:VllmEngine",
        "llama_cpp": "biomedquant.inference.engines.llama_cpp:LlamaCppEngine",
    },
)
# What ``inference.backend`` may name; llama_cpp is chosen by the method kind instead.
BACKENDS = ("transformers", "vllm")


def get_engine(name: str) -> type[Engine]:
    """The engine class registered as ``name`` (its module imported now)."""
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def require_hardware(method: dict[str, Any]) -> None:
    """Raise before anything loads when this machine cannot run ``method`` (fp8 without a GPU
    of compute capability 8.9+). Which engine runs it is
    :func:`biomedquant.methods.engines.engine_for`'s to say (re-exported here)."""
    if method_kind(method).needs_fp8_gpu:
        require_fp8_gpu()
