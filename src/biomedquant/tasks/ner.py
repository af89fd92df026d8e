"""NER: the model re-emits the sentence with each entity wrapped in a span tag.

The output protocol follows the benchmark: ``<span class="chemical">cisplatin</span>``. The
parser strips the tags, tokenizes the rest like the benchmark files (punctuation split off),
aligns those tokens to the gold tokens (longest matching blocks, so rewording or dropped words
elsewhere do not shift the spans) and turns the tagged tokens into IOB2 tags over the *gold*
tokens, so spans are compared on the benchmark's own tokenization.
"""

from __future__ import annotations

import difflib
import html
import re
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.metrics import ner_scores

_OPEN = re.compile(r"<\s*span\b[^>]*>", re.IGNORECASE)
_CLOSE = re.compile(r"<\s*/\s*span\s*>", re.IGNORECASE)
_TAG = re.compile(r"(<\s*span\b[^>]*>|<\s*/\s*span\s*>)", re.IGNORECASE)
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def instruction(spec: DatasetSpec, rec: Record) -> str:
    etype = spec.labels[0]
    sentence = " ".join(rec["tokens"])
    return (
        f"Find every {etype} mentioned in the sentence below. Copy the sentence exactly and "
        f'wrap each {etype} mention in <span class="{etype}"> and </span>. Change nothing '
        "else and output only the tagged sentence.\n\n"
        f"Sentence: {sentence}"
    )


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _tagged_tokens(text: str) -> tuple[list[str], list[int | None]]:
    """Tokens of ``text`` with tags removed, and the entity number each token belongs to.

    Unclosed spans end at the end of the output; nested spans count as one entity.
    """
    tokens: list[str] = []
    owner: list[int | None] = []
    depth = 0
    entity = -1
    for piece in _TAG.split(html.unescape(text)):
        if _OPEN.fullmatch(piece):
            if depth == 0:
                entity += 1
            depth += 1
        elif _CLOSE.fullmatch(piece):
            depth = max(0, depth - 1)
        else:
            for tok in tokenize(piece):
                tokens.append(tok)
                owner.append(entity if depth else None)
    return tokens, owner


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[list[str], bool]:
    """IOB2 tags over the gold tokens; ``ok`` is False when the output neither tags
    anything nor echoes most of the sentence (then the prediction is "no entity")."""
    gold_tokens = rec["tokens"]
    tags = ["O"] * len(gold_tokens)
    out_tokens, owner = _tagged_tokens(text or "")
    if not out_tokens:
        return tags, False
    gold_norm = [t.lower() for t in gold_tokens]
    # Gold tokens are re-tokenized too, so "IL-2" in the file matches "IL - 2" in the output.
    sub: list[tuple[str, int]] = [
        (piece.lower(), gi) for gi, tok in enumerate(gold_norm) for piece in tokenize(tok) or [tok]
    ]
    matcher = difflib.SequenceMatcher(
        a=[s for s, _ in sub], b=[t.lower() for t in out_tokens], autojunk=False
    )
    gold_of_out: dict[int, int] = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            gold_of_out[block.b + k] = sub[block.a + k][1]
    entities: dict[int, list[int]] = {}
    for oi, ent in enumerate(owner):
        if ent is not None and oi in gold_of_out:
            entities.setdefault(ent, []).append(gold_of_out[oi])
    for gidx in entities.values():
        start, end = min(gidx), max(gidx)
        if any(tags[i] != "O" for i in range(start, end + 1)):
            continue  # overlaps an earlier entity: keep the first
        tags[start] = "B"
        for i in range(start + 1, end + 1):
            tags[i] = "I"
    echoed = len({g for g in gold_of_out.values()}) / max(1, len(gold_tokens))
    ok = bool(_OPEN.search(text or "")) or echoed >= 0.5
    return tags, ok


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return ner_scores(gold, pred)
