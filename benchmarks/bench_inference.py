#!/usr/bin/env python
"""Benchmark: the batched engine against one-by-one generation, on the demo model.

For every demo dataset (zero-shot prompts, the demo config's per-task caps on new tokens), the
same items are generated (1) one prompt at a time with plain ``model.generate`` and (2) by the
engine (:func:`biomedquant.inference.engines.transformers.generate`: length-sorted batches, left
padding, shared prefix cache) at batch sizes 8 and 32. Prints items/s, generated tokens/s,
the speed-up over one-by-one, and whether the greedy outputs are identical. A benchmark, not a
test: it asserts nothing and its numbers depend on the machine.

    python benchmarks/bench_inference.py [--model-dir resources/models/smollm2_135m/none]
        [--datasets hoc medqa ...] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from biomedquant.common.files import read_jsonl
from biomedquant.datasets.download import download_split
from biomedquant.datasets.prepare import prepare_split
from biomedquant.datasets.registry import DATASETS, get_dataset
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.engines.transformers import generate, load_model
from biomedquant.inference.prompting import builder
from biomedquant.models.fetch import fetch_model

REPO = Path(__file__).resolve().parents[1]


def one_by_one(model: Any, tok: Any, prompts: list[str], max_new_tokens: int) -> list[dict]:
    """The loop a first script would write: one plain greedy ``generate`` call per prompt."""
    import torch

    results = []
    eos = model.generation_config.eos_token_id
    stop = set(eos if isinstance(eos, list) else [eos]) | {tok.pad_token_id}
    for prompt in prompts:
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                **ids,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        end = next((k + 1 for k, t in enumerate(new) if t in stop), len(new))
        results.append(
            {
                "outputs": [tok.decode(new[:end], skip_special_tokens=True).strip()],
                "n_prompt_tokens": ids["input_ids"].shape[1],
                "n_new_tokens": end,
            }
        )
    return results


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", default=str(REPO / "resources/models/smollm2_135m/none"))
    p.add_argument("--datasets", nargs="*", default=list(DATASETS))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())
    decoding = Decoding.from_config(demo)
    with tempfile.TemporaryDirectory() as work:
        model_dir = Path(args.model_dir)
        if not (model_dir / "config.json").exists():
            print(f"{model_dir} missing: fetching the demo model")
            model_dir = Path(work) / "model"
            fetch_model("smollm2_135m", demo["models"]["smollm2_135m"], model_dir)
        model, tok, info = load_model(model_dir, {"kind": "none"})
        jobs = []
        for name in args.datasets:
            spec = get_dataset(name)
            raw, data = Path(work) / f"{name}.raw", Path(work) / f"{name}.jsonl"
            download_split(name, "test", "demo", raw)
            prepare_split(name, "test", raw, data)
            build = builder("zero-shot", tok, spec=spec)
            prompts = [build(spec, r) for r in read_jsonl(data)]
            jobs.append((prompts, decoding.max_new_tokens_for(spec.task, "zero-shot")))
        n_items = sum(len(p) for p, _ in jobs)
        print(
            f"model {model_dir.name} ({info['compute_dtype']} on {info['device']}, "
            f"{torch.get_num_threads()} threads), {len(jobs)} datasets, {n_items} items"
        )
        rows, reference = [], None
        for label, batch in [("one-by-one", 0), ("engine b=8", 8), ("engine b=32", 32)]:
            outputs, new_tokens, start = [], 0, time.time()
            for prompts, cap in jobs:
                if batch == 0:
                    res = one_by_one(model, tok, prompts, cap)
                else:
                    res = generate(model, tok, prompts, max_new_tokens=cap, batch_size=batch)
                outputs += [r["outputs"] for r in res]
                new_tokens += sum(r["n_new_tokens"] for r in res)
            seconds = time.time() - start
            reference = reference if reference is not None else outputs
            rows.append(
                (label, seconds, n_items / seconds, new_tokens / seconds, outputs == reference)
            )
        base = rows[0][2]
        print(
            f"{'run':<13}{'seconds':>9}{'items/s':>9}{'new tok/s':>11}{'speed-up':>10}  identical"
        )
        for label, seconds, ips, tps, same in rows:
            print(f"{label:<13}{seconds:>9.1f}{ips:>9.2f}{tps:>11.1f}{ips / base:>9.2f}x  {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
