#!/usr/bin/env python
"""GPU check: memory and speed of 16-bit, GPTQ 4-bit and bitsandbytes NF4 on a CUDA GPU.

Runs offline on any machine with a CUDA GPU: it builds a random-weight Llama-architecture model
of about 1.1B parameters (TinyLlama's shape) from a config, with a tokenizer trained here on the
package's calibration text, then goes through the package's own stages (fetch from a local
folder, GPTQ quantization, loading, batched generation) and prints one table:

    method | weights GB (measured / estimated) | peak GPU allocated / reserved | tokens/s at
    batch 1 and batch 32

Random weights never emit end-of-sequence, so every row generates exactly ``--new-tokens``
tokens: throughput figures compare like for like. Usage::

    python scripts/gpu_check.py [--out results.json] [--new-tokens 64]

Finishes in a few minutes on an H100-class GPU (GPTQ of the 1.1B model is most of it).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from biomedquant.common.files import write_json
from biomedquant.inference.engines.transformers import generate, load_model
from biomedquant.models.fetch import fetch_model
from biomedquant.models.shapes import ModelShape
from biomedquant.planning.estimator import weight_bytes
from biomedquant.quantization import quantize_model
from biomedquant.quantization.calibration import generic_calibration_texts

# TinyLlama-1.1B's shape: 22 layers, hidden 2048, MLP 5632, 32 heads, 4 KV heads.
# --smoke uses SMOKE_SHAPE instead, and runs on a CPU too: a check of the script itself.
SHAPE = {
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}
SMOKE_SHAPE = {
    **SHAPE,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 4096,
}
METHODS = {
    "none": {"kind": "none"},
    "gptq-w4g128": {
        "kind": "gptq",
        "bits": 4,
        "group_size": 128,
        "desc_act": False,
        "sym": True,
        "damp_percent": 0.1,
        # 6,144 tokens: above the widest layer's input (intermediate 5,632), within the
        # generic text (about 7,900 tokens of this script's tokenizer)
        "calibration": {"source": "generic", "n_samples": 12, "seq_len": 512},
    },
    "bnb-nf4": {"kind": "bnb-nf4", "double_quant": True},
    "bnb-int8": {"kind": "bnb-int8"},
}


def build_source(folder: Path, shape: dict[str, Any]) -> None:
    """A random-weight 16-bit Llama with a BPE tokenizer trained on the calibration text."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=4000, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator(generic_calibration_texts(), trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    config = LlamaConfig(
        **shape,
        max_position_embeddings=4096,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float16)
    model.save_pretrained(folder, safe_serialization=True)
    hf_tok.save_pretrained(folder)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def throughput(model: Any, tok: Any, batch: int, new_tokens: int) -> float:
    """Generated tokens per second for ``batch`` prompts decoded together."""
    texts = generic_calibration_texts()
    prompts = [" ".join(texts[i % len(texts)].split()[:40]) for i in range(batch)]
    generate(model, tok, prompts[:1], max_new_tokens=4, batch_size=1)  # warm-up
    _sync()
    start = time.time()
    out = generate(model, tok, prompts, max_new_tokens=new_tokens, batch_size=batch)
    _sync()
    return sum(r["n_new_tokens"] for r in out) / (time.time() - start)


def _peak(stat: str) -> float | None:
    import torch

    return getattr(torch.cuda, stat)() / 1e9 if torch.cuda.is_available() else None


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="also write the rows as JSON here")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--smoke", action="store_true", help="a tiny model, CPU allowed")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("no CUDA GPU: this check measures GPU memory and speed (--smoke runs on a CPU)")
        return 2
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    shape_cfg = SMOKE_SHAPE if args.smoke else SHAPE
    shape = ModelShape.from_config(shape_cfg)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        build_source(work / "random", shape_cfg)
        fetch_model("random-1b", {"source": "local", "path": str(work / "random")}, work / "none")
        for name, method in METHODS.items():
            folder = work / "none"
            quant_seconds = None
            if method["kind"] == "gptq":
                prov = quantize_model(work / "none", work / name, method, seed=0)
                folder, quant_seconds = work / name, prov["quantize_seconds"]
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            model, tok, info = load_model(folder, method)
            b1 = throughput(model, tok, 1, args.new_tokens)
            b32 = throughput(model, tok, 32, args.new_tokens)
            rows.append(
                {
                    "method": name,
                    "params_b": round(shape.params / 1e9, 3),
                    "weights_gb": info["weights_bytes"] / 1e9,
                    "estimated_weights_gb": weight_bytes(shape, method) / 1e9,
                    "peak_allocated_gb": _peak("max_memory_allocated"),
                    "peak_reserved_gb": _peak("max_memory_reserved"),
                    "tokens_per_s_batch1": b1,
                    "tokens_per_s_batch32": b32,
                    "load_seconds": info["load_seconds"],
                    "kernel": info.get("quant_kernel"),
                    "quantize_seconds": quant_seconds,
                }
            )
            del model
    print(f"device: {device}, model: random Llama, {rows[0]['params_b']}B parameters")
    head = (
        f"{'method':<13}{'weights GB':>11}{'(est.)':>8}{'peak alloc':>12}{'reserved':>10}"
        f"{'tok/s b1':>10}{'tok/s b32':>11}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['method']:<13}{r['weights_gb']:>11.3f}{r['estimated_weights_gb']:>8.3f}"
            f"{r['peak_allocated_gb'] or 0:>12.3f}{r['peak_reserved_gb'] or 0:>10.3f}"
            f"{r['tokens_per_s_batch1']:>10.1f}{r['tokens_per_s_batch32']:>11.1f}"
        )
    if args.out:
        write_json(args.out, {"device": device, "shape": shape_cfg, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
