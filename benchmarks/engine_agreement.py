#!/usr/bin/env python
"""Benchmark: greedy outputs of the llama.cpp engine against the transformers engine, on the
same GGUF weights and the same prompts.

transformers reads a GGUF file by dequantizing every tensor to float (its GGUF loader), then
computes in float32 on a CPU; llama.cpp computes on the quantized blocks directly (and
quantizes activations for its dot products). Same weights, different kernels: the outputs
need not be identical, and this prints how often they are. For every GGUF artifact given and
every dataset: items, identical raw outputs, identical parsed predictions, and the token
speed of each engine. A benchmark, not a test: it asserts nothing.

    python benchmarks/engine_agreement.py resources/models/smollm2_135m/gguf-q8_0 \\
        resources/models/smollm2_135m/gguf-q4_k_m --datasets hoc pubmedqa ncbi_disease
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from biomedquant.common.files import read_json, read_jsonl
from biomedquant.datasets.registry import get_dataset
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.engines.llama_cpp import LlamaCppEngine
from biomedquant.inference.engines.transformers import generate
from biomedquant.inference.prompting import builder
from biomedquant.tasks import get_task

REPO = Path(__file__).resolve().parents[1]


def transformers_on_gguf(folder: Path) -> tuple[object, object]:
    """The GGUF file dequantized into a transformers model (float32 on a CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file="model.gguf", dtype=torch.float32
    )
    model.eval()
    return model, tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", type=Path, help="gguf artifact folders")
    ap.add_argument("--datasets", nargs="+", default=["hoc", "pubmedqa", "ncbi_disease"])
    ap.add_argument("--data-dir", type=Path, default=REPO / "resources/datasets")
    ap.add_argument("--config", type=Path, default=REPO / "config/config.yaml")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    decoding = Decoding.from_config(yaml.safe_load(args.config.read_text()))
    total = {"items": 0, "raw": 0, "parsed": 0}
    for folder in args.artifacts:
        method = read_json(folder / "provenance.json")["method"]
        hf_model, hf_tok = transformers_on_gguf(folder)
        engine = LlamaCppEngine.load(folder, method)
        print(f"\n{folder.name} ({method.get('type')}): llama.cpp vs transformers (dequantized)")
        print(
            f"{'dataset':<14}{'items':>6}{'same raw':>10}{'same parsed':>13}"
            f"{'cpp tok/s':>11}{'hf tok/s':>10}"
        )
        for name in args.datasets:
            spec = get_dataset(name)
            task = get_task(spec.task)
            records = read_jsonl(args.data_dir / name / "test.jsonl")
            build = builder("zero-shot", hf_tok, spec=spec)
            prompts = [build(spec, rec) for rec in records]
            sampling = decoding.sampling(spec.task, "zero-shot", seed=0)
            limit = sampling.max_new_tokens
            t0 = time.time()
            cpp = engine.generate(prompts, sampling)
            t1 = time.time()
            hf = generate(hf_model, hf_tok, prompts, max_new_tokens=limit, batch_size=16)
            t2 = time.time()
            same_raw = sum(a["outputs"] == b["outputs"] for a, b in zip(cpp, hf, strict=True))
            same_parsed = sum(
                task.parse(a["outputs"][0], spec, rec).prediction
                == task.parse(b["outputs"][0], spec, rec).prediction
                for a, b, rec in zip(cpp, hf, records, strict=True)
            )
            cpp_tokens = sum(r["n_new_tokens"] for r in cpp)
            hf_tokens = sum(r["n_new_tokens"] for r in hf)
            print(
                f"{name:<14}{len(prompts):>6}{same_raw:>10}{same_parsed:>13}"
                f"{cpp_tokens / (t1 - t0):>11.1f}{hf_tokens / (t2 - t1):>10.1f}"
            )
            total["items"] += len(prompts)
            total["raw"] += same_raw
            total["parsed"] += same_parsed
        del hf_model
        engine.close()
    n = total["items"]
    if n:
        print(
            f"\noverall: {n} item generations; identical raw outputs {total['raw']} "
            f"({total['raw'] / n:.1%}), identical parsed predictions {total['parsed']} "
            f"({total['parsed'] / n:.1%})"
        )


if __name__ == "__main__":
    main()
