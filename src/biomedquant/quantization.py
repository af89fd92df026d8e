"""Quantization methods: turn the fetched 16-bit model into a cached quantized artifact.

Method kinds (the ``kind`` key of a method in the config):

* ``none``: the 16-bit model as fetched; no artifact of its own.
* ``gptq``: GPTQ post-training quantization through transformers' ``GPTQConfig`` with optimum
  and gptqmodel as the backend. (AutoGPTQ, which older guides use, is archived, cannot quantize
  without CUDA and needs transformers 4.x; transformers 5 routes GPTQ through gptqmodel.)
  Calibrated on ``n_samples`` windows of ``seq_len`` tokens (see
  :mod:`biomedquant.calibration`).
* ``rtn``: round-to-nearest on GPTQ's grid, no calibration (see :mod:`biomedquant.rtn`): the
  control GPTQ must beat, stored in GPTQ's format and loaded the same way.
* ``bnb-int8`` / ``bnb-nf4``: bitsandbytes, quantized while the 16-bit model loads (no
  artifact; see :func:`bnb_config`). NF4 uses double quantization and 16-bit compute.

An artifact is a safetensors folder with ``quantize_config.json`` and ``provenance.json``; the
provenance records the options the quantizer applied (read back from ``quantize_config.json``)
and a per-layer quality check against round-to-nearest on held-out text
(:mod:`biomedquant.quality`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biomedquant.calibration import (
    checked_windows,
    generic_calibration_texts,
    record_text,
)
from biomedquant.io import atomic_dir, dir_size, read_json, sha256_tree, write_json
from biomedquant.models import trusts_remote_code
from biomedquant.provenance import now, peak_host_rss_bytes, versions

__all__ = [
    "METHOD_KINDS",
    "bnb_config",
    "generic_calibration_texts",
    "method_kind",
    "quantize_model",
    "record_text",
]

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
    "rtn": MethodKind(True, False, "round-to-nearest on GPTQ's grid (the control for GPTQ)"),
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


def grid_params(method: dict[str, Any]) -> dict[str, Any]:
    """The quantization grid of a gptq or rtn method (the same grid for both)."""
    return {
        "bits": int(method["bits"]),
        "group_size": int(method.get("group_size", 128)),
        "sym": bool(method.get("sym", True)),
    }


def gptq_params(method: dict[str, Any]) -> dict[str, Any]:
    """The GPTQ parameters of a method entry, with the schema's defaults. ``damp_percent``
    0.1 is optimum's and gptqmodel's default (and the GPTQ paper's 1% of the mean diagonal
    proved too weak for small calibration sets)."""
    return {
        **grid_params(method),
        "desc_act": bool(method.get("desc_act", False)),
        "damp_percent": float(method.get("damp_percent", 0.1)),
    }


def _quantize_gptq(
    source_dir: Path,
    method: dict[str, Any],
    tokenizer: Any,
    dtype: Any,
    device_map: str,
    trusted: bool,
    seed: int,
    pools: dict[str, str | Path] | None,
    test_raws: dict[str, str | Path] | None,
) -> tuple[Any, dict[str, Any]]:
    """GPTQ through transformers: calibration windows, the rank check, then quantization."""
    from transformers import AutoModelForCausalLM, GPTQConfig

    windows, calib_info = checked_windows(
        method.get("calibration", {}),
        tokenizer,
        read_json(source_dir / "config.json"),
        pools=pools,
        test_raws=test_raws,
        seed=seed,
    )
    params = gptq_params(method)
    qconfig = GPTQConfig(
        **params,
        # Token windows, already cut: optimum tokenizes strings itself and would drop or pad.
        dataset=[{"input_ids": [w], "attention_mask": [[1] * len(w)]} for w in windows],
        tokenizer=tokenizer,
        model_seqlen=calib_info["seq_len"],
    )
    with recording_layer_losses() as layer_losses:
        model = AutoModelForCausalLM.from_pretrained(
            source_dir,
            dtype=dtype,
            quantization_config=qconfig,
            device_map=device_map,
            trust_remote_code=trusted,
        )
    numeric = [x["loss"] for x in layer_losses if isinstance(x["loss"], (int, float))]
    extra = {
        "gptq_params": params,
        "calibration": calib_info,
        "layer_losses": layer_losses,
        "layer_loss_summary": {
            "n_layers": len(layer_losses),
            "mean": sum(numeric) / len(numeric) if numeric else None,
            "max": max(numeric) if numeric else None,
        },
    }
    return model, extra


def _save(model: Any, tokenizer: Any, tmp: Path, kind: str, rtn_quantizer: Any) -> dict[str, Any]:
    """Write the artifact's weights and configs; returns the applied quantize config."""
    if kind == "rtn":
        from biomedquant.rtn import save_rtn

        save_rtn(model, rtn_quantizer, tmp)
    else:
        model.save_pretrained(tmp, safe_serialization=True)
        # The calibration windows are recorded by hash in the provenance, not inlined.
        config = read_json(tmp / "config.json")
        config.get("quantization_config", {})["dataset"] = None
        write_json(tmp / "config.json", config)
        write_json(tmp / "quantize_config.json", config.get("quantization_config", {}))
    tokenizer.save_pretrained(tmp)
    applied = read_json(tmp / "quantize_config.json")
    applied.pop("dataset", None)
    return applied


def quantize_model(
    source_dir: str | Path,
    out_dir: str | Path,
    method: dict[str, Any],
    *,
    seed: int = 0,
    pools: dict[str, str | Path] | None = None,
    test_raws: dict[str, str | Path] | None = None,
    heldout: list[str | Path] | None = None,
) -> dict[str, Any]:
    """Quantize the 16-bit model in ``source_dir`` with ``method``; write the artifact.

    ``pools`` and ``test_raws`` (dataset -> file) are needed for in-domain calibration.
    ``heldout`` (prepared test JSON Lines) is the text of the quality check; without it the
    shipped generic text serves, unless it calibrated the model (then the check is skipped).
    """
    kind = method.get("kind")
    if not method_kind(method).artifact:
        raise ValueError(f"method kind {kind!r} has no quantization step")
    if kind in ("gguf", "awq"):  # their own modules: llama.cpp's quantizer, gptqmodel's AWQ
        from biomedquant import awq_quant, gguf_quant

        run = gguf_quant.quantize_gguf if kind == "gguf" else awq_quant.quantize_awq
        return run(source_dir, out_dir, method, seed=seed, pools=pools, test_raws=test_raws)
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(1, os.cpu_count() or 1)))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    start = time.time()
    source_dir = Path(source_dir)
    source_prov = read_json(source_dir / "provenance.json")
    trusted = trusts_remote_code(source_dir)
    tokenizer = AutoTokenizer.from_pretrained(source_dir, trust_remote_code=trusted)
    # Load in 16-bit, so the parts left alone (embeddings, norms, lm_head) stay 16-bit.
    dtype = getattr(torch, source_prov.get("dtype", "float16"))
    device_map = "auto" if torch.cuda.is_available() else "cpu"
    rtn_quantizer = None
    if kind == "gptq":
        model, extra = _quantize_gptq(
            source_dir, method, tokenizer, dtype, device_map, trusted, seed, pools, test_raws
        )
    else:
        from biomedquant.rtn import rtn_quantize

        model = AutoModelForCausalLM.from_pretrained(
            source_dir, dtype=dtype, device_map=device_map, trust_remote_code=trusted
        )
        grid = grid_params(method)
        model, rtn_quantizer = rtn_quantize(model, **grid)
        extra = {"rtn_params": grid}
    quant_seconds = time.time() - start
    with atomic_dir(out_dir) as tmp:
        applied = _save(model, tokenizer, tmp, kind, rtn_quantizer)
        del model
        prov = {
            "method": method,
            "applied_quantize_config": applied,
            "source_model": {
                k: source_prov.get(k)
                for k in ("model", "source", "spec", "revision", "weights_sha256", "baseline_note")
            },
            **extra,
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
            "versions": versions(),
        }
        write_json(tmp / "provenance.json", prov)
        check_start = time.time()
        prov["quality"] = _quality(tmp, source_dir, method, heldout)
        prov["quality_seconds"] = round(time.time() - check_start, 2)
        prov["written_at"] = now()
        write_json(tmp / "provenance.json", prov)
    return prov


def _quality(
    artifact: Path, source_dir: Path, method: dict[str, Any], heldout: list[str | Path] | None
) -> dict[str, Any]:
    """The per-layer check on the artifact as saved, loaded through inference's own path."""
    from biomedquant.engines.transformers import load_model
    from biomedquant.quality import heldout_texts, quality_check

    if heldout:
        texts, what = heldout_texts(list(heldout)), "evaluated test items"
    elif method.get("calibration", {}).get("source", "generic") != "generic":
        texts, what = generic_calibration_texts(), "shipped generic English text"
    else:
        log.warning("quality check skipped: no held-out text apart from the calibration text")
        return {"summary": None, "skipped": "no held-out text given", "layers": []}
    model, tokenizer, _ = load_model(artifact, method)
    result = quality_check(model, tokenizer, source_dir, texts, grid_params(method), method["kind"])
    result["summary"]["heldout_text"] = what
    return result
