"""Quantization methods: turn the fetched 16-bit model into a cached quantized artifact.

Method kinds (the ``kind`` key of a method in the config):

* ``none``: the 16-bit model as fetched; no artifact of its own.
* ``gptq``: GPTQ post-training quantization through transformers' ``GPTQConfig`` with optimum
  and gptqmodel as the backend. (AutoGPTQ, which older guides use, is archived, cannot quantize
  without CUDA and needs transformers 4.x; transformers 5 routes GPTQ through gptqmodel.)
* ``bnb-int8`` / ``bnb-nf4``: bitsandbytes, quantized while the 16-bit model loads (no
  artifact; see :func:`bnb_config`). NF4 uses double quantization and 16-bit compute.

The GPTQ artifact is a safetensors folder with ``quantize_config.json`` and ``provenance.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from biomedquant.datasets.readers import Record, read_source
from biomedquant.datasets.registry import get_dataset
from biomedquant.io import (
    atomic_dir,
    dir_size,
    read_json,
    read_jsonl,
    sha256_text,
    sha256_tree,
    write_json,
)
from biomedquant.models import trusts_remote_code
from biomedquant.provenance import now, peak_host_rss_bytes, versions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MethodKind:
    """What a method kind needs from the pipeline."""

    artifact: bool  # quantized once into a cached folder (else: the fetched 16-bit model)
    load_time: bool  # quantized while loading for inference
    description: str


METHOD_KINDS: dict[str, MethodKind] = {
    "none": MethodKind(False, False, "the model in its stored 16-bit dtype (the baseline)"),
    "gptq": MethodKind(True, False, "GPTQ post-training quantization (optimum + gptqmodel)"),
    "bnb-int8": MethodKind(False, True, "bitsandbytes LLM.int8(), quantized at load time"),
    "bnb-nf4": MethodKind(False, True, "bitsandbytes NF4 (4-bit), quantized at load time"),
    "awq": MethodKind(True, False, "AWQ 4-bit (gptqmodel; quantizing needs a CUDA GPU)"),
    "gguf": MethodKind(True, False, "llama.cpp GGUF file (Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0)"),
    "fp8": MethodKind(False, True, "FP8 E4M3 weights at load time (GPUs of compute 8.9+)"),
}


def method_kind(method: dict[str, Any]) -> MethodKind:
    kind = method.get("kind")
    if kind not in METHOD_KINDS:
        raise ValueError(f"unknown method kind {kind!r} (kinds: {', '.join(METHOD_KINDS)})")
    return METHOD_KINDS[kind]


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


# gptqmodel silently drops calibration texts of this many tokens or fewer.
MIN_CALIBRATION_TOKENS = 11


def generic_calibration_texts() -> list[str]:
    """Generic English paragraphs written for this project (one per line)."""
    text = resources.files("biomedquant").joinpath("calibration/generic_en.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def record_text(rec: Record) -> str:
    """The input text of a benchmark record (what a prompt shows the model), without labels."""
    if "tokens" in rec:
        return " ".join(rec["tokens"])
    parts = [rec.get("context", ""), rec.get("question", ""), rec.get("text", "")]
    return "\n".join(p for p in parts if p)


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def in_domain_texts(
    pools: dict[str, str | Path], test_raws: dict[str, str | Path], n_samples: int, seed: int
) -> tuple[list[str], dict[str, Any]]:
    """Calibration texts drawn from the benchmarks' train (or dev) splits, never from test.

    ``pools`` maps dataset -> prepared train/dev JSON Lines; ``test_raws`` maps dataset -> the
    downloaded *full* test file, so the check covers every test item, not just the evaluated
    sample. A pool text that equals a test text (after whitespace and case folding) is left
    out and counted; the result is then checked again to hold no test text at all.
    """
    test_texts: set[str] = set()
    for name, raw in test_raws.items():
        reader = get_dataset(name).files["test"].reader
        test_texts.update(_normalized(record_text(r)) for r in read_source(raw, reader))
    rng = random.Random(seed)
    per_dataset: dict[str, list[str]] = {}
    n_overlap = 0
    for name in sorted(pools):
        texts = [record_text(r) for r in read_jsonl(pools[name])]
        kept = [t for t in texts if _normalized(t) not in test_texts]
        n_overlap += len(texts) - len(kept)
        rng.shuffle(kept)
        per_dataset[name] = kept
    # Round-robin over datasets, so every task is represented whatever n_samples is.
    chosen: list[str] = []
    while len(chosen) < n_samples and any(per_dataset.values()):
        for name in sorted(per_dataset):
            if per_dataset[name] and len(chosen) < n_samples:
                chosen.append(per_dataset[name].pop())
    leaked = [t for t in chosen if _normalized(t) in test_texts]
    if leaked:  # cannot happen after the filter; a guard against future edits
        raise AssertionError(f"{len(leaked)} calibration text(s) are test items")
    info = {"datasets": sorted(pools), "n_test_overlap_removed": n_overlap}
    if n_overlap:
        log.warning("calibration: %d train/dev text(s) equal a test text, left out", n_overlap)
    return chosen, info


def calibration_texts(
    calib: dict[str, Any],
    tokenizer: Any,
    *,
    pools: dict[str, str | Path] | None = None,
    test_raws: dict[str, str | Path] | None = None,
    seed: int = 0,
) -> tuple[list[str], dict[str, Any]]:
    """Select calibration texts, cut each to ``seq_len`` tokens, and filter (and count) those
    too short for the quantizer instead of letting it drop them silently.

    ``source`` is ``generic`` (English paragraphs shipped with the package) or ``in_domain``
    (benchmark train/dev texts, see :func:`in_domain_texts`; needs ``pools`` and
    ``test_raws``). Quantization time grows with the calibration tokens (n_samples x seq_len).
    """
    source = calib.get("source", "generic")
    n_samples = int(calib.get("n_samples", 64))
    seq_len = int(calib.get("seq_len", 256))
    extra: dict[str, Any] = {}
    if source == "generic":
        texts = generic_calibration_texts()[:n_samples]
    elif source == "in_domain":
        if not pools or test_raws is None:
            raise ValueError("in_domain calibration needs the train/dev pools and test files")
        texts, extra = in_domain_texts(pools, test_raws, n_samples, seed)
    else:
        raise ValueError(f"calibration source {source!r} is unknown (generic, in_domain)")
    kept, n_tokens = [], 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= MIN_CALIBRATION_TOKENS:
            kept.append(text if len(ids) <= seq_len else tokenizer.decode(ids[:seq_len]))
            n_tokens += min(len(ids), seq_len)
    if not kept:
        raise ValueError("no calibration text is long enough for GPTQ")
    info = {
        "source": source,
        "n_requested": n_samples,
        "n_available": len(texts),
        "n_too_short": len(texts) - len(kept),
        "n_used": len(kept),
        "seq_len": seq_len,
        "n_tokens": n_tokens,
        "sha256": sha256_text(json.dumps(kept)),
        **extra,
    }
    if info["n_available"] < n_samples:
        log.warning("calibration: %d samples requested, %d available", n_samples, len(texts))
    if info["n_too_short"]:
        log.warning("calibration: %d text(s) too short for GPTQ, left out", info["n_too_short"])
    return kept, info


@contextlib.contextmanager
def recording_layer_losses() -> Iterator[list[dict[str, Any]]]:
    """Collect GPTQ's per-layer quantization loss while the block is active.

    gptqmodel computes each layer's loss (the Hessian-weighted squared error of the quantized
    weights) and returns it from ``GPTQ.fasterquant``, but optimum keeps only the scales and
    zeros. This wraps that method for the duration, and names each loss after the layer that
    optimum announces in its log just before quantizing it.
    """
    from gptqmodel.quantization import GPTQ

    losses: list[dict[str, Any]] = []
    current: dict[str, str | None] = {"layer": None}
    pattern = re.compile(r"Quantizing (\S+) in block (\d+)/(\d+)")

    class _Names(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            m = pattern.search(record.getMessage())
            if m:
                current["layer"] = f"{int(m.group(2)) - 1}.{m.group(1)}"

    original = GPTQ.fasterquant

    def fasterquant(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        loss = out[4] if len(out) > 4 else None
        losses.append(
            {
                "layer": current["layer"],
                "loss": loss if isinstance(loss, (int, float)) else str(loss),
                "damp_percent": out[5] if len(out) > 5 else None,
            }
        )
        return out

    quant_log = logging.getLogger("optimum.gptq.quantizer")
    handler, level = _Names(level=logging.INFO), quant_log.level
    quant_log.addHandler(handler)
    quant_log.setLevel(logging.INFO)
    GPTQ.fasterquant = fasterquant
    try:
        yield losses
    finally:
        GPTQ.fasterquant = original
        quant_log.removeHandler(handler)
        quant_log.setLevel(level)


def gptq_params(method: dict[str, Any]) -> dict[str, Any]:
    """The GPTQ parameters of a method entry, with the schema's defaults."""
    return {
        "bits": int(method["bits"]),
        "group_size": int(method.get("group_size", 128)),
        "desc_act": bool(method.get("desc_act", False)),
        "sym": bool(method.get("sym", True)),
        "damp_percent": float(method.get("damp_percent", 0.01)),
    }


def quantize_model(
    source_dir: str | Path,
    out_dir: str | Path,
    method: dict[str, Any],
    *,
    seed: int = 0,
    pools: dict[str, str | Path] | None = None,
    test_raws: dict[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Quantize the 16-bit model in ``source_dir`` with ``method``; write the artifact.

    ``pools`` and ``test_raws`` (dataset -> file) are needed for in-domain calibration.
    """
    kind = method.get("kind")
    if not method_kind(method).artifact:
        raise ValueError(f"method kind {kind!r} has no quantization step (only 'gptq' has one)")
    if kind in ("gguf", "awq"):  # their own modules: llama.cpp's quantizer, gptqmodel's AWQ
        from biomedquant import awq_quant, gguf_quant

        run = gguf_quant.quantize_gguf if kind == "gguf" else awq_quant.quantize_awq
        return run(source_dir, out_dir, method, seed=seed, pools=pools, test_raws=test_raws)
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(1, os.cpu_count() or 1)))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTQConfig

    torch.manual_seed(seed)
    start = time.time()
    source_dir = Path(source_dir)
    source_prov = read_json(source_dir / "provenance.json")
    trusted = trusts_remote_code(source_dir)
    tokenizer = AutoTokenizer.from_pretrained(source_dir, trust_remote_code=trusted)
    texts, calib_info = calibration_texts(
        method.get("calibration", {}), tokenizer, pools=pools, test_raws=test_raws, seed=seed
    )
    params = gptq_params(method)
    qconfig = GPTQConfig(
        **params,
        dataset=texts,
        tokenizer=tokenizer,
        model_seqlen=calib_info["seq_len"],
    )
    # Load in 16-bit, so the parts GPTQ leaves alone (embeddings, norms, lm_head) stay 16-bit.
    dtype = getattr(torch, source_prov.get("dtype", "float16"))
    device_map = "auto" if torch.cuda.is_available() else "cpu"
    with recording_layer_losses() as layer_losses:
        model = AutoModelForCausalLM.from_pretrained(
            source_dir,
            dtype=dtype,
            quantization_config=qconfig,
            device_map=device_map,
            trust_remote_code=trusted,
        )
    quant_seconds = time.time() - start
    numeric = [x["loss"] for x in layer_losses if isinstance(x["loss"], (int, float))]
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # The calibration texts are recorded by hash in the provenance, not inlined.
        config = read_json(tmp / "config.json")
        qc = config.get("quantization_config", {})
        qc["dataset"] = None
        write_json(tmp / "config.json", config)
        write_json(tmp / "quantize_config.json", qc)
        prov = {
            "method": method,
            "gptq_params": params,
            "source_model": {
                k: source_prov.get(k)
                for k in ("model", "source", "spec", "revision", "weights_sha256")
            },
            "calibration": calib_info,
            "seed": seed,
            "device": device_map,
            "quantize_seconds": round(quant_seconds, 2),
            "peak_host_rss_bytes": peak_host_rss_bytes(),
            "peak_gpu_allocated_bytes": (
                torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
            ),
            "size_bytes": dir_size(tmp),
            "weights_sha256": sha256_tree(tmp),
            "source_size_bytes": source_prov.get("size_bytes"),
            "layer_losses": layer_losses,
            "layer_loss_summary": {
                "n_layers": len(layer_losses),
                "mean": sum(numeric) / len(numeric) if numeric else None,
                "max": max(numeric) if numeric else None,
            },
            "versions": versions(),
            "written_at": now(),
        }
        write_json(tmp / "provenance.json", prov)
    return prov
