"""Held-out perplexity of a model under a quantization method: a task-free quality check.

Scores and perplexity answer different questions: a benchmark score can hide a damaged model
behind a lucky parse, perplexity cannot. The texts are the evaluated test items of the study's
datasets (their input text, no labels), which calibration never sees: generic calibration uses
the package's own English paragraphs, and in-domain calibration excludes every test text.

How it is counted, and why:

* Each text is read as the model reads a document: with the BOS token first where the model's
  tokenizer puts one there by default (Llama 3, Mistral and Gemma 2 were trained so; Gemma 2
  without it gives unusable perplexity), and without where it does not (Qwen2.5, SmolLM2).
  The first token read is context only; with a BOS, every token of the text is predicted.
* Each sentence once: relation extraction repeats a sentence per entity pair (DDI's 5,761
  test pairs come from about 800 sentences), each copy with that pair's two mentions masked
  (``@DRUG$``) and the others named, so the copies differ as texts. Counting them would make
  9 in 10 of DDI's tokens repeats and weigh a sentence by how many drugs it names; the texts
  are deduplicated as sentences, with the entity markers read as "some mention here", the
  first copy kept (:func:`biomedquant.datasets.texts.distinct_sentences`).
* Datasets weigh equally: the perplexity is exp of the mean over datasets of each dataset's
  mean negative log-likelihood per token (LitCovid's long abstracts would otherwise dominate).
  Each dataset's own perplexity is in the record.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from biomedquant.common.files import read_json, sha256_text, write_json
from biomedquant.common.provenance import now, versions
from biomedquant.datasets.texts import distinct_texts
from biomedquant.inference.engines import engine_for


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer starts a text with its BOS token by default (how the model was
    trained to read a document)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos


def scored_ids(tokenizer: Any, text: str, max_length: int, bos: bool) -> list[int]:
    """The ids a text is scored on: BOS first when ``bos``, cut to ``max_length``; the first
    is context only."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if bos:
        ids = [tokenizer.bos_token_id, *ids]
    return ids[:max_length]


def token_nll(
    model: Any, tokenizer: Any, texts: list[str], max_length: int = 512
) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and number of predicted tokens over ``texts``.

    Each text is scored on its own (no padding to get wrong), as :func:`scored_ids` reads it;
    the first token of each is context only, as it has nothing to be predicted from.
    """
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    bos = adds_bos(tokenizer)
    with torch.inference_mode():
        for text in texts:
            ids = scored_ids(tokenizer, text, max_length, bos)
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
    :func:`biomedquant.inference.engines.transformers.load_model`): it changes speed, not the
    record."""
    from biomedquant.inference.engines.transformers import load_model

    by_dataset = {name: t for name, t in distinct_texts(list(data_paths)).items() if t}
    if not by_dataset:
        raise ValueError("no texts to compute perplexity on")
    nll_of = token_nll
    if engine_for(method, "transformers") == "llama_cpp":  # llama.cpp's logits, from a GGUF
        from biomedquant.inference.engines import llama_cpp

        model = llama_cpp.LlamaCppEngine.load(model_dir, method, gpus=gpus, logits_all=True)
        tokenizer, load_info = model.tokenizer, model.info
        nll_of = llama_cpp.token_nll
    else:
        model, tokenizer, load_info = load_model(model_dir, method, gpus=gpus)
    start = time.time()
    datasets = {}
    for name, texts in by_dataset.items():
        nll, n = nll_of(model, tokenizer, texts, max_length=max_length)
        if n:
            datasets[name] = {
                "perplexity": math.exp(nll / n),
                "mean_nll": nll / n,
                "n_texts": len(texts),
                "n_tokens": n,
            }
    if not datasets:
        raise ValueError("every text is shorter than two tokens")
    mean_nll = sum(d["mean_nll"] for d in datasets.values()) / len(datasets)
    texts = [t for group in by_dataset.values() for t in group]
    record = {
        "method": method,
        "model_dir": str(model_dir),
        "perplexity": math.exp(mean_nll),
        "mean_nll": mean_nll,
        "weighting": "datasets equally (exp of the mean of their mean NLL per token)",
        "bos": adds_bos(tokenizer),
        "datasets": datasets,
        "n_texts": len(texts),
        "n_tokens": sum(d["n_tokens"] for d in datasets.values()),
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
