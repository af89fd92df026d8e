"""The input texts of prepared splits, without labels: what calibration windows are cut from
and what the held-out measures (perplexity, the quantization quality check) read."""

from __future__ import annotations

from pathlib import Path

from biomedquant.common.files import read_jsonl
from biomedquant.datasets.readers import Record


def record_text(rec: Record) -> str:
    """The input text of a benchmark record (what a prompt shows the model), without labels."""
    if "tokens" in rec:
        return " ".join(rec["tokens"])
    parts = [rec.get("context", ""), rec.get("question", ""), rec.get("text", "")]
    return "\n".join(p for p in parts if p)


def distinct_texts(paths: list[str | Path]) -> dict[str, list[str]]:
    """Each prepared split's distinct, non-empty input texts, in file order, by its path as
    given (one split per dataset). Relation extraction
    repeats a sentence once per entity pair (DDI: about 7 pairs per sentence): a held-out
    measure that counted each copy would weigh that sentence's tokens several times over."""
    out: dict[str, list[str]] = {}
    for path in paths:
        texts = (record_text(r) for r in read_jsonl(path))
        out.setdefault(str(path), []).extend(t for t in texts if t.strip())
    return {name: list(dict.fromkeys(texts)) for name, texts in out.items()}


def interleaved(groups: list[list[str]]) -> list[str]:
    """One text of each group in turn (then of those left): a prefix of the result samples
    every group, where a concatenation would hold the first group only."""
    out = []
    for k in range(max((len(g) for g in groups), default=0)):
        out.extend(g[k] for g in groups if k < len(g))
    return out
