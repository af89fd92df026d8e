"""Round-to-nearest (RTN): the control every GPTQ number must beat.

RTN rounds each weight to the nearest point of the same grid GPTQ uses (``bits``, a scale and
zero point per ``group_size`` input columns, symmetric or not), with no calibration data and
no error compensation. It is what GPTQ reduces to when its Hessian is the identity, and what
the GPTQ paper compares against: a GPTQ artifact that loses to RTN on held-out text has a
calibration problem, not a quantization result.

The artifact is written in GPTQ's own checkpoint format (packed ``qweight``, ``qzeros``,
``scales``, ``g_idx`` and a ``quantize_config.json``), packed by the same optimum/gptqmodel
code that packs GPTQ artifacts, so it loads, runs and is measured through exactly the same
path as GPTQ: only the rounding differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def rtn_grid(weight: Any, bits: int, group_size: int, sym: bool) -> tuple[Any, Any, Any, Any]:
    """Round ``weight`` (out x in) to the GPTQ grid: the rounded weights, and the per-group
    scales and zero points (out x groups) and group index per input column, as GPTQ returns
    them.

    The arithmetic is gptqmodel's ``Quantizer.find_params`` (min/max range including 0; the
    symmetric grid centred on ``(maxq + 1) / 2``; an all-zero group gets the range -1..1),
    vectorised over groups: the tests check it equals gptqmodel's quantizer group by group.
    """
    import torch

    w = weight.detach().float()
    rows, columns = w.shape
    group = group_size if group_size > 0 else columns
    if columns % group:
        raise ValueError(f"group size {group} does not divide the layer's {columns} columns")
    maxq = 2**bits - 1
    x = w.reshape(rows, columns // group, group)
    zeros_ = torch.zeros(x.shape[:2])
    xmin = torch.minimum(x.amin(dim=2), zeros_)
    xmax = torch.maximum(x.amax(dim=2), zeros_)
    if sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = torch.where(xmin < 0, -xmax, xmin)
    empty = (xmin == 0) & (xmax == 0)
    xmin = torch.where(empty, torch.full_like(xmin, -1), xmin)
    xmax = torch.where(empty, torch.full_like(xmax, 1), xmax)
    scale = (xmax - xmin) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-xmin / scale)
    q = torch.clamp(torch.round(x / scale[..., None]) + zero[..., None], 0, maxq)
    rounded = (scale[..., None] * (q - zero[..., None])).reshape(rows, columns)
    g_idx = torch.arange(columns, dtype=torch.int32) // group
    return rounded, scale, zero, g_idx


def rtn_quantize(model: Any, bits: int, group_size: int, sym: bool) -> tuple[Any, Any]:
    """Quantize every linear layer of ``model``'s decoder blocks in place (the layers GPTQ
    quantizes) and pack them; returns the model and optimum's quantizer, which saves it."""
    import torch
    from optimum.gptq import GPTQQuantizer
    from optimum.gptq.utils import get_block_name_with_pattern, get_layers
    from transformers.utils.quantization_config import QuantizationMethod

    quantizer = GPTQQuantizer(
        bits=bits, group_size=group_size, sym=sym, desc_act=False, act_group_aware=False
    )
    quantizer.format = "gptq_v2"  # gptqmodel's internal format while packing, as in GPTQ
    block_name = get_block_name_with_pattern(model)
    quantizer.block_name_to_quantize = block_name
    layers = get_layers(model, prefix=block_name)
    packed = {}
    with torch.no_grad():
        for name, layer in layers.items():
            rounded, scale, zero, g_idx = rtn_grid(layer.weight, bits, group_size, sym)
            layer.weight.data = rounded.to(layer.weight.dtype)
            packed[name] = (None, scale, zero, g_idx)
    quantizer.pack_model(model=model, quantizers=packed)
    model.is_quantized = True
    model.quantization_method = QuantizationMethod.GPTQ
    model.config.quantization_config = quantizer.to_dict()
    model = quantizer.post_init_model(model)
    return model, quantizer


def save_rtn(model: Any, quantizer: Any, out_dir: str | Path) -> None:
    """Save in GPTQ's v1 checkpoint format with ``quantize_config.json`` (optimum's saver).

    optimum converts the packed zero points to the v1 format while saving but leaves
    ``config.json`` saying ``gptq_v2``, so a loader would read every zero point one step off;
    ``config.json`` gets the quantize config that describes what was written.
    """
    from biomedquant.common.files import read_json, write_json

    quantizer.save(model, str(out_dir), safe_serialization=True)
    out_dir = Path(out_dir)
    config = read_json(out_dir / "config.json")
    config["quantization_config"] = read_json(out_dir / "quantize_config.json")
    write_json(out_dir / "config.json", config)
