"""The transformers engine: Hugging Face models on any device, batched greedy generation.

Items are sorted by prompt length before batching (less padding), padded on the left (so every
row's generation starts right after its prompt), decoded with the KV cache and stopped at the
end of the model's answer: its end-of-sequence or end-of-turn token, or a stop string (the
next example's header, see :func:`biomedquant.inference.prompting.stop_strings`). Each output keeps
why it stopped (``stop_reason``: ``end_of_turn``, ``stop_string`` or ``length``). Batches follow
the decoding settings' row cap and token budget (:class:`biomedquant.inference.decoding.Decoding`);
a batch that runs out of GPU memory is split and retried.

:func:`load_model` and :func:`generate` are also used directly where a bare model is needed
(perplexity, the quantization quality check, benchmarks); :class:`TransformersEngine` is the
same pair behind the engine interface.
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from biomedquant.common.files import dir_size, read_json
from biomedquant.common.gpus import GPU_MEMORY_FRACTION
from biomedquant.inference.decoding import Decoding, Sampling
from biomedquant.inference.engines.base import Generation, OnBatch, cut_at_stop
from biomedquant.inference.engines.gpu_peaks import GpuPeaks
from biomedquant.inference.engines.hardware import require_fp8_gpu
from biomedquant.inference.prompting import end_of_turn_tokens
from biomedquant.models.fetch import check_model_folder, trusts_remote_code

log = logging.getLogger(__name__)


def stored_dtype(model_dir: str | Path) -> str:
    """The 16-bit dtype the model's weights are stored in (float16 or bfloat16)."""
    prov = Path(model_dir) / "provenance.json"
    if prov.exists():
        record = read_json(prov)
        dtype = record.get("dtype") or (record.get("source_model") or {}).get("spec", {}).get(
            "dtype"
        )
        if dtype:
            return str(dtype)
    config = read_json(Path(model_dir) / "config.json")
    return str(config.get("dtype") or config.get("torch_dtype") or "float16")


def deployment_weight_bytes(model: Any, dtype_bytes: int, upcast: bool) -> int:
    """Bytes the loaded weights take on a GPU, where floating tensors stay in 16-bit.

    On a CPU, unquantized and GPTQ models compute in float32 (see :func:`load_model`), which
    doubles the footprint of their floating tensors against a GPU deployment; when ``upcast``,
    floating tensors are counted at the stored ``dtype_bytes`` instead. Integer tensors (GPTQ's
    packed weights, bnb's int8/uint8 weights) count as they are; bnb's NF4 block scales, which
    sit outside the parameters, are added.
    """
    total = 0
    seen: set[int] = set()
    tensors = list(model.parameters()) + list(model.buffers())
    for t in tensors:
        if id(t) in seen:
            continue
        seen.add(id(t))
        size = t.element_size()
        if upcast and t.is_floating_point():
            size = min(size, dtype_bytes)
        total += t.numel() * size
        state = getattr(t, "quant_state", None)
        for part in (
            getattr(state, "absmax", None),
            getattr(getattr(state, "state2", None), "absmax", None),
        ):
            if part is not None:
                total += part.numel() * part.element_size()
    return total


# Of each GPU's total memory the device map fills at most GPU_MEMORY_FRACTION with weights (the
# rest is left for the KV cache, activations and the CUDA context): the share the one fit rule
# (biomedquant.common.gpus) sizes a job's GPU count with, so a job given the GPUs it asked for
# holds its weights within them.
# Of the host's available memory, the share a device map that may offload (the quantization
# job's) fills: transformers' own default, leaving room for the loading itself.
HOST_MEMORY_FRACTION = 0.9
# What an over-full GPU-only device map looks like to transformers' quantizers (bitsandbytes,
# FP8): they refuse it before loading, in their own words, which :func:`load_model` replaces.
_OFFLOAD_REFUSED = re.compile(r"cpu(/| or (the )?)disk", re.IGNORECASE)


def usable_gpus(gpus: int) -> int:
    """How many GPUs a job given ``gpus`` uses: those, or as many as are visible when fewer
    are (said in a warning: the job then runs, or is refused by :func:`load_model`, on what
    it can see)."""
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus > visible:
        log.warning(
            "this job was given %d GPU(s) but %d are visible (CUDA_VISIBLE_DEVICES=%r): using %d",
            gpus,
            visible,
            os.environ.get("CUDA_VISIBLE_DEVICES"),
            visible,
        )
    return min(gpus, visible)


def gpu_max_memory(gpus: int, *, host_offload: bool = False) -> dict[int | str, int]:
    """accelerate's ``max_memory`` for a model on the first ``gpus`` GPUs: each at its total
    memory times :data:`GPU_MEMORY_FRACTION`, and with ``host_offload`` the host's available
    memory times :data:`HOST_MEMORY_FRACTION` as ``"cpu"``.

    Without a ``"cpu"`` key, accelerate (``get_max_memory`` and ``infer_auto_device_map``, as
    transformers 5 copies them in ``transformers.integrations.accelerate``) uses exactly the
    devices listed: GPUs not listed get nothing, and the host gets nothing either; it does not
    add the host back. It does add ``"disk"`` as a last device of unlimited size, so what does
    not fit the listed GPUs is placed on "disk" (read from the safetensors files as it runs,
    no error raised): :func:`load_model` refuses such a map after loading (:func:`require_on_gpus`).
    """
    import torch

    limits: dict[int | str, int] = {
        i: int(torch.cuda.get_device_properties(i).total_memory * GPU_MEMORY_FRACTION)
        for i in range(gpus)
    }
    if host_offload:
        import psutil

        limits["cpu"] = int(psutil.virtual_memory().available * HOST_MEMORY_FRACTION)
    return limits


def _gpus_described(max_memory: dict[int | str, int]) -> str:
    """What the refusal names: '2 GPUs given (2 x NVIDIA H100 80GB HBM3, 79.2 GiB each; 142.6
    GiB for weights at 90%)'."""
    import torch

    props = [torch.cuda.get_device_properties(k) for k in max_memory if isinstance(k, int)]
    names = " / ".join(sorted({str(p.name) for p in props}))
    sizes = sorted({round(p.total_memory / 2**30, 1) for p in props})
    each = " / ".join(f"{g:.1f}" for g in sizes)
    usable = sum(v for k, v in max_memory.items() if isinstance(k, int)) / 2**30
    return (
        f"{len(props)} GPU{'s' if len(props) != 1 else ''} given ({len(props)} x {names},"
        f" {each} GiB each; {usable:.1f} GiB for weights at {GPU_MEMORY_FRACTION:.0%})"
    )


def _does_not_fit(max_memory: dict[int | str, int], detail: str) -> RuntimeError:
    return RuntimeError(
        f"the model does not fit the {_gpus_described(max_memory)}: {detail}; ask for more"
        " GPUs (scheduling.gpu_gib and scheduling.max_gpus_per_job in the config; on one"
        " machine snakemake --resources gpu=N) or choose a smaller method"
    )


def require_on_gpus(model: Any, max_memory: dict[int | str, int]) -> None:
    """Raise a RuntimeError when the loaded model's device map (``hf_device_map``, present when
    accelerate dispatched it over several devices) put any module on the CPU or disk: a job
    that runs from host memory or disk would take hours where its GPUs take minutes, so it
    stops and says what to ask for instead."""
    device_map = getattr(model, "hf_device_map", None) or {}
    offloaded = [name for name, device in device_map.items() if str(device) in ("cpu", "disk")]
    if offloaded:
        where = sorted({str(device_map[name]) for name in offloaded})
        raise _does_not_fit(
            max_memory,
            f"{len(offloaded)} module(s) would be offloaded to the {' and '.join(where)}"
            f" (first: {offloaded[0]})",
        )


def load_model(
    model_dir: str | Path,
    method: dict[str, Any],
    *,
    gpus: int = 1,
    host_offload: bool = False,
) -> tuple[Any, Any, dict[str, Any]]:
    """Load an artifact for generation under ``method``; returns (model, tokenizer, facts).

    On a GPU the model runs in its stored 16-bit dtype, spread by accelerate over the first
    ``gpus`` GPUs (fewer when fewer are visible, see :func:`usable_gpus`) and over those only:
    a model that does not fit them is refused (:func:`require_on_gpus`) rather than offloaded
    to the host, unless ``host_offload`` (the quantization job's quality check, sized for
    GPTQ's one block at a time, runs a few forward passes and may offload as it always did).
    The facts record ``gpus``, the number used. Every method of a study computes in one
    precision on one device, so that a comparison between methods measures quantization and
    not arithmetic: the stored 16-bit dtype on a GPU, float32 on a CPU (no CUDA, or
    ``gpus=0``), where 16-bit matrix products are slow; bitsandbytes then quantizes the
    weights and computes NF4 in float32 too (LLM.int8's own int8 matrix products cast their
    activations to float16 on any device: that is the method). Recorded as ``compute_dtype``.
    ``weights_bytes`` counts the weights as a GPU would hold them, whatever the device (see
    :func:`deployment_weight_bytes`).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from biomedquant.methods.kinds import method_kind

    start = time.time()
    # a pickle-only or truncated folder: one line naming the file, before minutes of loading
    check_model_folder(model_dir)
    kind = method_kind(method)
    n_gpus = usable_gpus(gpus) if gpus > 0 and torch.cuda.is_available() else 0
    cuda = n_gpus > 0
    for i in range(n_gpus):
        torch.cuda.reset_peak_memory_stats(i)
    stored = getattr(torch, stored_dtype(model_dir))
    dtype = stored if cuda else torch.float32
    quant = bnb_config(method, dtype) or fp8_config(method)
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, padding_side="left", trust_remote_code=trusts_remote_code(model_dir)
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    extra: dict[str, Any] = {"quantization_config": quant} if quant is not None else {}
    max_memory = gpu_max_memory(n_gpus, host_offload=host_offload) if cuda else {}
    placement: dict[str, Any] = (
        {"device_map": "auto", "max_memory": max_memory} if cuda else {"device_map": "cpu"}
    )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir,
            dtype=dtype,
            trust_remote_code=trusts_remote_code(model_dir),
            use_safetensors=True,  # never unpickle a .bin, whatever the folder holds
            **placement,
            **extra,
        )
    except ValueError as exc:
        # bitsandbytes and FP8 check the device map before loading and refuse one with
        # offloaded modules in their own words; the job's refusal says what to do.
        if cuda and not host_offload and _OFFLOAD_REFUSED.search(str(exc)):
            raise _does_not_fit(max_memory, "some modules would be offloaded") from exc
        raise
    if cuda and not host_offload:
        require_on_gpus(model, max_memory)
    model.eval()
    info = {
        "device": "cuda" if cuda else "cpu",
        "gpus": n_gpus,
        "cpu_threads": torch.get_num_threads(),
        "stored_dtype": str(stored).replace("torch.", ""),
        "compute_dtype": str(model.dtype).replace("torch.", ""),
        "load_seconds": round(time.time() - start, 3),
        "model_footprint_bytes": int(model.get_memory_footprint()),
        "weights_bytes": deployment_weight_bytes(model, stored.itemsize, upcast=dtype != stored),
        "size_on_disk_bytes": dir_size(model_dir) if not kind.load_time else None,
        "gpu_allocated_after_load_bytes": (
            sum(torch.cuda.memory_allocated(i) for i in range(n_gpus)) if cuda else None
        ),
        "quant_kernel": quant_kernel(model),
    }
    return model, tokenizer, info


def quant_kernel(model: Any) -> str | None:
    """The class of the quantized linear layers, i.e. the kernel the library chose.

    gptqmodel picks a GPTQ kernel per device (Marlin, Machete, ExLlama, Triton, torch) and
    bitsandbytes has its own layers; which one ran changes speed, not results, so the run
    record names it. None for a model without quantized layers.
    """
    names = sorted(
        {
            type(m).__name__
            for m in model.modules()
            if "QuantLinear" in type(m).__name__ or type(m).__module__.startswith("bitsandbytes")
        }
    )
    return ",".join(names) or None


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


def common_prefix_length(seqs: list[list[int]]) -> int:
    """Length of the longest token prefix shared by every sequence."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(x) for x in seqs)
    for k in range(n):
        if any(x[k] != first[k] for x in seqs):
            return k
    return n


# Below this many shared tokens, a prefix cache saves less than its copies cost.
MIN_SHARED_PREFIX = 64


def plan_batches(
    lengths: list[int],
    max_new_tokens: int,
    batch_size: int,
    batch_tokens: int | None,
    samples: int = 1,
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, shortest prompts first.

    Sorting by length keeps padding low. Each prompt is ``samples`` rows (its sampled chains
    are generated side by side). A batch grows while its rows, padded to its longest prompt
    plus ``max_new_tokens``, stay within ``batch_tokens`` (the KV cache it needs) and
    ``batch_size`` rows; a prompt that alone exceeds either gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        rows = (len(current) + 1) * samples
        cost = rows * (lengths[i] + max_new_tokens)  # sorted: i is the longest so far
        if current and (rows > batch_size or (batch_tokens and cost > batch_tokens)):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def stopping_kwargs(
    model: Any, tokenizer: Any, stop: list[str] | None
) -> tuple[dict[str, Any], set[int]]:
    """``model.generate``'s stopping arguments (the end-of-sequence and end-of-turn tokens,
    the stop strings) and the token ids an output is cut after (those, and padding)."""
    eos = model.generation_config.eos_token_id
    end_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
    end_ids |= {tokenizer.convert_tokens_to_ids(t) for t in end_of_turn_tokens(tokenizer)}
    stopping: dict[str, Any] = {"eos_token_id": sorted(end_ids)} if end_ids else {}
    if stop:
        stopping.update(stop_strings=list(stop), tokenizer=tokenizer)
    return stopping, end_ids | {tokenizer.pad_token_id}


def sampling_kwargs(samples: int, temperature: float, top_p: float) -> dict[str, Any]:
    """Greedy for one sample; otherwise sampling at ``temperature`` and ``top_p``."""
    if samples > 1:
        return {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": None}
    return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}


@dataclass
class _Batches:
    """What every batch of one :func:`generate` call shares: the prompts' tokens, the shared
    prefix and its key/value cache, the generation arguments, and the counters (``stats``)."""

    model: Any
    tokenizer: Any
    ids: list[list[int]]
    max_new_tokens: int
    samples: int
    generate_kwargs: dict[str, Any]
    stop_ids: set[int]
    stop: list[str]
    stats: dict[str, Any]
    shared: int = 0
    cache: Any = None

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def prefill_prefix(self) -> None:
        """Run the prompts' shared prefix through the model once and keep its key/value
        cache (below :data:`MIN_SHARED_PREFIX` tokens it is not worth its copies). Every row
        keeps at least one token of its own after the prefix."""
        import torch

        lengths = [len(x) for x in self.ids]
        shared = min(common_prefix_length(self.ids), min(lengths, default=1) - 1)
        if shared < MIN_SHARED_PREFIX:
            return
        from transformers import DynamicCache

        self.cache = DynamicCache()
        with torch.inference_mode():
            prefix = torch.tensor([self.ids[0][:shared]], device=self.device)
            self.model(input_ids=prefix, past_key_values=self.cache)
        self.shared = shared
        self.stats["prefill_tokens"] += shared

    def run(self, idx: list[int]) -> dict[int, dict[str, Any]]:
        """Generate one batch: each row's own tokens left-padded after the shared prefix (the
        attention mask hides the padding), then decoded (:meth:`decode`)."""
        import torch

        shared, pad = self.shared, self.tokenizer.pad_token_id
        own = [self.ids[i][shared:] for i in idx]
        width = max(len(x) for x in own)
        rows = [self.ids[idx[0]][:shared] + [pad] * (width - len(x)) + x for x in own]
        mask = [[1] * shared + [0] * (width - len(x)) + [1] * len(x) for x in own]
        kwargs: dict[str, Any] = {}
        if self.cache is not None:
            batch_cache = copy.deepcopy(self.cache)
            batch_cache.batch_repeat_interleave(len(idx) * self.samples)
            kwargs["past_key_values"] = batch_cache
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor(rows, device=self.device),
                attention_mask=torch.tensor(mask, device=self.device),
                max_new_tokens=self.max_new_tokens,
                num_return_sequences=self.samples,
                pad_token_id=pad,
                **self.generate_kwargs,
                **kwargs,
            )
        steps = out.shape[1] - (shared + width)
        self.count(len(idx), width, steps)
        return self.decode(idx, out[:, shared + width :].tolist())

    def count(self, n_prompts: int, width: int, steps: int) -> None:
        """What the runtime model counts (:mod:`biomedquant.planning.throughput`): tokens
        prefilled (padding included, the shared prefix once), decode steps, steps x rows, and
        the rows' KV cache length summed over their steps."""
        n_rows = n_prompts * self.samples
        self.stats["prefill_tokens"] += n_prompts * width
        self.stats["decode_steps"] += steps
        self.stats["decode_row_steps"] += n_rows * steps
        context = self.shared + width + steps / 2
        self.stats["decode_context_token_steps"] += n_rows * steps * context

    def decode(self, idx: list[int], new: list[list[int]]) -> dict[int, dict[str, Any]]:
        """Each prompt's samples as text, up to and including the first end token (the rest
        is padding), cut before a stop string, with why each stopped."""
        done = {}
        for row, i in enumerate(idx):
            texts, reasons, n_new = [], [], 0
            for tokens in new[row * self.samples : (row + 1) * self.samples]:
                first = next((k for k, t in enumerate(tokens) if t in self.stop_ids), None)
                end = len(tokens) if first is None else first + 1
                text = self.tokenizer.decode(tokens[:end], skip_special_tokens=True)
                text, reason = cut_at_stop(text, self.stop, ended=first is not None)
                texts.append(text.strip())
                reasons.append(reason)
                n_new += end
            done[i] = {
                "outputs": texts,
                "stop_reasons": reasons,
                "n_prompt_tokens": len(self.ids[i]),
                "n_new_tokens": n_new,
            }
        return done


def run_or_split(
    batches: _Batches,
    idx: list[int],
    finished: Callable[[dict[int, dict[str, Any]]], None],
    peaks: GpuPeaks | None = None,
) -> None:
    """Run one batch and hand it to ``finished``; out of GPU memory, split it in halves and
    retry, down to single prompts (a single prompt that does not fit is an error)."""
    import torch

    try:
        done = batches.run(idx)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if peaks is not None:
            peaks.forget_failed()
        if len(idx) == 1:
            raise RuntimeError(
                f"out of memory generating a single prompt of {len(batches.ids[idx[0]])} tokens"
                f" (+{batches.max_new_tokens} new): the model does not fit this GPU at this"
                " length"
            ) from exc
        batches.stats["oom_retries"] += 1
        log.warning("out of memory at batch %d: retrying as two of %d", len(idx), len(idx) // 2)
        half = len(idx) // 2
        run_or_split(batches, idx[:half], finished, peaks)
        run_or_split(batches, idx[half:], finished, peaks)
        return
    if peaks is not None:
        peaks.keep()
    batches.stats["largest_batch"] = max(batches.stats["largest_batch"], len(idx))
    batches.stats["batches"] += 1
    finished(done)


STATS_KEYS = (
    "oom_retries",
    "largest_batch",
    "batches",
    "prefill_tokens",
    "decode_steps",
    "decode_row_steps",
    "decode_context_token_steps",
)


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
    top_p: float = 1.0,
    prefix_cache: bool = True,
    stop: list[str] | None = None,
    on_batch: Callable[[dict[int, Generation]], None] | None = None,
    stats: dict[str, Any] | None = None,
    progress: Any = None,
    peaks: GpuPeaks | None = None,
) -> list[dict[str, Any]]:
    """Generations for ``prompts``, returned in input order.

    Greedy when ``samples == 1``; otherwise ``samples`` sampled sequences per prompt (seed
    torch before calling for reproducible samples). Each result holds ``outputs`` (one text per
    sample, cut before a ``stop`` string), ``stop_reasons`` (one per sample),
    ``n_prompt_tokens`` and ``n_new_tokens`` (summed over samples).

    Batches follow :func:`plan_batches`. When a batch runs out of GPU memory it is split in
    halves and retried, down to single prompts (:func:`run_or_split`); ``stats`` records the
    retries, the largest batch that ran and the runtime model's counts (:data:`STATS_KEYS`);
    ``peaks`` keeps the GPU memory peaks of the batches that ran, not of those that ran out of
    memory (:mod:`biomedquant.inference.engines.gpu_peaks`). ``on_batch`` receives each
    finished batch ({prompt index: result}) as soon as it is done (the caller persists it: a
    killed job loses at most the running batch); ``progress`` (a tqdm bar) is advanced by the
    prompts of each batch.

    Prompts of one run share a long prefix (system prompt, task description, few-shot
    examples). With ``prefix_cache`` the shared prefix is run through the model once and its
    key/value cache reused by every batch, so only each item's own tokens are prefilled. The
    item tokens are left-padded *after* the prefix; the attention mask hides the padding and
    position ids follow the mask, so each row sees exactly its own prompt.
    """
    stats = stats if stats is not None else {}
    for key in STATS_KEYS:
        stats.setdefault(key, 0)
    stopping, stop_ids = stopping_kwargs(model, tokenizer, stop)
    batches = _Batches(
        model,
        tokenizer,
        ids=[tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts],
        max_new_tokens=max_new_tokens,
        samples=samples,
        generate_kwargs={**stopping, **sampling_kwargs(samples, temperature, top_p)},
        stop_ids=stop_ids,
        stop=list(stop or []),
        stats=stats,
    )
    if prefix_cache:
        batches.prefill_prefix()
    results: list[dict[str, Any] | None] = [None] * len(prompts)

    def finished(done: dict[int, dict[str, Any]]) -> None:
        for i, result in done.items():
            results[i] = result
        if on_batch is not None:
            on_batch(done)
        if progress is not None:
            progress.update(len(done))
            n_new = sum(r["n_new_tokens"] for r in done.values())
            progress.set_postfix_str(f"{n_new} new tokens in last batch", refresh=False)

    lengths = [len(x) for x in batches.ids]
    for idx in plan_batches(lengths, max_new_tokens, batch_size, batch_tokens, samples):
        run_or_split(batches, idx, finished, peaks)
    return [r for r in results if r is not None]


@dataclass
class TransformersEngine:
    """A loaded Hugging Face model behind the engine interface."""

    name: ClassVar[str] = "transformers"
    sampled_seeding: ClassVar[str] = ""  # torch's global seed, set once per job
    model: Any
    tokenizer: Any
    decoding: Decoding
    info: dict[str, Any] = field(default_factory=dict)
    # peaks of what ran, counted from the load (load_model resets torch's counters first)
    gpu_peaks: GpuPeaks = field(default_factory=GpuPeaks)

    @classmethod
    def load(
        cls, model_dir: str | Path, method: dict[str, Any], decoding: Decoding, *, gpus: int = 1
    ) -> TransformersEngine:
        """:func:`load_model` on the job's ``gpus``; the batch shape is used by
        :meth:`generate`."""
        model, tokenizer, info = load_model(model_dir, method, gpus=gpus)
        return cls(model, tokenizer, decoding, info)

    def generate(
        self,
        prompts: list[str],
        sampling: Sampling,
        *,
        on_batch: OnBatch | None = None,
        stats: dict[str, Any] | None = None,
        progress: Any = None,
    ) -> list[Generation]:
        """:func:`generate` with the job's sampling and the decoding settings' batch shape.
        Sampled chains follow torch's global seed, which the job sets before loading."""
        return generate(
            self.model,
            self.tokenizer,
            prompts,
            max_new_tokens=sampling.max_new_tokens,
            batch_size=self.decoding.batch_size,
            batch_tokens=self.decoding.batch_tokens,
            samples=sampling.samples,
            temperature=sampling.temperature,
            stop=list(sampling.stop),
            on_batch=on_batch,
            stats=stats,
            progress=progress,
            peaks=self.gpu_peaks,
        )

    def close(self) -> None:
        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def bnb_config(method: dict[str, Any], compute_dtype: Any) -> Any:
    """transformers' ``BitsAndBytesConfig`` for a bnb method, or None for other kinds.

    The LM head stays in 16-bit, as bitsandbytes' own defaults leave it, so the bnb methods
    quantize the same layers as GPTQ and their memory figures compare like for like.
    """
    kind = method.get("kind")
    if kind not in ("bnb-int8", "bnb-nf4"):
        return None
    from transformers import BitsAndBytesConfig

    if kind == "bnb-int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["lm_head"])
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=bool(method.get("double_quant", True)),
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=["lm_head"],
    )
