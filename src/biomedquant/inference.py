"""The inference job: one (model, method, dataset, prompting method), its raw outputs recorded.

The job builds the prompts, takes what it can from the generation cache and from the partial
file of an interrupted run, hands the rest to an engine (:mod:`biomedquant.engines`: how text
is generated is the engine's business), persists every finished batch, and writes the
generations file and its run record. Decoding settings come from one place,
:class:`biomedquant.decoding.Decoding`. Predictions are written in the dataset's order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biomedquant.datasets.registry import get_dataset
from biomedquant.decoding import Decoding
from biomedquant.engines import engine_for, get_engine
from biomedquant.engines.base import decoding_identity
from biomedquant.io import read_json, read_jsonl, sha256_text, write_json, write_jsonl
from biomedquant.models import trusts_remote_code
from biomedquant.prompting import DEFAULT_SYSTEM_PROMPT, builder, stop_strings
from biomedquant.provenance import hardware, now, peak_host_rss_bytes, versions

log = logging.getLogger(__name__)


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
    decoding: Decoding | None = None,
    seed: int = 0,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
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

    ``decoding`` (default: :class:`~biomedquant.decoding.Decoding`'s defaults) gives the new
    token cap, the self-consistency chains and the batch shape.
    """
    import torch
    from transformers import AutoTokenizer, set_seed

    from biomedquant.generation_cache import GenerationCache, entry_key, model_key

    set_seed(seed)
    decoding = decoding if decoding is not None else Decoding()
    spec = get_dataset(dataset)
    records = read_jsonl(data_path)
    pool = read_jsonl(pool_path) if pool_path else None
    if pool is not None and Path(pool_path).resolve() == Path(data_path).resolve():
        raise ValueError(f"few-shot pool {pool_path} is the evaluated split itself")
    backend = engine_for(method, backend)  # gguf files run in llama.cpp
    engine_class = get_engine(backend)
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, padding_side="left", trust_remote_code=trusts_remote_code(model_dir)
    )
    build = builder(
        prompt_method, tokenizer, pool=pool, spec=spec, seed=seed, system_prompt=system_prompt
    )
    prompts = [build(spec, rec) for rec in records]
    # Stop strings only for the plain prompt format: a chat template's own end-of-turn token
    # ends the answer, and its generation prompt may end with a newline that, followed by an
    # echoed "Sentence:", would look like a next example's header.
    stops = [] if getattr(tokenizer, "chat_template", None) else stop_strings(spec)
    sampling = decoding.sampling(spec.task, prompt_method, seed=seed, stop=stops)
    samples = sampling.samples
    identity = decoding_identity(sampling, engine_class)
    # The model key is part of every item key, so neither the cache nor the partial file of an
    # interrupted run can hand over generations of another model (say, a requantized one).
    mkey = model_key(model_dir, method, backend)
    keys = [entry_key(p, {**identity, "model": mkey}) for p in prompts]

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
        engine = engine_class.load(model_dir, method, decoding)
        load_info = engine.info
        partial_path.parent.mkdir(parents=True, exist_ok=True)
        with (
            contextlib.closing(engine),
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
            engine.generate(
                [prompts[i] for i in todo], sampling, on_batch=persist, stats=stats, progress=bar
            )
            gen_seconds = time.time() - start
    if cache is not None:
        cache.close()

    preds = []
    for rec, prompt, key in zip(records, prompts, keys, strict=True):
        gen = gens[key]
        # cache entries written before engines recorded stop reasons have none
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
        "batch_size": decoding.batch_size,
        "batch_tokens": decoding.batch_tokens,
        **stats.pop("engine_metrics", {}),
        **{f"batch_{k}": v for k, v in stats.items()},
        "max_new_tokens": sampling.max_new_tokens,
        "decoding": identity,
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
