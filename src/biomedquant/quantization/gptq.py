"""``gptq`` and ``rtn`` artifacts: one checkpoint format, one quantization grid.

* ``gptq``: GPTQ post-training quantization through transformers' ``GPTQConfig`` with optimum
  and gptqmodel as the backend. (AutoGPTQ, which older guides use, is archived, cannot quantize
  without CUDA and needs transformers 4.x; transformers 5 routes GPTQ through gptqmodel.)
  Calibrated on ``n_samples`` windows of ``seq_len`` tokens (see
  :mod:`biomedquant.quantization.calibration`).
* ``rtn``: round-to-nearest on GPTQ's grid, no calibration (see
  :mod:`biomedquant.quantization.rtn`): the control GPTQ must beat, stored in GPTQ's format
  and loaded the same way.

An artifact is a safetensors folder with ``quantize_config.json`` and ``provenance.json``; the
provenance records the options the quantizer applied (read back from ``quantize_config.json``)
and a per-layer quality check against round-to-nearest on held-out text
(:mod:`biomedquant.quantization.quality`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biomedquant.common.files import atomic_dir, read_json, write_json
from biomedquant.common.provenance import now
from biomedquant.inference.engines.transformers import gpu_max_memory, usable_gpus
from biomedquant.methods.kinds import group_size
from biomedquant.quantization import SOURCE_KEYS, SourceModel, artifact_provenance
from biomedquant.quantization.calibration import checked_windows, generic_calibration_texts

log = logging.getLogger(__name__)


# What the pinned gptqmodel's ``GPTQ.fasterquant`` returns (through ``hf_quantize``), in order;
# the losses are read from it by these names (tests/quantization/test_quantization.py checks
# them against the installed source).
FASTERQUANT_RESULT = ("scale", "zero", "g_idx", "duration", "avg_loss", "damp_percent")
# The line optimum logs before quantizing each layer (optimum.gptq.quantizer), which names the
# loss that follows: "Quantizing self_attn.q_proj in block 1/30...".
LAYER_LOG = re.compile(r"Quantizing (\S+) in block (\d+)/(\d+)")


def fasterquant_field(result: tuple[Any, ...], name: str) -> Any:
    """A field of a ``fasterquant`` result by its name (None when an older result is shorter)."""
    index = FASTERQUANT_RESULT.index(name)
    return result[index] if len(result) > index else None


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

    class _Names(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            m = LAYER_LOG.search(record.getMessage())
            if m:
                current["layer"] = f"{int(m.group(2)) - 1}.{m.group(1)}"

    original = GPTQ.fasterquant

    def fasterquant(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        loss = fasterquant_field(out, "avg_loss")
        losses.append(
            {
                "layer": current["layer"],
                "loss": loss if isinstance(loss, (int, float)) else str(loss),
                "damp_percent": fasterquant_field(out, "damp_percent"),
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
        "group_size": group_size(method),
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
    source: SourceModel,
    method: dict[str, Any],
    tokenizer: Any,
    dtype: Any,
    placement: dict[str, Any],
    seed: int,
    pools: dict[str, str | Path] | None,
    test_raws: dict[str, str | Path] | None,
) -> tuple[Any, dict[str, Any]]:
    """GPTQ through transformers: calibration windows, the rank check, then quantization."""
    from transformers import AutoModelForCausalLM, GPTQConfig

    windows, calib_info = checked_windows(
        method.get("calibration", {}),
        tokenizer,
        read_json(source.dir / "config.json"),
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
            source.dir,
            dtype=dtype,
            quantization_config=qconfig,
            trust_remote_code=source.trusted,
            use_safetensors=True,
            **placement,
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
        from biomedquant.quantization.rtn import save_rtn

        save_rtn(model, rtn_quantizer, tmp)
    else:
        model.save_pretrained(tmp, safe_serialization=True)
        config = read_json(tmp / "config.json")
        quantization_config = config.get("quantization_config")
        if not isinstance(quantization_config, dict):
            # transformers writes it for every GPTQ model; without it the folder would load
            # as a 16-bit model holding packed integers
            raise RuntimeError(
                f"{tmp / 'config.json'}: transformers saved the GPTQ model without a"
                " quantization_config; the artifact would not reload as GPTQ"
            )
        # The calibration windows are recorded by hash in the provenance, not inlined.
        quantization_config["dataset"] = None
        write_json(tmp / "config.json", config)
        write_json(tmp / "quantize_config.json", quantization_config)
    tokenizer.save_pretrained(tmp)
    applied = read_json(tmp / "quantize_config.json")
    applied.pop("dataset", None)
    return applied


def quantize_gptq_format(
    source_dir: str | Path,
    out_dir: str | Path,
    method: dict[str, Any],
    *,
    seed: int = 0,
    pools: dict[str, str | Path] | None = None,
    test_raws: dict[str, str | Path] | None = None,
    heldout: list[str | Path] | None = None,
    gpus: int = 1,
) -> dict[str, Any]:
    """The producer of ``gptq`` and ``rtn`` artifacts: one checkpoint format, one grid.

    GPTQ calibrates; round-to-nearest rounds the same grid without data. Either artifact is
    then checked layer by layer against round-to-nearest on ``heldout`` text.

    On CUDA the 16-bit model is spread over the first ``gpus`` GPUs and, beyond them, host
    memory: GPTQ works one block at a time, so its job is sized for a block, not the model
    (:func:`biomedquant.planning.job_resources.job_gpus`), and the rest waits on the host. With
    ``gpus=0`` or no CUDA everything stays on the CPU (rtn's ``quantize`` jobs always do).
    """
    kind = method["kind"]
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(1, os.cpu_count() or 1)))
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    start = time.time()
    source = SourceModel.open(source_dir)
    tokenizer = source.tokenizer()
    # Load in 16-bit, so the parts left alone (embeddings, norms, lm_head) stay 16-bit.
    dtype = getattr(torch, source.provenance.get("dtype", "float16"))
    n_gpus = usable_gpus(gpus) if gpus > 0 and torch.cuda.is_available() else 0
    device_map = "auto" if n_gpus else "cpu"  # as the provenance records it
    placement: dict[str, Any] = {"device_map": device_map}
    if n_gpus:
        placement["max_memory"] = gpu_max_memory(n_gpus, host_offload=True)
    rtn_quantizer = None
    if kind == "gptq":
        model, extra = _quantize_gptq(
            source, method, tokenizer, dtype, placement, seed, pools, test_raws
        )
    else:
        from biomedquant.quantization.rtn import rtn_quantize

        model = AutoModelForCausalLM.from_pretrained(
            source.dir,
            dtype=dtype,
            trust_remote_code=source.trusted,
            use_safetensors=True,
            **placement,
        )
        grid = grid_params(method)
        model, rtn_quantizer = rtn_quantize(model, **grid)
        extra = {"rtn_params": grid}
    quant_seconds = time.time() - start
    with atomic_dir(out_dir) as tmp:
        applied = _save(model, tokenizer, tmp, kind, rtn_quantizer)
        del model
        prov = artifact_provenance(
            method,
            source,
            tmp,
            seed=seed,
            source_keys=(*SOURCE_KEYS, "baseline_note"),
            applied_quantize_config=applied,
            **extra,
            device=device_map,
            quantize_seconds=round(quant_seconds, 2),
            peak_gpu_allocated_bytes=(
                torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
            ),
        )
        write_json(tmp / "provenance.json", prov)
        check_start = time.time()
        prov["quality"] = _quality(tmp, source.dir, method, heldout, gpus=n_gpus)
        prov["quality_seconds"] = round(time.time() - check_start, 2)
        prov["written_at"] = now()
        write_json(tmp / "provenance.json", prov)
    return prov


def _quality(
    artifact: Path,
    source_dir: Path,
    method: dict[str, Any],
    heldout: list[str | Path] | None,
    *,
    gpus: int = 1,
) -> dict[str, Any]:
    """The per-layer check on the artifact as saved, loaded through inference's own path, on
    the job's ``gpus`` and, where they do not hold the artifact, host memory: the job was
    sized for quantizing (one block at a time), and a few forward passes over held-out text
    may run offloaded."""
    from biomedquant.inference.engines.transformers import load_model
    from biomedquant.quantization.quality import heldout_texts, quality_check

    if heldout:
        texts, what = heldout_texts(list(heldout)), "evaluated test items"
    elif method.get("calibration", {}).get("source", "generic") != "generic":
        texts, what = generic_calibration_texts(), "shipped generic English text"
    else:
        log.warning("quality check skipped: no held-out text apart from the calibration text")
        return {"summary": None, "skipped": "no held-out text given", "layers": []}
    model, tokenizer, _ = load_model(artifact, method, gpus=gpus, host_offload=True)
    result = quality_check(model, tokenizer, source_dir, texts, grid_params(method), method["kind"])
    result["summary"]["heldout_text"] = what
    return result
