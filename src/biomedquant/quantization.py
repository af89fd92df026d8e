"""Quantization methods: turn the fetched 16-bit model into a cached quantized artifact.

Method kinds (the ``kind`` key of a method in the config):

* ``none``: the 16-bit model as fetched; no artifact of its own.
* ``gptq``: GPTQ post-training quantization through transformers' ``GPTQConfig`` with optimum
  and gptqmodel as the backend. (AutoGPTQ, which older guides use, is archived, cannot quantize
  without CUDA and needs transformers 4.x; transformers 5 routes GPTQ through gptqmodel.)

The artifact is a safetensors folder with ``quantize_config.json`` and ``provenance.json``.
"""

from __future__ import annotations

import logging
import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

from biomedquant.io import atomic_dir, dir_size, read_json, sha256_text, write_json
from biomedquant.provenance import now, peak_host_rss_bytes, versions

log = logging.getLogger(__name__)

METHOD_KINDS = ("none", "gptq")
# gptqmodel silently drops calibration texts of this many tokens or fewer.
MIN_CALIBRATION_TOKENS = 11


def generic_calibration_texts() -> list[str]:
    """Generic English paragraphs written for this project (one per line)."""
    text = resources.files("biomedquant").joinpath("calibration/generic_en.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def calibration_texts(calib: dict[str, Any], tokenizer: Any) -> tuple[list[str], dict[str, Any]]:
    """Select calibration texts, cut each to ``seq_len`` tokens, and filter (and count) those
    too short for the quantizer instead of letting it drop them silently.

    Quantization time grows with the number of calibration tokens (n_samples x seq_len).
    """
    source = calib.get("source", "generic")
    if source != "generic":
        raise ValueError(f"calibration source {source!r} is not supported (use 'generic')")
    n_samples = int(calib.get("n_samples", 64))
    seq_len = int(calib.get("seq_len", 256))
    texts = generic_calibration_texts()[:n_samples]
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
        "sha256": sha256_text("\n".join(kept)),
    }
    if info["n_available"] < n_samples:
        log.warning("calibration: %d samples requested, %d available", n_samples, len(texts))
    if info["n_too_short"]:
        log.warning("calibration: %d text(s) too short for GPTQ, left out", info["n_too_short"])
    return kept, info


def quantize_model(
    source_dir: str | Path, out_dir: str | Path, method: dict[str, Any], *, seed: int = 0
) -> dict[str, Any]:
    """Quantize the 16-bit model in ``source_dir`` with ``method``; write the artifact."""
    kind = method.get("kind")
    if kind != "gptq":
        raise ValueError(f"method kind {kind!r} has no quantization step (kinds: {METHOD_KINDS})")
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(1, os.cpu_count() or 1)))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTQConfig

    torch.manual_seed(seed)
    start = time.time()
    source_dir = Path(source_dir)
    source_prov = read_json(source_dir / "provenance.json")
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    texts, calib_info = calibration_texts(method.get("calibration", {}), tokenizer)
    params = {
        "bits": int(method["bits"]),
        "group_size": int(method.get("group_size", 128)),
        "desc_act": bool(method.get("desc_act", False)),
        "sym": bool(method.get("sym", True)),
        "damp_percent": float(method.get("damp_percent", 0.01)),
    }
    qconfig = GPTQConfig(
        **params,
        dataset=texts,
        tokenizer=tokenizer,
        model_seqlen=calib_info["seq_len"],
    )
    # Load in 16-bit, so the parts GPTQ leaves alone (embeddings, norms, lm_head) stay 16-bit.
    dtype = getattr(torch, source_prov.get("dtype", "float16"))
    device_map = "auto" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(
        source_dir, dtype=dtype, quantization_config=qconfig, device_map=device_map
    )
    quant_seconds = time.time() - start
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
                k: source_prov.get(k) for k in ("model", "source", "spec", "weights_sha256")
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
            "source_size_bytes": source_prov.get("size_bytes"),
            "versions": versions(),
            "written_at": now(),
        }
        write_json(tmp / "provenance.json", prov)
    return prov
