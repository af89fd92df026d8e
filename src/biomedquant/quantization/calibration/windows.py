"""Calibration as GPTQ defines it: ``n_samples`` windows of exactly ``seq_len`` tokens.

The texts of a source (see :mod:`biomedquant.quantization.calibration.sources`) are put in a seeded
order, tokenized and concatenated into one stream (an end-of-text token between texts), and the
stream is cut into consecutive windows. Short texts are therefore packed, never dropped, and
the calibration holds exactly ``n_samples x seq_len`` tokens: the number that bounds the rank
of the Hessian GPTQ inverts for each layer. The GPTQ paper uses 128 windows x 2048 tokens of
C4 (262,144 tokens); a count below a layer's input size leaves that layer's Hessian
rank-deficient, and GPTQ then fits its calibration text rather than the model's inputs (on
the demo model it lost to plain rounding on held-out text).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from biomedquant.common.files import sha256_text
from biomedquant.quantization.calibration.sources import (
    SOURCES,
    CalibrationError,
    file_texts,
    generic_calibration_texts,
    hf_dataset_texts,
    in_domain_texts,
)

log = logging.getLogger(__name__)

# The schema's defaults (workflow/schemas/config.schema.yaml): 65,536 tokens of the benchmarks'
# own train/dev texts, twice the widest quantized layer's input of every study model (29,568:
# Qwen2.5-72B's down_proj), which the full benchmarks hold many times over. The shipped
# generic text (about 7,400 tokens) and the demo's small samples hold far less: configs that
# calibrate on them say so and size their windows to them (config/config.yaml).
DEFAULTS = {"source": "in_domain", "n_samples": 128, "seq_len": 512}


def pack_windows(
    texts: Sequence[str], order: Sequence[int], tokenizer: Any, n_samples: int, seq_len: int
) -> tuple[list[list[int]], dict[str, int]]:
    """Cut ``n_samples`` windows of ``seq_len`` tokens from the texts, packed in ``order``.

    Texts are tokenized only until the stream is long enough, so a large dataset costs what
    the windows need. Raises :class:`CalibrationError` (naming both numbers) when the source
    holds fewer tokens than the windows need: repeating text would add tokens but no rank.
    """
    need = n_samples * seq_len
    sep = tokenizer.eos_token_id
    stream: list[int] = []
    n_texts = 0
    for i in order:
        ids = tokenizer(texts[i], add_special_tokens=False)["input_ids"]
        if not ids:
            continue
        stream.extend(ids)
        if sep is not None:
            stream.append(sep)
        n_texts += 1
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise CalibrationError(
            f"the calibration source holds {len(stream)} tokens, fewer than n_samples x seq_len"
            f" = {n_samples} x {seq_len} = {need}: lower n_samples or seq_len, or give the"
            " source more text"
        )
    windows = [stream[k * seq_len : (k + 1) * seq_len] for k in range(n_samples)]
    return windows, {"n_texts_used": n_texts, "n_stream_tokens": len(stream)}


def widest_linear_input(config: dict[str, Any]) -> tuple[int, str]:
    """Input size of the widest linear layer GPTQ quantizes in a decoder block, and its name,
    read from a model's ``config.json`` (so the check runs before any weight is loaded)."""
    cfg = config.get("text_config", config)
    hidden = int(cfg["hidden_size"])
    heads = int(cfg.get("num_attention_heads", 0) or 0)
    head_dim = int(cfg.get("head_dim") or (hidden // heads if heads else 0))
    candidates = [
        (hidden, "attention/mlp input (hidden_size)"),
        (heads * head_dim, "self_attn.o_proj (heads x head_dim)"),
        (int(cfg.get("intermediate_size") or 0), "mlp.down_proj (intermediate_size)"),
    ]
    return max(candidates)


def check_rank(n_tokens: int, widest: tuple[int, str], allow_rank_deficient: bool) -> None:
    """Refuse a calibration with fewer tokens than the widest layer's input size.

    GPTQ's per-layer Hessian is the sum of ``x x^T`` over calibration tokens: its rank is at
    most the token count. Below the input size, GPTQ's error compensation is fitted to a
    subspace the calibration happens to span, and held-out error grows.
    """
    size, name = widest
    if n_tokens >= size:
        return
    message = (
        f"calibration holds {n_tokens} tokens, fewer than the widest quantized layer's input"
        f" size {size} ({name}): GPTQ's Hessian would be rank-deficient and overfit the"
        f" calibration text; raise n_samples x seq_len above {size} (GPTQ's reference is"
        " 128 x 2048 tokens), or set calibration.allow_rank_deficient: true"
    )
    if not allow_rank_deficient:
        raise CalibrationError(message)
    log.warning("allowed by allow_rank_deficient: %s", message)


def calibration_windows(
    calib: dict[str, Any],
    tokenizer: Any,
    *,
    pools: dict[str, str | Path] | None = None,
    test_raws: dict[str, str | Path] | None = None,
    seed: int = 0,
) -> tuple[list[list[int]], dict[str, Any]]:
    """The calibration windows of a method's ``calibration`` entry, and their provenance.

    ``pools`` (dataset -> train/dev JSON Lines) and ``test_raws`` (dataset -> full test file)
    are needed by ``in_domain``. The provenance records the source, the windows, the total
    tokens and a hash of the token ids (the exact calibration, whatever the source).
    """
    c = {**DEFAULTS, **calib}
    source, n_samples, seq_len = c["source"], int(c["n_samples"]), int(c["seq_len"])
    rng = random.Random(seed)
    extra: dict[str, Any] = {}
    texts: Sequence[str]
    if source == "in_domain":
        if not pools or test_raws is None:
            raise CalibrationError("in_domain calibration needs the train/dev pools and test files")
        texts, extra = in_domain_texts(pools, test_raws, seed)
        order: Sequence[int] = range(len(texts))  # already in a seeded, interleaved order
    else:
        if source == "generic":
            texts = generic_calibration_texts()
        elif source == "file":
            if "path" not in c:
                raise CalibrationError("file calibration needs calibration.path")
            texts = file_texts(c["path"], c.get("text_field", "text"))
            extra = {"path": str(c["path"])}
        elif source == "hf_dataset":
            if "dataset" not in c:
                raise CalibrationError("hf_dataset calibration needs calibration.dataset")
            texts, extra = hf_dataset_texts(c)
        else:
            raise CalibrationError(
                f"calibration source {source!r} is unknown ({', '.join(SOURCES)})"
            )
        shuffled = list(range(len(texts)))
        rng.shuffle(shuffled)
        order = shuffled
    if not len(texts):
        raise CalibrationError(f"calibration source {source!r} holds no text")
    windows, packed = pack_windows(texts, order, tokenizer, n_samples, seq_len)
    info = {
        "source": source,
        "n_samples": n_samples,
        "seq_len": seq_len,
        "n_tokens": n_samples * seq_len,
        "n_texts_available": len(texts),
        **packed,
        "seed": seed,
        "sha256": sha256_text(json.dumps(windows)),
        **extra,
    }
    return windows, info


def checked_windows(
    calib: dict[str, Any],
    tokenizer: Any,
    model_config: dict[str, Any],
    *,
    pools: dict[str, str | Path] | None = None,
    test_raws: dict[str, str | Path] | None = None,
    seed: int = 0,
) -> tuple[list[list[int]], dict[str, Any]]:
    """:func:`calibration_windows` after the rank check against the widest quantized layer of
    the model (its ``config.json``), which the provenance records too. Every method that
    calibrates (GPTQ, AWQ) goes through here, so none can run on too few tokens."""
    windows, info = calibration_windows(
        calib, tokenizer, pools=pools, test_raws=test_raws, seed=seed
    )
    widest = widest_linear_input(model_config)
    info["widest_layer_input"] = {"size": widest[0], "layer": widest[1]}
    check_rank(info["n_tokens"], widest, bool(calib.get("allow_rank_deficient", False)))
    return windows, info
