"""The fit estimator: GPU memory a model needs under a quantization method, before any run.

Arithmetic on the model's shape (from its config), not a measurement: the run records hold the
measured numbers, and the two are compared in the results. What is counted:

* Weights. Every linear layer inside the transformer blocks is quantized by GPTQ; embeddings,
  the LM head and norms stay in 16-bit (GPTQ leaves them alone, as do bitsandbytes' defaults).
  A GPTQ layer with ``bits`` and ``group_size`` g stores ``bits/8`` bytes per weight, plus per
  group of g input columns and output row a 16-bit scale and a ``bits``-bit zero point.
* KV cache: 2 (K and V) x layers x KV heads x head dim x 16-bit x tokens in flight.
* A fixed runtime overhead (CUDA context, allocator slack, activations of one forward pass),
  taken as 1 GiB plus 5% of the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


# Shapes of the study's models (from each model's config.json on the Hugging Face Hub).
_LLAMA3_8B = ModelShape(32, 4096, 14336, 32, 8, 128256)
_LLAMA3_70B = ModelShape(80, 8192, 28672, 64, 8, 128256)
MODEL_SHAPES: dict[str, ModelShape] = {
    "meta-llama/Llama-3.1-8B-Instruct": _LLAMA3_8B,
    "meta-llama/Llama-3.1-70B-Instruct": _LLAMA3_70B,
    "meta-llama/Llama-3.3-70B-Instruct": _LLAMA3_70B,
    "Qwen/Qwen2.5-7B-Instruct": ModelShape(28, 3584, 18944, 28, 4, 152064),
    "Qwen/Qwen2.5-14B-Instruct": ModelShape(48, 5120, 13824, 40, 8, 152064),
    "Qwen/Qwen2.5-72B-Instruct": ModelShape(80, 8192, 29568, 64, 8, 152064),
    "mistralai/Mistral-7B-Instruct-v0.3": ModelShape(32, 4096, 14336, 32, 8, 32768),
    "google/gemma-2-9b-it": ModelShape(42, 3584, 14336, 16, 8, 256000, True, 256),
    "aaditya/Llama3-OpenBioLLM-8B": _LLAMA3_8B,
    "aaditya/Llama3-OpenBioLLM-70B": _LLAMA3_70B,
    "BioMistral/BioMistral-7B": ModelShape(32, 4096, 14336, 32, 8, 32000),
    "Henrychur/MMed-Llama-3-8B": _LLAMA3_8B,
    "HuggingFaceTB/SmolLM2-135M-Instruct": ModelShape(30, 576, 1536, 9, 3, 49152, True),
}


def weight_bytes(shape: ModelShape, method: dict[str, Any]) -> float:
    """Bytes of the weights under ``method`` (a config entry: kind none or gptq)."""
    sixteen_bit = 2 * (shape.embedding_params + shape.norm_params)
    kind = method.get("kind", "none")
    if kind == "none":
        return sixteen_bit + 2 * shape.block_linear_params
    if kind == "gptq":
        bits = int(method["bits"])
        group = int(method.get("group_size", 128))
        per_weight = bits / 8
        if group > 0:
            per_weight += (2 + bits / 8) / group  # 16-bit scale + packed zero per group
        else:
            per_weight += 0  # per-channel scales: negligible against the weights
        return sixteen_bit + per_weight * shape.block_linear_params
    raise ValueError(f"no memory model for method kind {kind!r}")


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
