"""Batched greedy generation with transformers, one prediction record per dataset item.

Items are sorted by prompt length before batching (less padding), padded on the left (so every
row's generation starts right after its prompt), decoded greedily with the KV cache and stopped
at the end-of-sequence token. Predictions are written in the dataset's order.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from biomedquant.datasets.registry import get_dataset
from biomedquant.io import read_json, read_jsonl, sha256_text, write_json, write_jsonl
from biomedquant.prompting import DEFAULT_SYSTEM_PROMPT, builder, get_prompt_method
from biomedquant.provenance import hardware, now, peak_host_rss_bytes, versions
from biomedquant.tasks import get_task

log = logging.getLogger(__name__)


def load_model(model_dir: str | Path, method: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Load an artifact for generation; returns (model, tokenizer, facts about the load).

    On a GPU the model runs in its stored 16-bit dtype. On a CPU, 16-bit matrix products are
    slow, so the model computes in float32 there (recorded as ``compute_dtype``): the weights
    of an unquantized model are upcast, GPTQ layers dequantize to float32. Memory figures from
    a CPU run therefore describe the CPU run, not a GPU deployment.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.time()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    dtype = "auto" if cuda else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=dtype, device_map="auto" if cuda else "cpu"
    )
    model.eval()
    info = {
        "device": "cuda" if cuda else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "compute_dtype": str(model.dtype).replace("torch.", ""),
        "load_seconds": round(time.time() - start, 3),
        "model_footprint_bytes": int(model.get_memory_footprint()),
        "gpu_allocated_after_load_bytes": torch.cuda.memory_allocated() if cuda else None,
    }
    return model, tokenizer, info


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


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    prefix_cache: bool = True,
) -> list[dict[str, Any]]:
    """Generations for ``prompts``, returned in input order.

    Greedy when ``samples == 1``; otherwise ``samples`` sampled sequences per prompt (seed
    torch before calling for reproducible samples). Each result holds ``outputs`` (one text per
    sample), ``n_prompt_tokens`` and ``n_new_tokens`` (summed over samples).

    Prompts of one run share a long prefix (system prompt, task description, few-shot
    examples). With ``prefix_cache`` the shared prefix is run through the model once and its
    key/value cache reused by every batch, so only each item's own tokens are prefilled. The
    item tokens are left-padded *after* the prefix; the attention mask hides the padding and
    position ids follow the mask, so each row sees exactly its own prompt.
    """
    import torch

    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    lengths = [len(x) for x in ids]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    results: list[dict[str, Any] | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    eos = model.generation_config.eos_token_id
    stop_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.pad_token_id}
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
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
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
                **decoding,
                **kwargs,
            )
        new = out[:, shared + width :].tolist()
        for row, i in enumerate(idx):
            texts, n_new = [], 0
            for tokens in new[row * samples : (row + 1) * samples]:
                # Up to and including the first end-of-sequence; the rest is padding.
                end = next((k + 1 for k, t in enumerate(tokens) if t in stop_ids), len(tokens))
                texts.append(tokenizer.decode(tokens[:end], skip_special_tokens=True).strip())
                n_new += end
            results[i] = {"outputs": texts, "n_prompt_tokens": lengths[i], "n_new_tokens": n_new}
    return [r for r in results if r is not None]


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
    max_new_tokens: int | None = None,
    seed: int = 0,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    sc_samples: int = 5,
    sc_temperature: float = 0.7,
) -> dict[str, Any]:
    """Generate, parse and record predictions for one (model, method, dataset, prompt)."""
    import torch
    from transformers import set_seed

    set_seed(seed)
    spec = get_dataset(dataset)
    task = get_task(spec.task)
    pm = get_prompt_method(prompt_method)
    records = read_jsonl(data_path)
    pool = read_jsonl(pool_path) if pool_path else None
    if pool is not None and Path(pool_path).resolve() == Path(data_path).resolve():
        raise ValueError(f"few-shot pool {pool_path} is the evaluated split itself")
    model, tokenizer, load_info = load_model(model_dir, method)
    build = builder(
        prompt_method, tokenizer, pool=pool, spec=spec, seed=seed, system_prompt=system_prompt
    )
    prompts = [build(spec, rec) for rec in records]
    default_limit = task.cot_max_new_tokens if pm.chain_of_thought else task.max_new_tokens
    limit = max_new_tokens or default_limit
    samples = sc_samples if pm.self_consistency else 1
    decoding = {"samples": samples, "temperature": sc_temperature if samples > 1 else 0.0}
    start = time.time()
    gens = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=limit,
        batch_size=batch_size,
        samples=samples,
        temperature=decoding["temperature"],
    )
    gen_seconds = time.time() - start
    preds = []
    for rec, prompt, gen in zip(records, prompts, gens, strict=True):
        parsed = [task.parse(text, spec, rec) for text in gen["outputs"]]
        final = task.vote(parsed) if samples > 1 else parsed[0]
        pred = {
            "id": rec["id"],
            "prompt_sha256": sha256_text(prompt),
            "prompt": prompt,
            "output": gen["outputs"][0] if samples == 1 else gen["outputs"],
            "prediction": final.prediction,
            "parse_ok": final.ok,
            "parse_status": final.status,
            "n_prompt_tokens": gen["n_prompt_tokens"],
            "n_new_tokens": gen["n_new_tokens"],
        }
        if samples > 1:
            pred["sample_predictions"] = [p.prediction for p in parsed]
            pred["sample_status"] = [p.status for p in parsed]
        preds.append(pred)
    write_jsonl(out_path, preds)
    n_new = sum(p["n_new_tokens"] for p in preds)
    cuda = torch.cuda.is_available()
    model_prov_path = Path(model_dir) / "provenance.json"
    run = {
        "dataset": dataset,
        "prompt_method": prompt_method,
        "method": method,
        "model_dir": str(model_dir),
        "model_weights": read_json(model_prov_path) if model_prov_path.exists() else None,
        "data_path": str(data_path),
        "fewshot_pool": str(pool_path) if pool_path else None,
        "n_items": len(preds),
        "n_unparsable": sum(not p["parse_ok"] for p in preds),
        "parse_status": dict(Counter(p["parse_status"] for p in preds)),
        "batch_size": batch_size,
        "max_new_tokens": limit,
        "decoding": decoding,
        "seed": seed,
        **load_info,
        "generate_seconds": round(gen_seconds, 3),
        "items_per_second": round(len(preds) / gen_seconds, 4) if gen_seconds else None,
        "new_tokens": n_new,
        "new_tokens_per_second": round(n_new / gen_seconds, 3) if gen_seconds else None,
        "peak_gpu_allocated_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "peak_gpu_reserved_bytes": torch.cuda.max_memory_reserved() if cuda else None,
        "peak_host_rss_bytes": peak_host_rss_bytes(),
        "hardware": hardware(),
        "versions": versions(),
        "written_at": now(),
    }
    write_json(run_path, run)
    log.info(
        "%s %s: %d items in %.1fs (%.2f items/s, %.1f new tokens/s), %d unparsable",
        dataset,
        prompt_method,
        len(preds),
        gen_seconds,
        run["items_per_second"] or 0,
        run["new_tokens_per_second"] or 0,
        run["n_unparsable"],
    )
    return run
