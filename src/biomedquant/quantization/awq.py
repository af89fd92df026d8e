"""``awq`` methods: activation-aware 4-bit weight quantization (AWQ) through gptqmodel.

AWQ searches, per layer, the per-channel scales that protect the weights multiplying large
activations, then rounds to a ``bits``-bit grid with one 16-bit scale and (``zero_point``) one
zero per ``group_size`` weights. It is calibrated like GPTQ: the same calibration sources and
the same checks (texts too short are counted and left out; in-domain texts never include a
test item), through :func:`biomedquant.quantization.calibration.calibration_windows` (and the same
rank check).

The artifact is a safetensors folder in the GEMM layout that vLLM and transformers load
(``quantize_config.json`` beside it) plus ``provenance.json``. gptqmodel quantizes on the
device it is given, but its AWQ packing is a CUDA extension: on a machine without a CUDA GPU
the job stops at once with a message that names the hardware, before loading anything.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from biomedquant.common.files import atomic_dir, read_json, write_json
from biomedquant.methods.kinds import group_size
from biomedquant.quantization import SourceModel, artifact_provenance

log = logging.getLogger(__name__)

NEEDS_GPU = (
    "awq quantization needs an NVIDIA GPU (CUDA): gptqmodel's AWQ packs its weights with a "
    "CUDA extension ('AWQ: CUDA is not available' on a CPU), and this machine has no CUDA GPU"
)


def awq_params(method: dict[str, Any]) -> dict[str, Any]:
    """The AWQ parameters of a method entry, with the schema's defaults."""
    return {
        "bits": int(method.get("bits", 4)),
        "group_size": group_size(method),
        "zero_point": bool(method.get("zero_point", True)),
    }


def quantize_awq(
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
    """Write the AWQ artifact of ``method`` for the 16-bit model in ``source_dir``.

    ``heldout`` is accepted as every producer's is; the per-layer check against
    round-to-nearest (:mod:`.quality`) covers GPTQ-format artifacts only. gptqmodel quantizes
    on one GPU (the first), so ``gpus`` only has to be at least one.
    """
    if gpus < 1:
        raise RuntimeError(f"{NEEDS_GPU.split(' (')[0]}, and this job was given none (--gpus 0)")
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(1, os.cpu_count() or 1)))
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(NEEDS_GPU)
    from gptqmodel import AWQConfig, GPTQModel

    from biomedquant.quantization.calibration import checked_windows

    torch.manual_seed(seed)
    start = time.time()
    source = SourceModel.open(source_dir)
    tokenizer = source.tokenizer()
    windows, calib_info = checked_windows(
        method.get("calibration", {}),
        tokenizer,
        read_json(source.dir / "config.json"),
        pools=pools,
        test_raws=test_raws,
        seed=seed,
    )
    params = awq_params(method)
    config = AWQConfig(
        bits=params["bits"], group_size=params["group_size"], sym=not params["zero_point"]
    )
    model = GPTQModel.load(
        str(source.dir), config, device="cuda:0", trust_remote_code=source.trusted
    )
    dataset = [{"input_ids": w, "attention_mask": [1] * len(w)} for w in windows]
    model.quantize(dataset, tokenizer=tokenizer, batch_size=1)
    quant_seconds = time.time() - start
    with atomic_dir(out_dir) as tmp:
        model.save(str(tmp))
        tokenizer.save_pretrained(tmp)
        prov = artifact_provenance(
            method,
            source,
            tmp,
            seed=seed,
            awq_params=params,
            dtype=source.provenance.get("dtype"),
            calibration=calib_info,
            device="cuda",
            quantize_seconds=round(quant_seconds, 2),
            peak_gpu_allocated_bytes=torch.cuda.max_memory_allocated(),
        )
        write_json(tmp / "provenance.json", prov)
    return prov
