"""The input texts of prepared splits, without labels: what calibration windows are cut from
and what the held-out measures (perplexity, the quantization quality check) read."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

from biomedquant.common.files import read_jsonl
from biomedquant.datasets.readers import Record

ENTITY_MARKER = re.compile(r"@[A-Z][A-Z0-9_]*\$")
"""How a relation-extraction text masks an entity mention: ``@LABEL$`` (BLUE's convention,
which the benchmark keeps: ChemProt's @CHEMICAL$ and @GENE$, DDI's @DRUG$, and GAD's or
EU-ADR's @DISEASE$ should one be added). Declared once, here; every marker a dataset of the
registry declares matches it (tests/inference/test_perplexity.py)."""

MAX_MENTION_TOKENS = 16
"""The most tokens (words and punctuation marks, as :func:`_tokens` splits them) one masked
mention may stand for: "3,4-methylenedioxymethamphetamine" is 5, "angiotensin II type 1
receptor" 5. A bound, so that a marker cannot swallow half a different sentence."""

_MASK = "\x00"  # every marker, whatever its label, as one token
_TOKEN = re.compile(rf"{ENTITY_MARKER.pattern}|\w+|[^\w\s]")
_SHINGLE = 2  # tokens per shingle, for finding the sentences a text may repeat
_CANDIDATES = 8  # of those, how many (sharing the most shingles) are compared exactly


def record_text(rec: Record) -> str:
    """The input text of a benchmark record (what a prompt shows the model), without labels."""
    if "tokens" in rec:
        return " ".join(rec["tokens"])
    parts = [rec.get("context", ""), rec.get("question", ""), rec.get("text", "")]
    return "\n".join(p for p in parts if p)


def _tokens(text: str) -> tuple[str, ...]:
    """Words and punctuation marks of ``text``, each entity marker as the one token
    ``_MASK``: the marker's label and the punctuation stuck to it ("@DRUG$:") are no part of
    what makes two texts one sentence."""
    return tuple(_MASK if ENTITY_MARKER.fullmatch(t) else t for t in _TOKEN.findall(text))


def same_sentence(a: Sequence[str], b: Sequence[str], max_span: int = MAX_MENTION_TOKENS) -> bool:
    """Whether the token sequences ``a`` and ``b`` (from :func:`_tokens`) can be one
    sentence with different entity mentions masked: some sentence gives both when each
    ``_MASK`` of one stands for 1 to ``max_span`` tokens of the other (none a mask), or for
    the mask at the same place (the entity both pairs share).

    Why not a key: the benchmark masks only the pair's two mentions and leaves the sentence's
    other entities named, so the texts of one sentence differ by names as well as markers
    ("@DRUG$ ... colestipol and atorvastatin" and "atorvastatin ... colestipol and @DRUG$"),
    and no normalisation of the text alone makes them equal.
    """

    @cache
    def rest(i: int, j: int) -> bool:
        # equal tokens in a loop, so that only masks recurse (the depth is their number)
        while i < len(a) and j < len(b) and a[i] == b[j]:
            i, j = i + 1, j + 1
        if i == len(a) or j == len(b):
            return i == len(a) and j == len(b)
        if a[i] == _MASK or b[j] == _MASK:
            masked_a = a[i] == _MASK
            other, at = (b, j) if masked_a else (a, i)
            for k in range(1, max_span + 1):
                if at + k > len(other) or other[at + k - 1] == _MASK:
                    break
                if rest(i + 1, j + k) if masked_a else rest(i + k, j + 1):
                    return True
            return False
        return False  # two different words

    try:
        return rest(0, 0)
    finally:
        rest.cache_clear()


def distinct_sentences(texts: Iterable[str]) -> list[str]:
    """``texts`` with every repeat of an earlier text dropped, in order, the first kept.

    A repeat is the same text, or, for texts with entity markers (:data:`ENTITY_MARKER`),
    the same sentence with other mentions masked (:func:`same_sentence`). Relation
    extraction gives one text per entity pair of a sentence (DDI: 5,761 test pairs from
    about 800 sentences), each the sentence with that pair masked: without this, 9 in 10 of
    the words a held-out measure reads on DDI would be repeats, and the measure would weigh a
    sentence by how many drugs it names. The markers themselves are the only fact used, so
    a new relation-extraction dataset needs no code here.

    Each marked text is compared with the kept marked texts that share the most of its
    2-token shingles, and with the last one kept (the benchmark's files list a sentence's
    pairs one after another). A sentence found by neither (one naming an entity every other
    word, listed out of order) is kept twice, the safe side for a held-out measure.
    """
    kept: list[str] = []
    marked: list[tuple[str, ...]] = []  # token sequences of the kept marked texts
    by_shingle: dict[tuple[str, ...], list[int]] = {}
    for text in dict.fromkeys(texts):
        if not ENTITY_MARKER.search(text):
            kept.append(text)
            continue
        tokens = _tokens(text)
        shingles = {
            tokens[k : k + _SHINGLE]
            for k in range(len(tokens) - _SHINGLE + 1)
            if _MASK not in tokens[k : k + _SHINGLE]
        }
        shared = Counter(n for s in shingles for n in by_shingle.get(s, ()))
        candidates = [n for n, _ in shared.most_common(_CANDIDATES)]
        if marked:  # the files list a sentence's pairs one after another
            candidates.append(len(marked) - 1)
        if any(same_sentence(tokens, marked[n]) for n in dict.fromkeys(candidates)):
            continue
        for s in shingles:
            by_shingle.setdefault(s, []).append(len(marked))
        marked.append(tokens)
        kept.append(text)
    return kept


def distinct_texts(paths: list[str | Path]) -> dict[str, list[str]]:
    """Each prepared split's distinct, non-empty input texts, in file order, by its path as
    given (one split per dataset): each sentence once however many entity pairs relation
    extraction made of it (:func:`distinct_sentences`), so that a held-out measure reads
    each sentence's words once."""
    out: dict[str, list[str]] = {}
    for path in paths:
        texts = (record_text(r) for r in read_jsonl(path))
        out.setdefault(str(path), []).extend(t for t in texts if t.strip())
    return {name: distinct_sentences(texts) for name, texts in out.items()}


def interleaved(groups: list[list[str]]) -> list[str]:
    """One text of each group in turn (then of those left): a prefix of the result samples
    every group, where a concatenation would hold the first group only."""
    out = []
    for k in range(max((len(g) for g in groups), default=0)):
        out.extend(g[k] for g in groups if k < len(g))
    return out
