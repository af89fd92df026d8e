"""Inference engines behind one interface (:class:`biomedquant.inference.engines.base.Engine`).

The registry below names each engine and where its class lives; a module is imported only
when its engine is chosen, so vLLM (CUDA only, not a dependency) and llama.cpp stay optional
and the planning code never imports torch through here.

Which engine runs a job: ``inference.backend`` (transformers or vllm), except for a method kind
that names its own engine (:mod:`biomedquant.methods.kinds`: ``gguf`` files always run in
llama.cpp, which is how GGUF is deployed: llama.cpp, Ollama, LM Studio).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from biomedquant.common.registry import Registry
from biomedquant.inference.engines.hardware import require_fp8_gpu
from biomedquant.methods.kinds import method_kind

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


def engine_for(method: dict[str, Any], backend: str) -> str:
    """The engine that runs ``method`` when the config asks for ``backend``; raises before
    anything loads when the method cannot run here (fp8 without an FP8 GPU)."""
    kind = method_kind(method)
    if kind.engine:
        return kind.engine
    if kind.needs_fp8_gpu:
        require_fp8_gpu()
    if backend == "llama_cpp":
        raise ValueError(
            f"the llama_cpp engine runs GGUF files only; method kind {kind.name!r} needs the "
            "transformers or vllm backend"
        )
    return backend
