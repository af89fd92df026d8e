"""The reading rule: how every parser finds the model's answer, and when it finds none.

One rule for all tasks, applied in this order; the first level that names an answer decides:

0. ``cut``: the output ends where the model starts an invented next example or turn (a new
   "Question:"/"Sentence:" line of the prompt format, a "User:" turn).
1. ``json``: an output that is a JSON answer (an object with an answer field, a list of labels,
   a label map of 0/1 or true/false) is read from it.
2. ``marker``: the text after the *last* explicit answer marker ("Answer:", "the answer is",
   "Label:" ...), up to a blank line or a new section, read by levels 3 and 4 within it. A
   marker followed by text that names no answer, or by nothing at all (what an output cut at
   its token cap looks like), is unparsable: the model's declared answer is not one, and an
   earlier mention or opening is not put in its place.
3. ``opening``: the answer the output opens with ("C. Warfarin ...", "Yes, the results ...").
4. ``mention``: a single answer named anywhere, however often.

Two different answers at the same level are ``ambiguous`` (an opening followed by "or"/"no
wait" and another answer; another line that is nothing but a different answer; two different
mentions). A mention under negation ("not", "no", "without", "does not discuss", "rather
than") is not an answer. An output naming nothing is ``no_answer``; an empty one ``empty``.
All three are unparsable. Each parse records the level that decided it (``parse_rule``).

Multi-label answers are sets: the marked segment, else the opening paragraph when it opens with
a label, else every label named; naming a label is predicting it unless it is negated, and an
explicit "none of the labels" is the empty set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import islice
from typing import Any

from biomedquant.tasks.json_answer import answer_field, json_value, truth
from biomedquant.tasks.text import (
    AMBIGUOUS,
    EMPTY,
    NO_ANSWER,
    OK,
    answer_segment,
    clean,
    cut_follow_up,
    negated,
    paragraphs,
    strip_list_mark,
)

# After an opening answer, these introduce an alternative or a correction on the same line.
_ALTERNATIVE = re.compile(
    r"\b(?:or|no\s+wait|wait|actually|rather|i\s+mean|sorry|correction|versus|vs\.?|and|nor)\b|/",
    re.IGNORECASE,
)
# Hedges between an alternative cue and the alternative ("or maybe B", "or possibly it is B").
_HEDGE = re.compile(
    r"^(?:(?:maybe|perhaps|possibly|probably|even|also|rather|it|is|it's|could|might|be|"
    r"would)\s+)+",
    re.IGNORECASE,
)
_NONE_SET = re.compile(
    r"^\W*(?:none|no|n/?a|nothing|not\s+applicable)\W*$"
    r"|\bnone\s+of\s+(?:the|these|them|those)\b(?!\s+\w+\s+except)"
    r"|\bno\s+(?:\w+\s+)?(?:labels?|topics?|categories|category|hallmarks?)\s+(?:apply|applies|"
    r"fit|fits|are\s+applicable|is\s+applicable|match)"
    r"|^\W*(?:none|no\s+labels?|not\s+applicable)\b",
    re.IGNORECASE | re.MULTILINE,
)

Span = tuple[int, int, str]
# Alternatives looked at on an opening line (a degenerate output can repeat "or" thousands of
# times; a real answer line has a few).
MAX_ALTERNATIVES = 20


@dataclass(frozen=True)
class Reading:
    """What a parser read: the prediction, the status and the rule that decided."""

    prediction: Any
    status: str
    rule: str | None


@dataclass(frozen=True)
class ChoiceReader:
    """How one single-answer task recognises its answers in text.

    ``lead(line)``: the answer a line starts with and where it ends, or ``None``.
    ``answer_line(line)``: the answer when the line is nothing but an answer.
    ``mentions(text)``: (position, answer) of every non-negated mention.
    """

    lead: Callable[[str], tuple[str, int] | None]
    answer_line: Callable[[str], str | None]
    mentions: Callable[[str], list[tuple[int, str]]]


def find_phrases(text: str, phrases: Iterable[tuple[str, re.Pattern[str]]]) -> list[Span]:
    """Non-overlapping matches, longest first: a phrase inside a longer matched one (an option
    named inside another option's text) does not count. Returns (start, end, key) by start."""
    found = [(m.start(), m.end(), key) for key, pat in phrases for m in pat.finditer(text)]
    found.sort(key=lambda s: (-(s[1] - s[0]), s[0]))
    taken = bytearray(len(text))
    kept: list[Span] = []
    for s in found:
        if not any(taken[s[0] : s[1]]):
            taken[s[0] : s[1]] = b"\x01" * (s[1] - s[0])
            kept.append(s)
    return sorted(kept)


def unnegated(text: str, spans: Sequence[Span]) -> list[tuple[int, str]]:
    """(position, key) of the spans that do not stand under a negation."""
    return [(s, key) for s, e, key in spans if not negated(text, s, e)]


def _lines(block: str) -> list[str]:
    return [line.strip() for line in block.split("\n") if line.strip()]


def opening(block: str, reader: ChoiceReader) -> tuple[str | None, str]:
    """The answer ``block`` opens with: (answer, OK), (None, AMBIGUOUS) or (None, NO_ANSWER)."""
    lines = _lines(block)
    if not lines:
        return None, NO_ANSWER
    first = strip_list_mark(lines[0])
    hit = reader.lead(first)
    if hit is None:
        return None, NO_ANSWER
    label, end = hit
    for cue in islice(_ALTERNATIVE.finditer(first, end), MAX_ALTERNATIVES):
        after = first[cue.end() : cue.end() + 200].lstrip(" ,:;-")
        for candidate in (after, _HEDGE.sub("", after, count=1)):
            other = reader.lead(candidate)
            if other is not None and other[0] != label:
                return None, AMBIGUOUS
    for line in lines[1:]:
        other_label = reader.answer_line(strip_list_mark(line))
        if other_label is not None and other_label != label:
            return None, AMBIGUOUS
    return label, OK


def single_mention(block: str, reader: ChoiceReader) -> tuple[str | None, str]:
    """The one answer ``block`` names (however often), or why there is none."""
    labels = {label for _, label in reader.mentions(block)}
    if len(labels) == 1:
        return labels.pop(), OK
    return None, AMBIGUOUS if labels else NO_ANSWER


def read_block(block: str, reader: ChoiceReader) -> tuple[str | None, str]:
    """Levels 3 and 4 on one block: its opening, else its single mention."""
    label, status = opening(block, reader)
    if status != NO_ANSWER:
        return label, status
    return single_mention(block, reader)


def _json_choice(value: Any, reader: ChoiceReader) -> tuple[str | None, str] | None:
    answer = answer_field(value)
    if isinstance(answer, list) and len(answer) == 1:
        answer = answer[0]
    if isinstance(answer, (str, int, float)) and not isinstance(answer, bool):
        label, status = read_block(clean(str(answer)), reader)
        return (label, status) if status != NO_ANSWER else None
    return None


@dataclass(frozen=True)
class Levels:
    """One kind of answer's readers for the levels of the reading rule (module docstring).

    ``empty()``: the prediction of an empty output; ``json(value)``: the answer of a JSON
    answer, or None to read the text instead; ``block``, ``opening`` and ``mention``: the
    (prediction, status) of a marker's segment, of the opening and of the single mention;
    ``decided(status)``: whether that status ends the reading (else the next level reads).
    """

    empty: Callable[[], Any]
    json: Callable[[Any], tuple[Any, str] | None]
    block: Callable[[str], tuple[Any, str]]
    opening: Callable[[str], tuple[Any, str]]
    mention: Callable[[str], tuple[Any, str]]
    decided: Callable[[str], bool]


def read_by_levels(raw: str, levels: Levels, headers: Iterable[str] = ()) -> Reading:
    """The reading rule's driver, shared by every kind of answer: the first level that
    decides gives the prediction, and its name is kept as the rule that fired."""
    text, _ = cut_follow_up(raw, headers)
    if not text.strip():
        return Reading(levels.empty(), EMPTY, None)
    value = json_value(text)
    if value is not None:
        found = levels.json(value)
        if found is not None:
            return Reading(found[0], found[1], "json")
    body = clean(text)
    if not body:
        return Reading(levels.empty(), EMPTY, None)
    segment = answer_segment(body)
    if segment is not None:  # a marker followed by nothing (cut at the token cap): no answer
        prediction, status = levels.block(segment)
        return Reading(prediction, status, "marker" if levels.decided(status) else None)
    prediction, status = levels.opening(body)
    if levels.decided(status):
        return Reading(prediction, status, "opening")
    prediction, status = levels.mention(body)
    return Reading(prediction, status, "mention" if levels.decided(status) else None)


@cache
def _choice_levels(reader: ChoiceReader) -> Levels:
    """The levels of a single-answer task (built once per reader: parsing runs per item)."""
    return Levels(
        empty=lambda: None,
        json=lambda value: _json_choice(value, reader),
        block=lambda block: read_block(block, reader),
        opening=lambda body: opening(body, reader),
        mention=lambda body: single_mention(body, reader),
        decided=lambda status: status != NO_ANSWER,
    )


def read_choice(raw: str, reader: ChoiceReader, headers: Iterable[str] = ()) -> Reading:
    """One answer from a raw output by the reading rule (module docstring)."""
    return read_by_levels(raw, _choice_levels(reader), headers)


@dataclass(frozen=True)
class SetReader:
    """How a multi-label task recognises its labels: ``labels(text)`` gives the spans of
    every label named (longest first, see :func:`find_phrases`); ``order`` is the label set."""

    labels: Callable[[str], list[Span]]
    order: tuple[str, ...]


def _named(text: str, reader: SetReader) -> list[str]:
    kept = {key for _, key in unnegated(text, reader.labels(text))}
    return [lab for lab in reader.order if lab in kept]


def _read_set_block(block: str, reader: SetReader) -> tuple[list[str], str]:
    named = _named(block, reader)
    if named:
        return named, OK
    return [], OK if _NONE_SET.search(block) else NO_ANSWER


def _json_set(value: Any, reader: SetReader) -> list[str] | None:
    answer = answer_field(value)
    if isinstance(answer, str):
        answer = [answer]
    if isinstance(answer, list) and all(isinstance(x, str) for x in answer):
        named = [lab for x in answer for lab in _named(clean(x), reader)]
        if named or not answer:
            return [lab for lab in reader.order if lab in named]
        return None
    if isinstance(answer, dict):
        chosen: list[str] = []
        known = False
        for key, flag in answer.items():
            labels = _named(clean(str(key)), reader)
            verdict = truth(flag)
            if labels and verdict is not None:
                known = True
                if verdict:
                    chosen.extend(labels)
        return [lab for lab in reader.order if lab in chosen] if known else None
    return None


def _set_opening(body: str, reader: SetReader) -> tuple[list[str], str]:
    """The labels of the first paragraph when it opens with a label or with "none"."""
    first = paragraphs(body)[0]
    head = strip_list_mark(_lines(first)[0])
    spans = reader.labels(head)
    if (spans and spans[0][0] == 0) or re.match(r"^\W*(?:none|no\s+labels?)\b", head, re.I):
        return _read_set_block(first, reader)
    return [], NO_ANSWER


def _json_set_answer(value: Any, reader: SetReader) -> tuple[list[str], str] | None:
    found = _json_set(value, reader)
    return None if found is None else (found, OK)


@cache
def _set_levels(reader: SetReader) -> Levels:
    """The levels of a multi-label task (built once per reader)."""
    return Levels(
        empty=list,
        json=lambda value: _json_set_answer(value, reader),
        block=lambda block: _read_set_block(block, reader),
        opening=lambda body: _set_opening(body, reader),
        mention=lambda body: _read_set_block(body, reader),
        decided=lambda status: status == OK,
    )


def read_set(raw: str, reader: SetReader, headers: Iterable[str] = ()) -> Reading:
    """A set of labels from a raw output by the reading rule (module docstring)."""
    return read_by_levels(raw, _set_levels(reader), headers)
