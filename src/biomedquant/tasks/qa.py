"""Question answering: an option letter (MedQA) or a decision word (PubMedQA).

Both are read by the reading rule of :mod:`.answer_reading`; this module says what counts as
naming an answer.

Option letters count when they are upper-case or stand alone: "D", "(b)", "b.", "b)",
"option b", a letter opening a line ("C. Warfarin"), an upper-case letter after a word such as
"is", "choose" or "option". Never the article ("A 45-year-old man ...", "the answer is a
calcium channel blocker"), never a letter inside a word or abbreviation ("B12", "e.g."), never a
letter after a noun ("vitamin D", "hepatitis B"). Option texts count as whole words, case and
spacing aside; the longest match wins, so an option named inside another option's text
("Hepatitis B" inside "Hepatitis B vaccine") does not count, and a letter inside a matched
option text is not a letter. Decision words count when they stand as a clause of their own
("Yes, ...", "..., no.", "I would say maybe", "No (p = 0.4)", "yes [see results]"), not inside a
sentence ("there is no risk").
"""

from __future__ import annotations

import re
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.tasks.answer_reading import (
    ChoiceReader,
    find_phrases,
    read_choice,
    unnegated,
)
from biomedquant.tasks.metrics import single_label_scores
from biomedquant.tasks.text import straight_quotes

# Words after which an upper-case letter is an option letter ("I would choose D").
_LETTER_CUES = (
    "is|be|was|option|options|choice|choose|chose|pick|select|answer|letter|correct|go|with|"
    "are|or|and|between|than|not|either|so|thus|therefore|hence"
)
# After a letter opening a line, words that show the letter is the answer ("C is correct").
_AFTER_LETTER = re.compile(
    r"^\s*(?:(?:is|because|since|as|would|should|seems|appears|fits|best|correct|or|and|nor)\b"
    r"|[-\u2013\u2014=(/])",
    re.IGNORECASE,
)
_DECISION_CUES = re.compile(
    r"\b(?:say|says|is|be|answer|conclude|concludes|concluded|verdict|decision)$", re.IGNORECASE
)


def is_multiple_choice(spec: DatasetSpec) -> bool:
    return all(len(lab) == 1 and lab.isupper() for lab in spec.labels)


def description(spec: DatasetSpec) -> str:
    if is_multiple_choice(spec):
        return (
            "Answer medical exam questions. Reply with the letter of the single correct "
            "option only."
        )
    words = ", ".join(spec.labels[:-1]) + f" or {spec.labels[-1]}"
    return f"Answer research questions using the abstract given with each. Reply with {words} only."


def render_input(spec: DatasetSpec, rec: Record) -> str:
    if is_multiple_choice(spec):
        options = "\n".join(f"{k}. {v}" for k, v in rec["options"].items())
        return f"Question: {rec['question']}\nOptions:\n{options}"
    return f"Abstract: {rec['context']}\nQuestion: {rec['question']}"


def headers(spec: DatasetSpec) -> tuple[str, ...]:
    """The line that starts the next example in the prompt format."""
    return ("Question:",) if is_multiple_choice(spec) else ("Abstract:",)


def render_answer(spec: DatasetSpec, rec: Record) -> str:
    return rec["answer"]


def _phrase(text: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in straight_quotes(text).split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def letter_reader(options: dict[str, str]) -> ChoiceReader:
    """What names an option of one MedQA item (see the module docstring)."""
    keys = "".join(sorted(options))
    cls = f"[{re.escape(keys)}{re.escape(keys.lower())}]"
    texts = [(k, _phrase(v)) for k, v in options.items() if len(v.strip()) >= 3]
    lead_letter = re.compile(
        rf"^(?:(?:option|choice|letter)\s*[:\-]?\s*)?(\(|\[)?\s*({cls})\s*([)\]])?", re.IGNORECASE
    )
    cue_letter = re.compile(
        rf"\b(?:option|choice|letter)\s*[:\-]?\s*[(\[]?({cls})(?![\w'])(?!\.\w)", re.IGNORECASE
    )
    bracket = re.compile(rf"[(\[]({cls})[)\]]")
    line_start = re.compile(rf"(?m)^\s*[(\[]?({cls})[)\].:](?!\w)")
    standalone = re.compile(rf"(?<![\w.\-'/])([{re.escape(keys)}])(?![\w'\-/])(?!\.\w)")

    def text_spans(line: str) -> list[tuple[int, int, str]]:
        return find_phrases(line, texts)

    def _norm(text: str) -> str:
        return re.sub(r"\s+", " ", straight_quotes(text)).strip(" .;:,!").lower()

    exact = {_norm(v): k for k, v in options.items() if _norm(v)}

    def lead(line: str) -> tuple[str, int] | None:
        """The option a line opens with; its end covers the option's text when the letter is
        followed by it ("E. Mixed respiratory and metabolic acidosis"), so words inside that
        text are not read as alternatives."""
        if _norm(line) in exact:  # the whole line is one option's text, however short ("16")
            return exact[_norm(line)], len(line)
        spans = text_spans(line)
        if spans and spans[0][0] == 0:
            return spans[0][2], spans[0][1]
        m = lead_letter.match(line)
        if not m:
            return None
        letter, after = m.group(2).upper(), line[m.end() :]
        closed = bool(m.group(3))
        if after.startswith(".") and re.match(r"\.\w", after):
            return None  # an abbreviation: "e.g."
        rest = after.lstrip(".):,; ")
        offset = len(line) - len(rest)
        own = [s for s in text_spans(rest) if s[0] == 0]
        if own and own[0][2] != letter:
            return None  # "D. Heparin" when heparin is B: no clear opening
        end = offset + own[0][1] if own else m.end()
        if not after.strip() or closed or after[0] in ".):,;":
            return letter, end
        if m.group(2).isupper() and (own or _AFTER_LETTER.match(after)):
            return letter, end
        return None  # "A 45-year-old ...", "a calcium channel blocker"

    def answer_line(line: str) -> str | None:
        """The option when the line is only a letter and/or that option's text."""
        hit = lead(line)
        if hit is None:
            return None
        label, end = hit
        rest = line[end:].strip(" .:;,)-")
        spans = text_spans(rest)
        if not rest or (len(spans) == 1 and spans[0][2] == label and spans[0][1] == len(rest)):
            return label
        return None

    def mentions(text: str) -> list[tuple[int, str]]:
        spans = text_spans(text)
        masked = list(text)
        for s, e, _ in spans:
            masked[s:e] = " " * (e - s)
        plain = "".join(masked)
        hits = list(spans)
        for pattern in (cue_letter, bracket, line_start):
            hits += [(m.start(1), m.end(1), m.group(1).upper()) for m in pattern.finditer(plain)]
        for m in standalone.finditer(plain):
            before = plain[max(0, m.start() - 40) : m.start()].rstrip(" \t")
            after = plain[m.end() : m.end() + 40]
            word_before = re.search(r"(\w+)$", before)
            if word_before and not re.fullmatch(_LETTER_CUES, word_before.group(1), re.I):
                continue  # "vitamin D", "type B"
            if m.group(1) == "A" and re.match(r"\s+[a-z0-9]", after):
                continue  # the article
            hits.append((m.start(1), m.end(1), m.group(1)))
        unique = sorted(set(hits))
        return unnegated(text, unique)

    return ChoiceReader(lead=lead, answer_line=answer_line, mentions=mentions)


def word_reader(labels: tuple[str, ...]) -> ChoiceReader:
    """What names a decision word (PubMedQA's yes / no / maybe)."""
    alts = "|".join(re.escape(lab) for lab in labels)
    # the word may stand in quotes ("'Yes' - statin users ..."; typographic ones are
    # straightened by ``clean``)
    lead_re = re.compile(
        rf"^[\"']?({alts})[\"']?(?=\s*(?:$|[,.;:!?()\[\]/\-\u2013\u2014]|or\b|and\b|but\b))",
        re.IGNORECASE,
    )
    word = re.compile(rf"(?<![\w-])({alts})(?![\w-])", re.IGNORECASE)
    canon = {lab.lower(): lab for lab in labels}

    def lead(line: str) -> tuple[str, int] | None:
        m = lead_re.match(line)
        return (canon[m.group(1).lower()], m.end()) if m else None

    def answer_line(line: str) -> str | None:
        m = re.fullmatch(rf"\W*({alts})\W*", line, re.IGNORECASE)
        return canon[m.group(1).lower()] if m else None

    def mentions(text: str) -> list[tuple[int, str]]:
        hits = []
        for m in word.finditer(text):
            before = text[max(0, m.start() - 40) : m.start()].rstrip(" \t\"'")
            after = text[m.end() : m.end() + 40].lstrip(" \t\"'")
            standing_before = (
                not before or before[-1] in "\n.,;:!?(|" or _DECISION_CUES.search(before)
            )
            standing_after = not after or after[0] in "\n.,;:!?()[]|"
            if standing_before and standing_after:
                hits.append((m.start(), m.end(), canon[m.group(1).lower()]))
        return unnegated(text, hits)

    return ChoiceReader(lead=lead, answer_line=answer_line, mentions=mentions)


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[str | None, str, str | None]:
    reader = letter_reader(rec["options"]) if is_multiple_choice(spec) else word_reader(spec.labels)
    reading = read_choice(text, reader, headers(spec))
    return reading.prediction, reading.status, reading.rule


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return single_label_scores(gold, pred)
