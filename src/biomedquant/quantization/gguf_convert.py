"""Convert a fetched 16-bit Hugging Face folder (safetensors) to a GGUF F16 file.

llama.cpp quantizes GGUF files only, so every ``gguf`` method starts here. The conversion
covers the decoder families of the study: ``llama`` (Llama 2/3, Mistral, SmolLM2 and their
fine-tunes), ``qwen2`` (Qwen2/2.5, with q/k/v biases) and ``gemma2`` (Gemma 2: norms before and
after attention and feed-forward, logit soft-capping, sliding-window attention on alternate
layers). Other architectures (mixtures of experts ...) need llama.cpp's own
``convert_hf_to_gguf.py``: set ``BIOMEDQUANT_GGUF_CONVERTER`` to its path and it is run
instead (see :func:`convert_to_gguf`).

What the conversion does, all of it fixed by the GGUF format:

* tensors renamed to llama.cpp's names (``blk.N.attn_q.weight`` ...) with the ``gguf``
  package's own name map, 2-D weights written as F16, 1-D (norms, biases) as F32;
* for ``llama``, the rows of q and k permuted from Hugging Face's rotary layout (two halves)
  to GGML's (interleaved pairs), per head;
* for ``gemma2``, every RMSNorm weight stored plus one (Gemma's norm multiplies by ``1 + w``,
  llama.cpp's by the stored weight), and the soft-capping values and sliding window written
  as hyper-parameters (Gemma's rotary layout is GGML's NeoX one: no row permutation);
* Llama 3.1's ``llama3`` rope scaling written as the ``rope_freqs`` tensor of per-frequency
  factors (the published formula, as transformers computes it);
* hyper-parameters, the tokenizer (tokens, types, merges, special ids, chat template) and a
  pre-tokenizer name, so the file also runs on its own in llama.cpp or Ollama.

biomedquant itself feeds llama.cpp the token ids of the Hugging Face tokenizer, so prompts are
the same tokens in every engine whatever llama.cpp's own tokenizer would make of them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUPPORTED_ARCHS = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "gemma2": "gemma2"}
CONVERTER_ENV = "BIOMEDQUANT_GGUF_CONVERTER"


def _rope_theta(config: dict[str, Any]) -> float:
    params = config.get("rope_parameters") or {}
    return float(params.get("rope_theta", config.get("rope_theta", 10000.0)))


def _rope_scaling(config: dict[str, Any]) -> dict[str, Any]:
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return params if params.get("rope_type", params.get("type")) not in (None, "default") else {}


def llama3_rope_factors(config: dict[str, Any]) -> list[float] | None:
    """Per-frequency divisors of Llama 3.1's rope scaling (None for other rope types).

    Wavelengths shorter than ``original_max_position_embeddings / high_freq_factor`` keep
    their frequency, longer than ``... / low_freq_factor`` are divided by ``factor``, and those
    between are interpolated smoothly; llama.cpp divides each frequency by the stored factor.
    """
    scaling = _rope_scaling(config)
    if scaling.get("rope_type", scaling.get("type")) != "llama3":
        return None
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    base = _rope_theta(config)
    factor = float(scaling.get("factor", 8.0))
    low, high = (
        float(scaling.get("low_freq_factor", 1.0)),
        float(scaling.get("high_freq_factor", 4.0)),
    )
    old_ctx = float(scaling.get("original_max_position_embeddings", 8192))
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    factors = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi / (1.0 / base ** (i / head_dim))
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(1.0 / ((1 - smooth) / factor + smooth))
    return factors


def rotary_to_interleaved(weight: Any, n_heads: int) -> Any:
    """Rows of a q or k projection reordered from the two-halves rotary layout of Hugging Face
    Llama checkpoints to the interleaved-pairs layout GGML's rope expects (per head: row j of
    the first half and row j of the second half become rows 2j and 2j+1)."""
    rows = weight.shape[0]
    per_head = rows // n_heads
    return (
        weight.reshape(n_heads, 2, per_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def pre_tokenizer_name(config: dict[str, Any], tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenization (its regex split)."""
    model = tokenizer_json.get("model", {})
    pre = tokenizer_json.get("pre_tokenizer") or {}
    if config.get("model_type") == "qwen2":
        return "qwen2"
    if model.get("ignore_merges"):
        return "llama-bpe"  # Llama 3's tokenizer and its fine-tunes
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    parts = [p.get("type") for p in pre.get("pretokenizers", [])]
    if parts == ["Digits", "ByteLevel"]:
        return "smollm"  # single digits, then GPT-2's split (SmolLM, StarCoder-style)
    return "default"


def _add_vocab(writer: Any, folder: Path, config: dict[str, Any], n_vocab: int) -> str:
    """Write the tokenizer; return its kind (gpt2 BPE or llama SentencePiece-style)."""
    import gguf
    from gguf.vocab import BpeVocab, LlamaHfVocab, SpecialVocab

    tokenizer_json = json.loads((folder / "tokenizer.json").read_text("utf-8"))
    try:
        vocab: Any = BpeVocab(folder)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre_tokenizer_name(config, tokenizer_json))
        load_merges = True
    except FileNotFoundError:
        vocab = LlamaHfVocab(folder)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        load_merges = False
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    if len(tokens) > n_vocab:
        raise ValueError(f"tokenizer has {len(tokens)} tokens, the embeddings {n_vocab} rows")
    # Embedding matrices are often padded past the tokenizer (Qwen2.5: 152,064 rows).
    for i in range(len(tokens), n_vocab):
        tokens.append(f"[PAD{i}]".encode())
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    special = SpecialVocab(folder, load_merges=load_merges, n_vocab=n_vocab)
    template = folder / "chat_template.jinja"
    if special.chat_template is None and template.is_file():
        special.chat_template = template.read_text("utf-8")
    special.add_to_gguf(writer, quiet=True)
    return vocab.tokenizer_model


def _tensors(folder: Path) -> Iterator[tuple[str, Any]]:
    """(name, torch tensor) of every safetensors shard, one tensor at a time."""
    from safetensors import safe_open

    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"{folder}: no .safetensors file to convert")
    for shard in shards:
        with safe_open(shard, framework="pt") as fh:
            for name in fh.keys():  # noqa: SIM118 (safe_open is not a mapping)
                yield name, fh.get_tensor(name)


def _convert_with_llama_cpp(folder: Path, out: Path, script: str) -> dict[str, Any]:
    cmd = [sys.executable, script, str(folder), "--outtype", "f16", "--outfile", str(out)]
    log.info("converting with %s", script)
    subprocess.run(cmd, check=True)
    return {"converter": script}


def convert_to_gguf(folder: str | Path, out: str | Path) -> dict[str, Any]:
    """Write ``folder``'s model as a GGUF F16 file ``out``; returns facts for the provenance.

    Raises a ValueError naming the architecture when it is not one this converter knows and
    ``BIOMEDQUANT_GGUF_CONVERTER`` does not point to llama.cpp's converter.
    """
    import gguf
    import torch

    folder, out = Path(folder), Path(out)
    script = os.environ.get(CONVERTER_ENV, "").strip()
    if script:
        return _convert_with_llama_cpp(folder, out, script)
    config = json.loads((folder / "config.json").read_text("utf-8"))
    model_type = config.get("model_type", "")
    if model_type not in SUPPORTED_ARCHS:
        raise ValueError(
            f"GGUF conversion of model_type {model_type!r} is not built in (built in: "
            f"{', '.join(sorted(SUPPORTED_ARCHS))}); set {CONVERTER_ENV} to llama.cpp's "
            "convert_hf_to_gguf.py to convert it with llama.cpp's own script"
        )
    arch = SUPPORTED_ARCHS[model_type]
    n_layers = int(config["num_hidden_layers"])
    n_heads = int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads", n_heads))
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // n_heads)
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_name(config.get("_name_or_path") or folder.name)
    writer.add_context_length(int(config.get("max_position_embeddings", 4096)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_heads)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-5)))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    if arch == "gemma2":
        writer.add_attn_logit_softcapping(float(config.get("attn_logit_softcapping") or 50.0))
        writer.add_final_logit_softcapping(float(config.get("final_logit_softcapping") or 30.0))
        writer.add_sliding_window(int(config.get("sliding_window") or 4096))
    n_vocab = int(config["vocab_size"])
    writer.add_vocab_size(n_vocab)
    tokenizer_kind = _add_vocab(writer, folder, config, n_vocab)

    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.upper()), n_layers)
    tied = bool(config.get("tie_word_embeddings", False))
    n_written = 0
    for name, tensor in _tensors(folder):
        if name.endswith("rotary_emb.inv_freq") or (tied and name == "lm_head.weight"):
            continue
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ValueError(f"{folder}: tensor {name!r} has no GGUF name for {arch}")
        data = tensor.to(torch.float32)
        if arch == "llama" and name.endswith("q_proj.weight"):
            data = rotary_to_interleaved(data, n_heads)
        elif arch == "llama" and name.endswith("k_proj.weight"):
            data = rotary_to_interleaved(data, n_kv)
        elif arch == "gemma2" and name.endswith("norm.weight"):
            data = data + 1
        array = data.numpy()
        writer.add_tensor(new_name, array.astype("float16") if array.ndim == 2 else array)
        n_written += 1
    factors = llama3_rope_factors(config)
    if factors is not None:
        import numpy as np

        writer.add_tensor("rope_freqs.weight", np.asarray(factors, dtype=np.float32))
        n_written += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {
        "converter": "biomedquant",
        "architecture": arch,
        "tokenizer": tokenizer_kind,
        "n_tensors": n_written,
    }
