"""Batched greedy generation with transformers, one prediction record per dataset item.

Items are sorted by prompt length before batching (less padding), padded on the left (so every
row's generation starts right after its prompt), decoded greedily with the KV cache and stopped
at the end of the model's answer: its end-of-sequence or end-of-turn token, or a stop string
(the next example's header, see :func:`biomedquant.prompting.stop_strings`). Each output
keeps why it stopped (``stop_reason``: ``end_of_turn``, ``stop_string`` or ``length``).
Predictions are written in the dataset's order.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from biomedquant.datasets.registry import get_dataset
from biomedquant.io import dir_size, read_json, read_jsonl, sha256_text, write_json, write_jsonl
from biomedquant.method_engines import engine_for
from biomedquant.models import trusts_remote_code
from biomedquant.prompting import (
    DEFAULT_SYSTEM_PROMPT,
    builder,
    end_of_turn_tokens,
    get_prompt_method,
    stop_strings,
)
from biomedquant.provenance import hardware, now, peak_host_rss_bytes, versions
from biomedquant.tasks import get_task

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


def load_model(model_dir: str | Path, method: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Load an artifact for generation under ``method``; returns (model, tokenizer, facts).

    On a GPU the model runs in its stored 16-bit dtype. On a CPU, 16-bit matrix products are
    slow, so unquantized and GPTQ models compute in float32 there (recorded as
    ``compute_dtype``). bitsandbytes methods quantize the 16-bit weights while loading and
    compute in 16-bit on either device. ``weights_bytes`` counts the weights as a GPU would
    hold them, whatever the device (see :func:`deployment_weight_bytes`).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from biomedquant.method_engines import fp8_config
    from biomedquant.methods import method_kind
    from biomedquant.quantization import bnb_config

    start = time.time()
    kind = method_kind(method)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stored = getattr(torch, stored_dtype(model_dir))
    quant = bnb_config(method, stored) or fp8_config(method)
    dtype = stored if (cuda or kind.load_time) else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, padding_side="left", trust_remote_code=trusts_remote_code(model_dir)
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    extra = {"quantization_config": quant} if quant is not None else {}
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=dtype,
        device_map="auto" if cuda else "cpu",
        trust_remote_code=trusts_remote_code(model_dir),
        **extra,
    )
    model.eval()
    info = {
        "device": "cuda" if cuda else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "stored_dtype": str(stored).replace("torch.", ""),
        "compute_dtype": str(model.dtype).replace("torch.", ""),
        "load_seconds": round(time.time() - start, 3),
        "model_footprint_bytes": int(model.get_memory_footprint()),
        "weights_bytes": deployment_weight_bytes(model, stored.itemsize, upcast=dtype != stored),
        "size_on_disk_bytes": dir_size(model_dir) if not kind.load_time else None,
        "gpu_allocated_after_load_bytes": torch.cuda.memory_allocated() if cuda else None,
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
    lengths: list[int], max_new_tokens: int, batch_size: int, batch_tokens: int | None
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, shortest prompts first.

    Sorting by length keeps padding low. A batch grows while its rows, padded to its longest
    prompt plus ``max_new_tokens``, stay within ``batch_tokens`` (the KV cache it needs) and
    ``batch_size`` rows; a prompt that alone exceeds the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        rows = len(current) + 1
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
    on_batch: Callable[[dict[int, dict[str, Any]]], None] | None = None,
    stats: dict[str, Any] | None = None,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Generations for ``prompts``, returned in input order.

    Greedy when ``samples == 1``; otherwise ``samples`` sampled sequences per prompt (seed
    torch before calling for reproducible samples). Each result holds ``outputs`` (one text per
    sample, cut before a ``stop`` string), ``stop_reasons`` (one per sample),
    ``n_prompt_tokens`` and ``n_new_tokens`` (summed over samples).

    Batches follow :func:`plan_batches`. When a batch runs out of GPU memory it is split in
    halves and retried, down to single prompts; ``stats`` records the retries and the largest
    batch that ran. ``on_batch`` receives each finished batch ({prompt index: result}) as soon
    as it is done (the caller persists it: a killed job loses at most the running batch);
    ``progress`` (a tqdm bar) is advanced by the prompts of each batch.

    Prompts of one run share a long prefix (system prompt, task description, few-shot
    examples). With ``prefix_cache`` the shared prefix is run through the model once and its
    key/value cache reused by every batch, so only each item's own tokens are prefilled. The
    item tokens are left-padded *after* the prefix; the attention mask hides the padding and
    position ids follow the mask, so each row sees exactly its own prompt.
    """
    import torch

    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    lengths = [len(x) for x in ids]
    results: list[dict[str, Any] | None] = [None] * len(prompts)
    stats = stats if stats is not None else {}
    stats.setdefault("oom_retries", 0)
    stats.setdefault("largest_batch", 0)
    stats.setdefault("batches", 0)
    device = next(model.parameters()).device
    eos = model.generation_config.eos_token_id
    end_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
    end_ids |= {tokenizer.convert_tokens_to_ids(t) for t in end_of_turn_tokens(tokenizer)}
    stop_ids = end_ids | {tokenizer.pad_token_id}
    stopping: dict[str, Any] = {"eos_token_id": sorted(end_ids)} if end_ids else {}
    if stop:
        stopping.update(stop_strings=list(stop), tokenizer=tokenizer)
    pad = tokenizer.pad_token_id
    if samples > 1:
        decoding = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": None}
    else:
        decoding = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    # Every row keeps at least one token of its own after the shared prefix.
    shared = min(common_prefix_length(ids), min(lengths, default=1) - 1)
    cache = None
    if prefix_cache and shared >= MIN_SHARED_PREFIX:
        from transformers import DynamicCache

        cache = DynamicCache()
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids[0][:shared]], device=device), past_key_values=cache)
    else:
        shared = 0

    def run(idx: list[int]) -> dict[int, dict[str, Any]]:
        own = [ids[i][shared:] for i in idx]
        width = max(len(x) for x in own)
        rows = [ids[idx[0]][:shared] + [pad] * (width - len(x)) + x for x in own]
        mask = [[1] * shared + [0] * (width - len(x)) + [1] * len(x) for x in own]
        kwargs: dict[str, Any] = {}
        if cache is not None:
            batch_cache = copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(len(idx) * samples)
            kwargs["past_key_values"] = batch_cache
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.tensor(rows, device=device),
                attention_mask=torch.tensor(mask, device=device),
                max_new_tokens=max_new_tokens,
                num_return_sequences=samples,
                pad_token_id=pad,
                **stopping,
                **decoding,
                **kwargs,
            )
        new = out[:, shared + width :].tolist()
        done = {}
        for row, i in enumerate(idx):
            texts, reasons, n_new = [], [], 0
            for tokens in new[row * samples : (row + 1) * samples]:
                # Up to and including the first end-of-sequence; the rest is padding.
                first = next((k for k, t in enumerate(tokens) if t in stop_ids), None)
                end = len(tokens) if first is None else first + 1
                text = tokenizer.decode(tokens[:end], skip_special_tokens=True)
                text, reason = cut_at_stop(text, stop or [], ended=first is not None)
                texts.append(text.strip())
                reasons.append(reason)
                n_new += end
            done[i] = {
                "outputs": texts,
                "stop_reasons": reasons,
                "n_prompt_tokens": lengths[i],
                "n_new_tokens": n_new,
            }
        return done

    def run_or_split(idx: list[int]) -> None:
        try:
            done = run(idx)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(idx) == 1:
                raise RuntimeError(
                    f"out of memory generating a single prompt of {lengths[idx[0]]} tokens"
                    f" (+{max_new_tokens} new): the model does not fit this GPU at this length"
                ) from exc
            stats["oom_retries"] += 1
            log.warning("out of memory at batch %d: retrying as two of %d", len(idx), len(idx) // 2)
            half = len(idx) // 2
            run_or_split(idx[:half])
            run_or_split(idx[half:])
            return
        stats["largest_batch"] = max(stats["largest_batch"], len(idx))
        stats["batches"] += 1
        for i, result in done.items():
            results[i] = result
        if on_batch is not None:
            on_batch(done)
        if progress is not None:
            progress.update(len(idx))
            n_new = sum(r["n_new_tokens"] for r in done.values())
            progress.set_postfix_str(f"{n_new} new tokens in last batch", refresh=False)

    for idx in plan_batches(lengths, max_new_tokens, batch_size, batch_tokens):
        run_or_split(idx)
    return [r for r in results if r is not None]


def cut_at_stop(text: str, stop: list[str], *, ended: bool) -> tuple[str, str]:
    """``text`` before its first stop string, and why generation stopped: ``stop_string``,
    ``end_of_turn`` (an end-of-sequence or end-of-turn token, ``ended``) or ``length``."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    if hits:
        return text[: min(hits)], "stop_string"
    return text, "end_of_turn" if ended else "length"


def read_partial(path: Path) -> dict[str, dict[str, Any]]:
    """Finished generations of an interrupted run, by item key; a torn last line (the job was
    killed while writing it) is ignored."""
    found: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return found
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "key" in record and "generation" in record:
                found[record["key"]] = record["generation"]
    return found


def run_inference(
    *,
    model_dir: str | Path,
    method: dict[str, Any],
    dataset: str,
    data_path: str | Path,
    prompt_method: str,
    out_path: str | Path,
    run_path: str | Path,
    pool_path: str | Path | None = None,
    batch_size: int = 8,
    batch_tokens: int | None = None,
    max_new_tokens: int | None = None,
    seed: int = 0,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    sc_samples: int = 5,
    sc_temperature: float = 0.7,
    cache_dir: str | Path | None = None,
    backend: str = "transformers",
) -> dict[str, Any]:
    """Generate and record the raw outputs for one (model, method, dataset, prompt).

    The generations file holds, per item, the prompt and its hash, the raw output(s), why
    generation stopped and the token counts; it is not parsed here. Parsing is its own step
    (:mod:`biomedquant.parsing`, run by :mod:`biomedquant.evaluation`), so a parser fix
    re-reads stored outputs and never costs a GPU-hour.

    Generations come, in this order, from the generation cache (``cache_dir``; None turns it
    off), from the partial file of an interrupted run of this job (``<out>.partial``), and only
    then from the model, which is not even loaded when nothing is left to generate. Every
    finished batch is appended to the partial file (flushed and synced) and to the cache; the
    predictions file appears, atomically, only when every item is done.
    """
    import torch
    from transformers import AutoTokenizer, set_seed

    from biomedquant.generation_cache import GenerationCache, entry_key, model_key

    set_seed(seed)
    spec = get_dataset(dataset)
    task = get_task(spec.task)
    pm = get_prompt_method(prompt_method)
    records = read_jsonl(data_path)
    pool = read_jsonl(pool_path) if pool_path else None
    if pool is not None and Path(pool_path).resolve() == Path(data_path).resolve():
        raise ValueError(f"few-shot pool {pool_path} is the evaluated split itself")
    backend = engine_for(method, backend)  # gguf files run in llama.cpp
    backend_module = get_backend(backend)
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, padding_side="left", trust_remote_code=trusts_remote_code(model_dir)
    )
    build = builder(
        prompt_method, tokenizer, pool=pool, spec=spec, seed=seed, system_prompt=system_prompt
    )
    prompts = [build(spec, rec) for rec in records]
    default_limit = task.cot_max_new_tokens if pm.chain_of_thought else task.max_new_tokens
    limit = max_new_tokens or default_limit
    samples = sc_samples if pm.self_consistency else 1
    # Stop strings only for the plain prompt format: a chat template's own end-of-turn token
    # ends the answer, and its generation prompt may end with a newline that, followed by an
    # echoed "Sentence:", would look like a next example's header.
    stops = [] if getattr(tokenizer, "chat_template", None) else stop_strings(spec)
    decoding = {
        "samples": samples,
        "temperature": sc_temperature if samples > 1 else 0.0,
        "max_new_tokens": limit,
        "seed": seed if samples > 1 else None,
    }
    if stops:  # part of the generation's identity (cache key) only when it changes it
        decoding["stop"] = stops
    # The model key is part of every item key, so neither the cache nor the partial file of an
    # interrupted run can hand over generations of another model (say, a requantized one).
    mkey = model_key(model_dir, method, backend)
    keys = [entry_key(p, {**decoding, "model": mkey}) for p in prompts]

    gens: dict[str, dict[str, Any]] = {}
    cache = None
    if cache_dir:
        cache = GenerationCache(cache_dir, mkey)
        gens.update(cache.get_many(keys))
    from_cache = sum(k in gens for k in set(keys))
    partial_path = Path(f"{out_path}.partial")
    resumed = {k: v for k, v in read_partial(partial_path).items() if k not in gens}
    gens.update(resumed)
    todo = sorted({keys[i]: i for i in range(len(keys)) if keys[i] not in gens}.values())
    log.info(
        "%s %s: %d items, %d from the cache, %d from an interrupted run, %d to generate",
        dataset,
        prompt_method,
        len(records),
        from_cache,
        len(resumed),
        len(todo),
    )

    load_info: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    gen_seconds = 0.0
    if todo:
        model, tokenizer, load_info = backend_module.load(model_dir, method)
        partial_path.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(partial_path, "a", encoding="utf-8") as partial,
            _progress(len(todo), dataset) as bar,
        ):

            def persist(done: dict[int, dict[str, Any]]) -> None:
                batch = {keys[todo[j]]: gen for j, gen in done.items()}
                for key, gen in batch.items():
                    partial.write(json.dumps({"key": key, "generation": gen}) + "\n")
                partial.flush()
                os.fsync(partial.fileno())
                if cache is not None:
                    cache.put_many(batch)
                gens.update(batch)

            start = time.time()
            backend_module.generate(
                model,
                tokenizer,
                [prompts[i] for i in todo],
                max_new_tokens=limit,
                batch_size=batch_size,
                batch_tokens=batch_tokens,
                samples=samples,
                temperature=decoding["temperature"],
                stop=stops,
                on_batch=persist,
                stats=stats,
                progress=bar,
            )
            gen_seconds = time.time() - start
    if cache is not None:
        cache.close()

    preds = []
    for rec, prompt, key in zip(records, prompts, keys, strict=True):
        gen = gens[key]
        reasons = gen.get("stop_reasons") or [None] * len(gen["outputs"])
        output = gen["outputs"][0] if samples == 1 else gen["outputs"]
        pred = {
            "id": rec["id"],
            "prompt_sha256": sha256_text(prompt),
            "prompt": prompt,
            "output": output,
            "stop_reason": reasons[0] if samples == 1 else reasons,
            "n_prompt_tokens": gen["n_prompt_tokens"],
            "n_new_tokens": gen["n_new_tokens"],
        }
        preds.append(pred)
    write_jsonl(out_path, preds)
    n_generated = len(todo)
    new_tokens = sum(gens[keys[i]]["n_new_tokens"] for i in todo)
    cuda = torch.cuda.is_available()
    model_prov_path = Path(model_dir) / "provenance.json"
    run = {
        "dataset": dataset,
        "prompt_method": prompt_method,
        "method": method,
        "backend": backend,
        "model_dir": str(model_dir),
        "model_weights": read_json(model_prov_path) if model_prov_path.exists() else None,
        "data_path": str(data_path),
        "fewshot_pool": str(pool_path) if pool_path else None,
        "n_items": len(preds),
        "stop_reason": dict(
            Counter(
                str(r)
                for p in preds
                for r in (
                    p["stop_reason"] if isinstance(p["stop_reason"], list) else [p["stop_reason"]]
                )
            )
        ),
        "n_generated": n_generated,
        "n_from_cache": from_cache,
        "n_resumed": len(resumed),
        "generation_cache": str(cache.path) if cache is not None else None,
        "batch_size": batch_size,
        "batch_tokens": batch_tokens,
        **stats.pop("engine_metrics", {}),
        **{f"batch_{k}": v for k, v in stats.items()},
        "max_new_tokens": limit,
        "decoding": decoding,
        "seed": seed,
        **load_info,
        "generate_seconds": round(gen_seconds, 3),
        "items_per_second": round(n_generated / gen_seconds, 4) if gen_seconds else None,
        "new_tokens": new_tokens,
        "new_tokens_per_second": round(new_tokens / gen_seconds, 3) if gen_seconds else None,
        "peak_gpu_allocated_bytes": torch.cuda.max_memory_allocated() if cuda and todo else None,
        "peak_gpu_reserved_bytes": torch.cuda.max_memory_reserved() if cuda and todo else None,
        "peak_host_rss_bytes": peak_host_rss_bytes(),
        "hardware": hardware(),
        "versions": versions(),
        "written_at": now(),
    }
    write_json(run_path, run)
    partial_path.unlink(missing_ok=True)
    log.info(
        "%s %s: %d items (%d generated in %.1fs: %.2f items/s, %.1f new tokens/s)",
        dataset,
        prompt_method,
        len(preds),
        n_generated,
        gen_seconds,
        run["items_per_second"] or 0,
        run["new_tokens_per_second"] or 0,
    )
    return run


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Any]:
    """A tqdm bar on stderr (the job log): items, items/s and the last batch's tokens."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="item", mininterval=5, file=sys.stderr)
    try:
        yield bar
    finally:
        bar.close()


BACKENDS = ("transformers", "vllm", "llama_cpp")


def get_backend(name: str) -> Any:
    """The module that loads and generates for ``name``: this one, or the vLLM adapter, which
    is imported only when chosen (vLLM needs CUDA and is not a dependency)."""
    if name == "transformers":
        return sys.modules[__name__]
    if name == "vllm":
        from biomedquant import vllm_backend

        return vllm_backend
    if name == "llama_cpp":
        from biomedquant import llama_cpp_engine

        return llama_cpp_engine
    raise ValueError(f"unknown inference backend {name!r} (backends: {', '.join(BACKENDS)})")


def load(model_dir: str | Path, method: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """The backend interface's loader (see :func:`get_backend`)."""
    return load_model(model_dir, method)
