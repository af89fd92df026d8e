"""The llama.cpp engine (``gguf`` methods): GGUF files on the CPU, as a workstation runs them.

It implements the engine interface (:mod:`biomedquant.inference.engines.base`), so prompts, parsing,
the generation cache, resume and the run record are shared with the other engines. Three choices
keep its outputs comparable with the other engines':

* Prompts are tokenized by the model's Hugging Face tokenizer and handed to llama.cpp as token
  ids, so every engine sees the same tokens (the chat template applied once, by
  :mod:`biomedquant.inference.prompting`); outputs are decoded by the same tokenizer.
* Decoding is greedy (llama.cpp's greedy sampler; no repetition penalty, no top-k/p), or
  sampled at the request's temperature for self-consistency chains, each seeded by
  :func:`chain_seed`; it stops after the first end-of-sequence token of the model's generation
  config, or before the first stop string when the caller gives some, as the other engines do.
* Prompts run one at a time (llama.cpp's own batching is over the tokens of a prompt), and the
  KV cache of the longest prefix shared with the previous prompt is kept: the system prompt
  and few-shot examples are processed once per job, like the transformers engine's prefix
  cache.

Threads follow the job's ``cpu_threads`` (torch's thread count, which the CLI sets); layers are
offloaded to the job's GPUs when llama.cpp was built for GPUs and the job has any. The run
record gets the GGUF type, file size, load time, the GPUs used, and prompt-processing and
generation tokens/s from llama.cpp's own counters.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from biomedquant.inference.decoding import Decoding, Sampling
from biomedquant.inference.engines.base import Generation, OnBatch, cut_at_stop

# The file name of the GGUF inside an artifact folder (biomedquant.quantization.gguf writes it).
GGUF_FILE = "model.gguf"
INSTALL_HINT = (
    "gguf methods need llama-cpp-python, which is not installed: "
    "pip install 'biomedquant[llamacpp]' (compiles llama.cpp; cmake and a C++ compiler needed)"
)

# Context length when the model allows it: the longest demo and paper prompts (five-shot NER)
# plus their new tokens fit, and the KV cache of a 7-8B model stays near 1 GiB.
DEFAULT_CONTEXT = 8192


def cpu_threads() -> int:
    """The job's thread count: torch's (set by the CLI from ``cpu_threads``) when torch is
    loaded, else every core."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    return os.cpu_count() or 1


def _stop_ids(model_dir: Path, tokenizer: Any) -> set[int]:
    """End-of-sequence ids: the generation config's (as transformers stops), the tokenizer's,
    the chat template's end-of-turn tokens and the padding id (where the transformers engine
    stops too)."""
    from biomedquant.inference.prompting import end_of_turn_tokens

    ids: set[int] = {tokenizer.convert_tokens_to_ids(t) for t in end_of_turn_tokens(tokenizer)}
    config = model_dir / "generation_config.json"
    if config.is_file():
        eos = json.loads(config.read_text("utf-8")).get("eos_token_id")
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    for token in (tokenizer.eos_token_id, tokenizer.pad_token_id):
        if token is not None:
            ids.add(int(token))
    return ids


def gpu_process_bytes() -> int | None:
    """GPU memory this process holds, from NVML (None without a GPU or pynvml)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        return sum(p.usedGpuMemory or 0 for p in procs if p.pid == os.getpid()) or None
    except Exception:  # noqa: BLE001 - no NVML, no GPU: nothing to report
        return None


REPACK_ENV = "BIOMEDQUANT_LLAMA_CPP_REPACK"


@contextlib.contextmanager
def _model_params_without_repacking(llama_cpp: Any) -> Iterator[None]:
    """Load with llama.cpp's extra CPU buffer types (weight repacking) off, unless
    ``BIOMEDQUANT_LLAMA_CPP_REPACK=1``.

    Repacking reorders quantized blocks for wider SIMD kernels. With llama-cpp-python 0.3.36
    on an AVX-512 machine (where this engine was measured) ``llama_decode`` crashes with a
    segmentation fault on repacked Q8_0 and Q4_K_M files; without it, the same files run.
    llama-cpp-python's ``Llama`` has no argument for it, so its default model parameters are
    adjusted while it loads.
    """
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params
    if os.environ.get(REPACK_ENV, "") == "1":
        yield
        return

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = defaults
    try:
        yield
    finally:
        module.llama_model_default_params = original


def _perf(engine: LlamaCppEngine) -> dict[str, float]:
    llama_cpp = llama_cpp_module()
    data = llama_cpp.llama_perf_context(engine.llm._ctx.ctx)
    return {
        "t_p_eval_ms": data.t_p_eval_ms,
        "t_eval_ms": data.t_eval_ms,
        "n_p_eval": data.n_p_eval,
        "n_eval": data.n_eval,
    }


def chain_seed(job_seed: int | None, chain: int, prompt: str) -> int:
    """llama.cpp's sampler seed for chain ``chain`` of ``prompt`` in a job seeded ``job_seed``:
    the first four bytes of a SHA-256 of the three, so it depends on nothing else (not on the
    prompt's place in the job)."""
    digest = hashlib.sha256(f"{job_seed}\x00{chain}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def generate_one(
    engine: LlamaCppEngine,
    ids: list[int],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    stop: list[str] | None = None,
) -> tuple[str, int, str]:
    """One continuation of the prompt ``ids``: (text, new tokens counted, why it stopped in
    the vocabulary of :func:`~biomedquant.inference.engines.base.cut_at_stop`)."""
    if len(ids) + max_new_tokens > engine.n_ctx:
        raise ValueError(
            f"prompt of {len(ids)} tokens + {max_new_tokens} new exceeds llama.cpp's context "
            f"of {engine.n_ctx} tokens"
        )
    sampling = temperature > 0
    engine.llm.set_seed(seed)
    new: list[int] = []
    ended = False
    for token in engine.llm.generate(
        ids,
        temp=temperature if sampling else 0.0,
        top_k=0 if sampling else 1,
        top_p=top_p if sampling else 1.0,
        min_p=0.0,
        repeat_penalty=1.0,
    ):
        new.append(int(token))
        if token in engine.stop_ids:
            ended = True
            break
        if len(new) >= max_new_tokens:
            break
        if stop:
            text = engine.tokenizer.decode(new, skip_special_tokens=True)
            text, reason = cut_at_stop(text, stop, ended=False)
            if reason == "stop_string":
                return text.strip(), len(new), reason
    text, reason = cut_at_stop(
        engine.tokenizer.decode(new, skip_special_tokens=True), stop or [], ended=ended
    )
    return text.strip(), len(new), reason


@dataclass
class LlamaCppEngine:
    """A loaded GGUF model behind the engine interface, with what decoding needs beside it."""

    name: ClassVar[str] = "llama_cpp"
    sampled_seeding: ClassVar[str] = "per chain: sha256(job seed, chain, prompt)"
    llm: Any
    tokenizer: Any  # the artifact's Hugging Face tokenizer: every engine sees the same tokens
    stop_ids: set[int]
    n_ctx: int
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        method: dict[str, Any],
        decoding: Decoding | None = None,
        *,
        gpus: int = 1,
        logits_all: bool = False,
        context: int | None = None,
    ) -> LlamaCppEngine:
        """Load the artifact's GGUF file. Prompts run one at a time, so ``decoding``'s batch
        shape does not apply; ``logits_all`` keeps every position's logits (perplexity).

        With ``gpus`` > 0 and a llama.cpp built for GPUs, every layer is offloaded and
        llama.cpp splits them over all the GPUs it can see (its default split mode), which
        under a scheduler are the job's own; the count is recorded as ``gpus``. ``gpus=0``
        keeps the model on the CPU, as a job given no GPU must not take one.
        """
        llama_cpp = llama_cpp_module()
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        path = gguf_file(model_dir)
        prov_path = model_dir / "provenance.json"
        prov = json.loads(prov_path.read_text("utf-8")) if prov_path.is_file() else {}
        config = json.loads((model_dir / "config.json").read_text("utf-8"))
        n_ctx = min(context or DEFAULT_CONTEXT, int(config.get("max_position_embeddings", 4096)))
        offload = gpus > 0 and bool(llama_cpp.llama_supports_gpu_offload())
        threads = cpu_threads()
        start = time.time()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        with _model_params_without_repacking(llama_cpp):
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=512,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=-1 if offload else 0,
                logits_all=logits_all,
                seed=0,
                verbose=False,
            )
        gguf_type = prov.get("gguf_type", str(method.get("type")))
        info = {
            "device": "cuda" if offload else "cpu",
            "backend": "llama_cpp",
            "cpu_threads": threads,
            "context_length": n_ctx,
            "stored_dtype": gguf_type,
            "compute_dtype": gguf_type,
            "load_seconds": round(time.time() - start, 3),
            "weights_bytes": prov.get("tensor_bytes") or path.stat().st_size,
            "model_footprint_bytes": path.stat().st_size,
            "size_on_disk_bytes": path.stat().st_size,
            "gguf_file_bytes": path.stat().st_size,
            "gpu_offload": offload,
            "gpus": gpus if offload else 0,
            "weight_repacking": os.environ.get(REPACK_ENV, "") == "1",
            "gpu_process_bytes_after_load": gpu_process_bytes() if offload else None,
            "llama_cpp_python": getattr(llama_cpp, "__version__", None),
        }
        return cls(llm, tokenizer, _stop_ids(model_dir, tokenizer), n_ctx, info)

    def generate(
        self,
        prompts: list[str],
        sampling: Sampling,
        *,
        on_batch: OnBatch | None = None,
        stats: dict[str, Any] | None = None,
        progress: Any = None,
    ) -> list[Generation]:
        """Generations in input order, one prompt at a time.

        ``stats`` gets ``engine_metrics``: prompt tokens processed (those not served by the
        kept prefix), generated tokens, and llama.cpp's timings and tokens/s for both phases.
        Each sampled chain is seeded from the job's seed, the chain's number and the prompt
        (:func:`chain_seed`), so a prompt's chains are the same whichever prompts run before it:
        in a resumed job, or one whose other prompts came from the generation cache.
        """
        llama_cpp = llama_cpp_module()
        llama_cpp.llama_perf_context_reset(self.llm._ctx.ctx)
        stop_list = [s for s in sampling.stop if s]
        samples = sampling.samples
        results: list[Generation] = []
        start = time.time()
        # What the runtime model counts (biomedquant.planning.throughput): one sequence at a time,
        # so every token decoded is a step; each chain prefills its prompt (an upper bound:
        # llama.cpp reuses a prefix it still holds).
        counts = dict.fromkeys(
            ("prefill_tokens", "decode_steps", "decode_row_steps", "decode_context_token_steps"), 0
        )
        for i, prompt in enumerate(prompts):
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            texts, reasons, n_new = [], [], 0
            for s in range(samples):
                text, n, reason = generate_one(
                    self,
                    ids,
                    max_new_tokens=sampling.max_new_tokens,
                    temperature=sampling.temperature if samples > 1 else 0.0,
                    seed=chain_seed(sampling.seed, s, prompt),
                    stop=stop_list,
                )
                texts.append(text)
                reasons.append(reason)
                n_new += n
                counts["prefill_tokens"] += len(ids)
                counts["decode_steps"] += n
                counts["decode_row_steps"] += n
                counts["decode_context_token_steps"] += n * (len(ids) + n / 2)
            result = {
                "outputs": texts,
                "stop_reasons": reasons,
                "n_prompt_tokens": len(ids),
                "n_new_tokens": n_new,
            }
            results.append(result)
            if on_batch is not None:
                on_batch({i: result})
            if progress is not None:
                progress.update(1)
        if stats is not None:
            stats.update(batches=len(prompts), largest_batch=1 if prompts else 0, oom_retries=0)
            stats.update(counts)
            stats["engine_metrics"] = _engine_metrics(_perf(self), time.time() - start)
        return results

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.close()


def _engine_metrics(perf: dict[str, float], wall_seconds: float) -> dict[str, Any]:
    """llama.cpp's own counters for the run record: tokens and tokens/s of prompt processing
    and of generation."""
    return {
        "prompt_tokens_processed": perf["n_p_eval"],
        "prompt_seconds": round(perf["t_p_eval_ms"] / 1000, 3),
        "prompt_tokens_per_second": (
            round(1000 * perf["n_p_eval"] / perf["t_p_eval_ms"], 2) if perf["t_p_eval_ms"] else None
        ),
        "generation_tokens": perf["n_eval"],
        "generation_seconds": round(perf["t_eval_ms"] / 1000, 3),
        "generation_tokens_per_second": (
            round(1000 * perf["n_eval"] / perf["t_eval_ms"], 2) if perf["t_eval_ms"] else None
        ),
        "engine_wall_seconds": round(wall_seconds, 3),
    }


def token_nll(
    engine: LlamaCppEngine, tokenizer: Any, texts: list[str], max_length: int = 512
) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and predicted tokens, as
    :func:`biomedquant.inference.perplexity.token_nll` computes them, from llama.cpp's logits (the
    engine loaded with ``logits_all=True``)."""
    import numpy as np

    from biomedquant.inference.perplexity import adds_bos, scored_ids

    total, count = 0.0, 0
    bos = adds_bos(tokenizer)
    for text in texts:
        ids = scored_ids(tokenizer, text, max_length, bos)
        if len(ids) < 2:
            continue
        engine.llm.reset()
        engine.llm.eval(ids)
        logits = np.asarray(engine.llm.scores[: len(ids) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        picked = logits[np.arange(len(ids) - 1), ids[1:]]
        total += float((log_z - picked).sum())
        count += len(ids) - 1
    return total, count


def llama_cpp_module() -> Any:
    """llama-cpp-python, or a clear error saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise RuntimeError(INSTALL_HINT) from exc
    return llama_cpp


def gguf_file(model_dir: str | Path) -> Path:
    """The GGUF file of an artifact folder."""
    path = Path(model_dir) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: no {GGUF_FILE} (not a gguf artifact)")
    return path
