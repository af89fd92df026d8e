"""The fit estimator: GPU memory a model needs under a quantization method, before any run.

Arithmetic on the model's shape (from its config), not a measurement: the run records hold the
measured numbers, and the two are compared in the memory table
(:mod:`biomedquant.analysis.memory_table`). What is counted:

* Weights: each method kind's memory model (bytes per weight, per row, per column; see
  :mod:`biomedquant.methods.kinds`) applied to the model's block linears, the rest in 16-bit.
* KV cache: 2 (K and V) x layers x KV heads x head dim x 16-bit x tokens in flight.
* A fixed runtime overhead (CUDA context, allocator slack, activations of one forward pass),
  taken as 1 GiB plus 5% of the weights.
"""

from __future__ import annotations

from typing import Any

from biomedquant.common.gpus import GIB
from biomedquant.inference.decoding import BATCH_TOKENS
from biomedquant.methods.kinds import method_kind
from biomedquant.models.shapes import ModelShape


def weight_bytes(shape: ModelShape, method: dict[str, Any]) -> float:
    """Bytes of the weights under ``method`` (a config entry of any method kind): the
    quantized block linears, counted by the kind's memory model
    (:mod:`biomedquant.methods.kinds`), plus the parts every method leaves in 16-bit; a kind
    that lays out every tensor its own way (a GGUF file quantizes embeddings too) counts the whole
    model itself."""
    kind = method_kind(method)
    if kind.model_bytes is not None:
        return kind.model_bytes(shape, method)
    sixteen_bit = 2 * (shape.embedding_params + shape.norm_params)
    quantized = kind.linear_bytes_per_weight(method) * shape.block_linear_params
    return (
        sixteen_bit
        + quantized
        + kind.row_overhead_bytes(method) * shape.block_linear_rows
        + kind.col_overhead_bytes * shape.block_linear_cols
    )


def kv_cache_bytes(shape: ModelShape, tokens: int) -> float:
    return 2 * shape.layers * shape.kv_heads * shape.dim_per_head * 2 * tokens


def estimate(
    shape: ModelShape, method: dict[str, Any], *, tokens: int = BATCH_TOKENS
) -> dict[str, float]:
    """GiB needed: weights, KV cache for ``tokens`` in flight, overhead, and their total."""
    weights = weight_bytes(shape, method)
    kv = kv_cache_bytes(shape, tokens)
    overhead = GIB + 0.05 * weights
    return {
        "params_b": shape.params / 1e9,
        "weights_gb": weights / 1e9,
        "kv_cache_gb": kv / 1e9,
        "overhead_gb": overhead / 1e9,
        "total_gb": (weights + kv + overhead) / 1e9,
    }
