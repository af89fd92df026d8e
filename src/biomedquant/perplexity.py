"""Held-out perplexity of a model under a quantization method: a task-free quality check.

Scores and perplexity answer different questions: a benchmark score can hide a damaged model
behind a lucky parse, perplexity cannot. The texts are the evaluated test items of the study's
datasets (their input text, no labels), which calibration never sees: generic calibration uses
the package's own English paragraphs, and in-domain calibration excludes every test text.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from biomedquant.calibration import record_text
from biomedquant.engines import engine_for
from biomedquant.io import read_json, read_jsonl, sha256_text, write_json
from biomedquant.provenance import now, versions


def token_nll(
    model: Any, tokenizer: Any, texts: list[str], max_length: int = 512
) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and number of predicted tokens over ``texts``.

    Each text is scored on its own (no padding to get wrong), cut to ``max_length`` tokens;
    the first token of each is context only, as it has nothing to be predicted from.
    """
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
            if len(ids) < 2:
                continue
            x = torch.tensor([ids], device=device)
            logits = model(input_ids=x).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum")
            total += float(nll)
            count += len(ids) - 1
    return total, count


def run_perplexity(
    *,
    model_dir: str | Path,
    method: dict[str, Any],
    data_paths: list[str | Path],
    out_path: str | Path,
    max_length: int = 512,
    gpus: int = 1,
) -> dict[str, Any]:
    """Perplexity of (model, method) on the test texts of ``data_paths``; writes a record.

    ``gpus`` is how many GPUs the job was given (see
    :func:`biomedquant.engines.transformers.load_model`): it changes speed, not the record."""
    from biomedquant.engines.transformers import load_model

    texts = [record_text(r) for path in data_paths for r in read_jsonl(path)]
    if not texts:
        raise ValueError("no texts to compute perplexity on")
    nll_of = token_nll
    if engine_for(method, "transformers") == "llama_cpp":  # llama.cpp's logits, from a GGUF
        from biomedquant.engines import llama_cpp

        model = llama_cpp.LlamaCppEngine.load(model_dir, method, gpus=gpus, logits_all=True)
        tokenizer, load_info = model.tokenizer, model.info
        nll_of = llama_cpp.token_nll
    else:
        model, tokenizer, load_info = load_model(model_dir, method, gpus=gpus)
    start = time.time()
    nll, n = nll_of(model, tokenizer, texts, max_length=max_length)
    if n == 0:
        raise ValueError("every text is shorter than two tokens")
    record = {
        "method": method,
        "model_dir": str(model_dir),
        "perplexity": math.exp(nll / n),
        "mean_nll": nll / n,
        "n_texts": len(texts),
        "n_tokens": n,
        "max_length": max_length,
        "texts_sha256": sha256_text("\n\x00".join(texts)),
        "data": [str(p) for p in data_paths],
        "compute_dtype": load_info["compute_dtype"],
        "device": load_info["device"],
        "seconds": round(time.time() - start, 2),
        "versions": versions(),
        "written_at": now(),
    }
    write_json(out_path, record)
    return record


def perplexity_rows(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Rows of the perplexity table from records at ``.../{model}/{method}.json``, each with
    its ratio to the model's 16-bit baseline."""
    rows = []
    for path in paths:
        rec = read_json(path)
        p = Path(path)
        rows.append(
            {
                "model": p.parent.name,
                "method": p.stem,
                "kind": rec["method"]["kind"],
                "perplexity": round(rec["perplexity"], 4),
                "n_texts": rec["n_texts"],
                "n_tokens": rec["n_tokens"],
                "compute_dtype": rec["compute_dtype"],
            }
        )
    base = {r["model"]: r["perplexity"] for r in rows if r["kind"] == "none"}
    for r in rows:
        r["ratio_to_baseline"] = (
            round(r["perplexity"] / base[r["model"]], 4) if r["model"] in base else None
        )
    return rows


PERPLEXITY_COLUMNS = (
    "model",
    "method",
    "kind",
    "perplexity",
    "ratio_to_baseline",
    "n_texts",
    "n_tokens",
    "compute_dtype",
)
