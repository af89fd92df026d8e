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
   The marker that counts is the last one that declares an answer: a later marker that only
   says what the answer would be under another condition ("in a younger patient the answer
   would be D") or stands in a note after the answer ("Note: ...") does not replace it.
3. ``conclusion``: the last sentence that concludes, without a marker, with an answer: "so C
   fits best", "Therefore, no.", "D is correct." (a connective, then an answer; or an answer
   followed by "is correct", "is the best choice" ...). Reasoning before a conclusion reviews;
   the conclusion answers. A conclusion that rejects ("so A is wrong") is none.
4. ``opening``: the answer the output opens with ("C. Warfarin ...", "Yes, the results ...",
   "yes yes yes" repeated to the token cap).
5. ``mention``: a single answer named anywhere, however often.

Two different answers at the same level are ``ambiguous`` (an opening followed by "or"/"no
wait" and another answer; another line that is nothing but a different answer; an
option-by-option review, "A. ... unlikely. B. ...", with no conclusion; two different
mentions). A mention under negation ("not", "no", "without", "does not discuss", "rather
than", "(not discussed)", a cross mark, a "No" table cell) is not an answer. An output naming
nothing is ``no_answer``; an empty one ``empty``. All three are unparsable. Each parse records
the level that decided it (``parse_rule``).

Multi-label answers are sets: the marked segment, else the opening paragraph when its first
line is nothing but labels, else the last conclusion ("Overall, Treatment."), else the opening
paragraph when it opens with a label, else every label named; naming a label is predicting it
unless it is negated, and an explicit "none of the labels" is the empty set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import islice
from typing import Any

from biomedquant.tasks.json_answer import (
    ANSWER_KEYS,
    PRESENCE_KEYS,
    answer_field,
    json_value,
    norm_key,
    truth,
)
from biomedquant.tasks.text import (
    AMBIGUOUS,
    CONDITION,
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

# The values a presence flag takes ("interaction": "yes").
_FLAG_WORDS = {"true", "false", "yes", "no"}

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

# After an opening answer, the start of its explanation ("CPR:6 - an antagonist, not an agonist
# (CPR:5)", "DDI-effect: the sentence states ..."): what the explanation names is not offered
# as another answer, unless it opens with a correction ("C - or rather D").
_EXPLANATION = re.compile(
    r"\s*(?::|-\s|[\u2013\u2014]|\(|\b(?:because|since|as|which|meaning)\b)\s*"
    r"(?!(?:or|no\s+wait|wait|actually|rather|i\s+mean|sorry|correction|versus|vs\.?)\b)"
    r"[\w@\"']",
    re.IGNORECASE,
)
# After an answer that opens a line, what makes the line one item of an option-by-option
# review ("A. Aspirin - antiplatelet only, unlikely."): a separator, then the assessment.
_REVIEW_ITEM = re.compile(r"^\s*(?:[:\-\u2013\u2014.)]|is\b|are\b)\s*\S", re.IGNORECASE)
# The words that make a sentence a conclusion ("so", "therefore", "overall" ..., "the drug of
# choice is", "the most likely diagnosis is").
_CONNECTIVE = re.compile(
    r"(?:(?:and|but)\s+)?(?:so|thus|therefore|hence|consequently|accordingly|ultimately|overall|"
    r"in\s+conclusion|in\s+summary|in\s+short|to\s+conclude|to\s+summari[sz]e|all\s+in\s+all"
    r"|the\s+(?:[\w-]+\s+){1,3}?of\s+choice\s+(?:is|would\s+be)"
    r"|the\s+(?:most\s+(?:likely|appropriate|probable)|best|preferred)\s+(?:[\w-]+\s+){0,4}?"
    r"(?:is|would\s+be))\b[\s,:]*",
    re.IGNORECASE,
)
# Where a sentence (or, after a comma, a clause) may start.
_SENTENCE_START = re.compile(r"(?m)^[ \t]*|(?<=[.!?;:,])[ \t]+")
# After an answer: it is affirmed ("is correct", "fits best", "is the best choice") ...
_AFFIRMED = re.compile(
    r"^\s*(?:(?:is|are|seems|seems\s+to\s+be|appears|appears\s+to\s+be|remains|must\s+be)\s+)?"
    r"(?:the\s+)?(?:most\s+)?(?:correct|right|best|likeliest|likely\s+(?:answer|option|choice)|"
    r"appropriate|accurate|fitting|suitable|fits?(?:\s+best)?|applies|answer)\b",
    re.IGNORECASE,
)
# ... or rejected ("is wrong", "is unlikely", "can be ruled out").
_VERDICT_AGAINST = (
    r"(?:wrong|incorrect|unlikely|less\s+likely|ruled\s+out|excluded|inappropriate|"
    r"contraindicated|false|insufficient|inadequate|ineffective|avoided|too\s+\w+)\b"
)
_REJECTED = re.compile(
    r"^\s*(?:(?:[a-z]+\s+){0,2}?(?:is|are|was|seems|appears|can\s+be|must\s+be)\s+(?:not\b|"
    rf"{_VERDICT_AGAINST})|(?:is|are|was|does|do)n't\b|(?:[-:\u2013\u2014]\s*)?{_VERDICT_AGAINST})",
    re.IGNORECASE,
)

# The sentences looked at for a conclusion, counted from the end, and how much of each: a
# conclusion is short and near the end, and a degenerate output ("so yes, so yes, ..." to the
# token cap) holds thousands of sentence starts that must not cost quadratic time.
MAX_SENTENCES = 60
SENTENCE_WINDOW = 400

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
    ``negative``: the answer that says there is none (a relation task's "no relation"), which
    a JSON flag such as ``"interaction": false`` names; ``None`` where there is no such answer.
    """

    lead: Callable[[str], tuple[str, int] | None]
    answer_line: Callable[[str], str | None]
    mentions: Callable[[str], list[tuple[int, str]]]
    negative: str | None = None


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


def repeated_answer(block: str, reader: ChoiceReader) -> str | None:
    """The answer of a degenerate output that repeats one answer ("yes yes yes ...", "C C C"),
    the last repeat possibly cut at the token cap ("yes yes ye"); else ``None``."""
    tokens = [t for t in re.split(r"[\s,;.!]+", block) if t]
    if len(tokens) < 2:
        return None
    head = tokens[0].lower()
    *body, last = (t.lower() for t in tokens)
    if any(t != head for t in body) or not head.startswith(last):
        return None
    return reader.answer_line(tokens[0])


def _review_item(line: str, reader: ChoiceReader) -> str | None:
    """The answer a line reviews when it is one item of an option-by-option review ("B.
    Heparin - acute only."), unless the line rejects it by a negation."""
    hit = reader.lead(line)
    if hit is None or not _REVIEW_ITEM.match(line[hit[1] :]) or negated(line, 0, hit[1]):
        return None
    return hit[0]


def opening(block: str, reader: ChoiceReader) -> tuple[str | None, str]:
    """The answer ``block`` opens with: (answer, OK), (None, AMBIGUOUS) or (None, NO_ANSWER).

    Ambiguous when an alternative follows on the opening line ("C, or maybe D"; not inside the
    answer's explanation), when another line is nothing but a different answer, or when the
    opening line is one item of an option-by-option review that goes on to another answer."""
    lines = _lines(block)
    if not lines:
        return None, NO_ANSWER
    repeated = repeated_answer(block, reader)
    if repeated is not None:
        return repeated, OK
    first = strip_list_mark(lines[0])
    hit = reader.lead(first)
    if hit is None or negated(first, 0, hit[1]) or _REJECTED.match(first[hit[1] :]):
        return None, NO_ANSWER  # "B is wrong ...", "DDI-effect: no ...": not the answer
    label, end = hit
    explained = _EXPLANATION.match(first, end)
    for cue in islice(_ALTERNATIVE.finditer(first, end), MAX_ALTERNATIVES):
        if explained:
            break
        after = first[cue.end() : cue.end() + 200].lstrip(" ,:;-")
        for candidate in (after, _HEDGE.sub("", after, count=1)):
            other = reader.lead(candidate)
            if other is not None and other[0] != label:
                return None, AMBIGUOUS
    reviewing = _review_item(first, reader) is not None
    for line in lines[1:]:
        item = strip_list_mark(line)
        other_label = reader.answer_line(item)
        if other_label is not None and other_label != label:
            return None, AMBIGUOUS
        if reviewing and _review_item(item, reader) not in (None, label):
            return None, AMBIGUOUS
    return label, OK


def _sentences(body: str) -> list[tuple[str, int, bool]]:
    """The last sentences (or clauses after a comma), each to the end of its line (at most
    ``SENTENCE_WINDOW`` characters): its text, where its answer part starts (after a
    connective such as "so", "therefore"), and whether it opens with a connective."""
    found = []
    starts = list(_SENTENCE_START.finditer(body))[-MAX_SENTENCES:]
    for m in starts:
        line_end = body.find("\n", m.end())
        end = min(len(body) if line_end < 0 else line_end, m.end() + SENTENCE_WINDOW)
        sentence = body[m.end() : end]
        connective = _CONNECTIVE.match(sentence)
        if connective:
            found.append((sentence, connective.end(), True))
        elif sentence and (m.start() == 0 or body[m.start() - 1] != ","):
            sentence = strip_list_mark(sentence)
            found.append((sentence, 0, False))
    return found


def _concluded(sentence: str, start: int, reader: ChoiceReader) -> tuple[str, int] | None:
    """The answer the part of ``sentence`` from ``start`` opens with, and where it ends; after
    a connective also a mention right there ("so C suits her best")."""
    hit = reader.lead(sentence[start:])
    if hit is not None:
        return hit[0], start + hit[1]
    if start:
        at_start = [label for pos, label in reader.mentions(sentence) if pos == start]
        if at_start:
            return at_start[0], start + len(re.match(r"\S*", sentence[start:]).group(0))
    return None


def conclusion(body: str, reader: ChoiceReader) -> tuple[str | None, str]:
    """The answer of the last sentence that concludes with one (module docstring, level 3).

    A sentence concludes when it opens with a connective and then an answer that it does not
    reject ("so C fits best", "Therefore, no."), or opens with an answer it affirms ("D is
    correct.") outside a condition. An answer-only first line that the conclusion contradicts
    makes the output ambiguous."""
    for sentence, start, connective in reversed(_sentences(body)):
        hit = _concluded(sentence, start, reader)
        if hit is None:
            continue
        rest = sentence[hit[1] :]
        if _REJECTED.match(rest):
            continue
        if connective or (_AFFIRMED.match(rest) and not CONDITION.search(sentence)):
            label, status = opening(sentence[start:], reader)
            if status == NO_ANSWER:
                label, status = hit[0], OK
            first = reader.answer_line(strip_list_mark(_lines(body)[0]))
            if status == OK and first not in (None, label):
                return None, AMBIGUOUS
            return label, status
    return None, NO_ANSWER


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


def _json_presence(value: dict[str, Any], reader: ChoiceReader) -> tuple[str | None, str] | None:
    """A relation stated as a flag and a type (``{"interaction": true, "type": "advise"}``):
    a false flag is the negative answer, a true one the type it names. A flag and a type that
    contradict each other (false with a type, true with the negative) are two answers."""
    flags = [
        truth(v)
        for k, v in value.items()
        if norm_key(k) in PRESENCE_KEYS and (isinstance(v, bool) or str(v).lower() in _FLAG_WORDS)
    ]
    if not flags or flags[0] is None or reader.negative is None:
        return None
    typed = next(
        (
            str(v)
            for k, v in value.items()
            if norm_key(k) not in PRESENCE_KEYS
            and norm_key(k) in ANSWER_KEYS
            and isinstance(v, (str, int, float))
            and not isinstance(v, bool)
            and str(v).strip().lower() not in ("", "none", "null", "n/a")
        ),
        None,
    )
    named = read_block(clean(typed), reader) if typed is not None else (None, NO_ANSWER)
    if flags[0] is False:
        if named[1] == OK and named[0] != reader.negative:
            return None, AMBIGUOUS
        return reader.negative, OK
    if named[1] == OK and named[0] == reader.negative:
        return None, AMBIGUOUS
    return named if named[1] != NO_ANSWER else None


def _json_choice(value: Any, reader: ChoiceReader) -> tuple[str | None, str] | None:
    if isinstance(value, dict):
        flagged = _json_presence(value, reader)
        if flagged is not None:
            return flagged
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
    answer, or None to read the text instead; ``block``, ``conclusion``, ``opening`` and
    ``mention``: the (prediction, status) of a marker's segment, of the last conclusion, of
    the opening and of the single mention; ``decided(status)``: whether that status ends the
    reading (else the next level reads).
    """

    empty: Callable[[], Any]
    json: Callable[[Any], tuple[Any, str] | None]
    block: Callable[[str], tuple[Any, str]]
    conclusion: Callable[[str], tuple[Any, str]]
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
    prediction, status = levels.conclusion(body)
    if levels.decided(status):
        return Reading(prediction, status, "conclusion")
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
        conclusion=lambda body: conclusion(body, reader),
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


def _only_labels(line: str, reader: SetReader) -> bool:
    """Whether a line is nothing but labels and separators ("Treatment; Mechanism")."""
    spans = reader.labels(line)
    if not spans:
        return False
    rest = list(line)
    for s, e, _ in spans:
        rest[s:e] = " " * (e - s)
    return not re.sub(r"\b(?:and|or)\b|[\W_]", "", "".join(rest))


def _set_conclusion(body: str, reader: SetReader) -> tuple[list[str], str]:
    """The labels of the last sentence that opens with a connective and then a label
    ("Overall, Treatment."), unless the output opens with a line of labels: that line is the
    answer, and a conclusion after it comments on it."""
    if _only_labels(strip_list_mark(_lines(body)[0]), reader):
        return [], NO_ANSWER
    for sentence, start, connective in reversed(_sentences(body)):
        part = sentence[start:]
        spans = reader.labels(part)
        if connective and spans and spans[0][0] == 0:
            end = re.search(r"[.!?](?:\s|$)", part)
            return _read_set_block(part[: end.start() if end else None], reader)
    return [], NO_ANSWER


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
        conclusion=lambda body: _set_conclusion(body, reader),
        opening=lambda body: _set_opening(body, reader),
        mention=lambda body: _read_set_block(body, reader),
        decided=lambda status: status == OK,
    )


def read_set(raw: str, reader: SetReader, headers: Iterable[str] = ()) -> Reading:
    """A set of labels from a raw output by the reading rule (module docstring)."""
    return read_by_levels(raw, _set_levels(reader), headers)
