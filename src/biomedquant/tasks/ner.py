"""NER: the model re-emits the sentence with each entity wrapped in a span tag.

The output protocol follows the benchmark: ``<span class="chemical">cisplatin</span>``. The
parser strips the tags, tokenizes the rest like the benchmark files (punctuation split off),
aligns those tokens to the gold tokens (longest matching blocks, so rewording or dropped words
elsewhere do not shift the spans) and turns the tagged tokens into IOB2 tags over the *gold*
tokens, so spans are compared on the benchmark's own tokenization. A model that answers with a
list of entity strings instead (JSON or bullet list) has each string tagged wherever it occurs.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.tasks.metrics import iob2_spans, ner_scores
from biomedquant.tasks.text import EMPTY, NO_ANSWER, OK, answer_segment, cut_follow_up

_OPEN = re.compile(r"<\s*span\b[^>]*>", re.IGNORECASE)
_CLOSE = re.compile(r"<\s*/\s*span\s*>", re.IGNORECASE)
_TAG = re.compile(r"(<\s*span\b[^>]*>|<\s*/\s*span\s*>)", re.IGNORECASE)
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+?)\s*$", re.MULTILINE)
_NONE = re.compile(r"\b(no|none)\b.{0,20}\b(entit|mention|chemical|disease)", re.IGNORECASE)


def description(spec: DatasetSpec) -> str:
    etype = spec.labels[0]
    return (
        f"Find every {etype} mentioned in a sentence. Copy the sentence exactly and wrap each "
        f'{etype} mention in <span class="{etype}"> and </span>. Change nothing else and '
        "output only the tagged sentence."
    )


def render_input(spec: DatasetSpec, rec: Record) -> str:
    return "Sentence: " + " ".join(rec["tokens"])


def headers(spec: DatasetSpec) -> tuple[str, ...]:
    """The line that starts the next example in the prompt format."""
    return ("Sentence:",)


def render_answer(spec: DatasetSpec, rec: Record) -> str:
    """The gold sentence in the output protocol (used for few-shot examples)."""
    etype = spec.labels[0]
    words = list(rec["tokens"])
    for start, end in sorted(iob2_spans(rec["tags"]), reverse=True):
        words[start:end] = [f'<span class="{etype}">' + " ".join(words[start:end]) + "</span>"]
    return " ".join(words)


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


def _sub_tokens(gold_tokens: list[str]) -> list[tuple[str, int]]:
    """Gold tokens re-tokenized ("IL-2" -> "IL", "-", "2"), each with its gold index."""
    return [
        (piece.lower(), gi)
        for gi, tok in enumerate(gold_tokens)
        for piece in tokenize(tok) or [tok]
    ]


def _mark(tags: list[str], start: int, end: int) -> None:
    """Tag gold tokens start..end (inclusive) as one entity unless it overlaps an earlier one."""
    if any(tags[i] != "O" for i in range(start, end + 1)):
        return
    tags[start] = "B"
    for i in range(start + 1, end + 1):
        tags[i] = "I"


def _entity_list(text: str) -> list[str] | None:
    """Entity strings when the output is a JSON list or a bullet list, else ``None``."""
    m = re.search(r"\[.*\]", text, re.DOTALL)
    if m:
        try:
            items = json.loads(m.group(0))
            if isinstance(items, list) and all(isinstance(x, str) for x in items):
                return items
        except json.JSONDecodeError:
            pass
    bullets = _BULLET.findall(text)
    return bullets or None


def _tag_strings(gold_tokens: list[str], strings: list[str]) -> list[str]:
    tags = ["O"] * len(gold_tokens)
    sub = _sub_tokens(gold_tokens)
    words = [s for s, _ in sub]
    for string in strings:
        target = [t.lower() for t in tokenize(string.strip().strip("\"'"))]
        if not target:
            continue
        for i in range(len(words) - len(target) + 1):
            if words[i : i + len(target)] == target:
                _mark(tags, sub[i][1], sub[i + len(target) - 1][1])
    return tags


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[list[str], str, str | None]:
    """IOB2 tags over the gold tokens, the parse status and the rule that decided.

    The output is cut where an invented next example starts; the text after the last answer
    marker is read when it holds span tags (``marker``). Then, in order: tagged spans of the
    sentence (``tagged``), a JSON or bullet list of entity strings (``list``), the sentence
    echoed without tags (``echo``: no entity) or a statement that there is none
    (``no_entity``). Not ok ("no_answer", prediction: no entity) otherwise.
    """
    gold_tokens = rec["tokens"]
    tags = ["O"] * len(gold_tokens)
    text, _ = cut_follow_up(text or "", headers(spec))
    if not text.strip():
        return tags, EMPTY, None
    segment = answer_segment(text)
    marked = bool(segment and _OPEN.search(segment))
    if marked:
        text = segment or ""
    if not _OPEN.search(text):
        strings = _entity_list(text)
        if strings:
            return _tag_strings(gold_tokens, strings), OK, "list"
    out_tokens, owner = _tagged_tokens(text)
    sub = _sub_tokens(gold_tokens)
    matcher = difflib.SequenceMatcher(
        a=[s for s, _ in sub], b=[t.lower() for t in out_tokens], autojunk=False
    )
    gold_of_out: dict[int, int] = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            gold_of_out[block.b + k] = sub[block.a + k][1]
    # An entity counts only when every one of its tokens is found in the sentence: a tagged
    # phrase that is not in it ("Muscular weakness" for "muscular dystrophy") is not read as
    # the part of it that happens to match.
    entities: dict[int, list[int | None]] = {}
    for oi, ent in enumerate(owner):
        if ent is not None:
            entities.setdefault(ent, []).append(gold_of_out.get(oi))
    entities = {e: g for e, g in entities.items() if None not in g}
    for gidx in entities.values():
        _mark(tags, min(gidx), max(gidx))  # type: ignore[type-var]
    if entities:
        return tags, OK, "marker" if marked else "tagged"
    if len(set(gold_of_out.values())) / max(1, len(gold_tokens)) >= 0.5:
        return tags, OK, "echo"
    if _NONE.search(text):
        return tags, OK, "no_entity"
    return tags, NO_ANSWER, None


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return ner_scores(gold, pred)
