"""Paired views of two systems on the same items: flip directions and McNemar's exact test.

A change of the score hides what moved. Flip directions count, per decision, where the
quantized method is right and the baseline wrong (``wrong_to_correct``), the reverse
(``correct_to_wrong``), and where both are wrong with different answers
(``wrong_to_other_wrong``). The decision is the item for single-label tasks; for NER it is a
candidate entity span (a span in the gold or in either system's output: a system is right on
it when it predicts the span exactly when the gold has it); for multi-label tasks it is one
(document, label) membership. Binary decisions cannot be wrong in two ways, so the last count
is 0 there.

McNemar's exact test asks whether ``correct_to_wrong`` and ``wrong_to_correct`` are equally
likely, from the discordant items alone: two-sided binomial test with p = 1/2. It assumes
independent items, so for relation extraction (pairs share sentences) the cluster bootstrap
p-value beside it is the one to trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from biomedquant.evaluation.stats.sufficient import as_spans

FLIP_KEYS = ("correct_to_wrong", "wrong_to_correct", "wrong_to_other_wrong")


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant items.

    ``p = min(1, 2 * sum_{i <= min(b, c)} C(b + c, i) / 2^(b + c))``, computed in exact
    integer arithmetic (no normal approximation, no overflow at test-set sizes)."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be >= 0")
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    term, total = 1, 1  # C(n, 0)
    for i in range(k):
        term = term * (n - i) // (i + 1)
        total += term
    return float(min(Fraction(1), Fraction(2 * total, 2**n)))


def _binary_flips(decisions: list[tuple[bool, bool]]) -> dict[str, int]:
    """Flip counts from (baseline right, other right) per decision."""
    c2w = sum(b and not o for b, o in decisions)
    w2c = sum(o and not b for b, o in decisions)
    return {
        "decisions": len(decisions),
        "correct_to_wrong": c2w,
        "wrong_to_correct": w2c,
        "wrong_to_other_wrong": 0,
    }


def flip_directions(
    kind: str, gold: Sequence[Any], baseline: Sequence[Any], other: Sequence[Any]
) -> dict[str, int]:
    """Decision count and flip counts by direction (see the module docstring)."""
    if kind == "single":
        c2w = w2c = w2w = 0
        for g, b, o in zip(gold, baseline, other, strict=True):
            if b == g and o != g:
                c2w += 1
            elif b != g and o == g:
                w2c += 1
            elif b != g and o != g and b != o:
                w2w += 1
        return {
            "decisions": len(gold),
            "correct_to_wrong": c2w,
            "wrong_to_correct": w2c,
            "wrong_to_other_wrong": w2w,
        }
    decisions: list[tuple[bool, bool]] = []
    if kind == "ner":
        for g, b, o in zip(gold, baseline, other, strict=True):
            gs, bs, os_ = as_spans(g), as_spans(b), as_spans(o)
            for span in gs | bs | os_:
                truth = span in gs
                decisions.append(((span in bs) == truth, (span in os_) == truth))
        return _binary_flips(decisions)
    if kind == "multi":
        labels = set()
        for seq in (gold, baseline, other):
            for labs in seq:
                labels.update(labs or ())
        for g, b, o in zip(gold, baseline, other, strict=True):
            gs, bs, os_ = set(g), set(b or ()), set(o or ())
            for lab in labels:
                truth = lab in gs
                decisions.append(((lab in bs) == truth, (lab in os_) == truth))
        return _binary_flips(decisions)
    raise ValueError(f"unknown metric kind {kind!r}; known: ner, single, multi")
