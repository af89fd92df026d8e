"""Optional vLLM backend (``inference.backend: vllm``), for users with CUDA GPUs.

Same interface as the transformers engine in :mod:`biomedquant.inference` (``load`` and
``generate``), so prompts, parsing, the generation cache, resume and the run record are shared.
vLLM schedules its own batches (continuous batching, paged KV cache); ``batch_size`` and
``batch_tokens`` map to its ``max_num_seqs`` and ``max_num_batched_tokens``. It is imported only
when selected and is not a dependency of biomedquant: install it beside it (``pip install
vllm``) on a machine with CUDA. GPTQ artifacts load as they are; bitsandbytes methods use vLLM's
own bitsandbytes support; the CPU-only demo and tests run the transformers engine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


class BackendUnavailable(RuntimeError):
    """The selected backend cannot run here."""


def _vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise BackendUnavailable(
            "inference.backend 'vllm' needs the 'vllm' package, which is not installed: "
            "pip install vllm (Linux with a CUDA GPU), or set inference.backend: transformers"
        ) from exc
    return vllm


# Sequences interleaved per chunk handed to vLLM: chunks make progress and resume granular.
CHUNK = 256


def load(
    model_dir: str | Path,
    method: dict[str, Any],
    *,
    batch_size: int = 256,
    batch_tokens: int = 8192,
) -> tuple[Any, Any, dict[str, Any]]:
    vllm = _vllm()
    start = time.time()
    kwargs: dict[str, Any] = {"max_num_seqs": batch_size, "max_num_batched_tokens": batch_tokens}
    from biomedquant.method_engines import vllm_quantization

    if vllm_quantization(method):  # bitsandbytes or fp8, quantized while loading
        kwargs["quantization"] = vllm_quantization(method)
    llm = vllm.LLM(model=str(model_dir), **kwargs)
    info = {"device": "cuda", "load_seconds": round(time.time() - start, 3), "backend": "vllm"}
    return llm, llm.get_tokenizer(), info


def stop_reason(finish_reason: str | None, matched: Any) -> str:
    """vLLM's finish reason in the engine-neutral vocabulary: a matched stop string is
    ``stop_string``, another stop (end-of-sequence or end-of-turn token) ``end_of_turn``."""
    if finish_reason == "stop":
        return "stop_string" if isinstance(matched, str) else "end_of_turn"
    return "length" if finish_reason == "length" else str(finish_reason)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    batch_tokens: int | None = None,
    samples: int = 1,
    temperature: float = 0.0,
    stop: list[str] | None = None,
    on_batch: Any = None,
    stats: dict[str, Any] | None = None,
    progress: Any = None,
    **_: Any,
) -> list[dict[str, Any]]:
    """Generations in input order, in the transformers engine's result format: stopped at
    the ``stop`` strings (not kept in the text) and the chat template's end-of-turn tokens,
    with each sample's stop reason."""
    from biomedquant.prompting import end_of_turn_tokens

    vllm = _vllm()
    eot = [tokenizer.convert_tokens_to_ids(t) for t in end_of_turn_tokens(tokenizer)]
    params = vllm.SamplingParams(
        n=samples,
        temperature=temperature if samples > 1 else 0.0,
        max_tokens=max_new_tokens,
        stop=list(stop or []) or None,
        stop_token_ids=eot or None,
    )
    results: list[dict[str, Any]] = []
    for start in range(0, len(prompts), CHUNK):
        chunk = prompts[start : start + CHUNK]
        outs = model.generate(chunk, params, use_tqdm=False)
        done = {}
        for j, out in enumerate(outs):
            texts = [c.text.strip() for c in out.outputs]
            n_new = sum(len(c.token_ids) for c in out.outputs)
            done[start + j] = {
                "outputs": texts,
                "stop_reasons": [stop_reason(c.finish_reason, c.stop_reason) for c in out.outputs],
                "n_prompt_tokens": len(out.prompt_token_ids),
                "n_new_tokens": n_new,
            }
        results.extend(done[i] for i in sorted(done))
        if on_batch is not None:
            on_batch(done)
        if progress is not None:
            progress.update(len(chunk))
    if stats is not None:
        stats["batches"] = (len(prompts) + CHUNK - 1) // CHUNK
    return results
