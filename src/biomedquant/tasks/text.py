"""Text handling shared by the parsers: clean-up, the answer marker, and label choice.

Small and quantized models wrap answers in markdown, explanations, repeats and second thoughts.
The rules here decide what counts as an answer, and say when there is none instead of guessing:

1. An explicit marker wins: the text after the *last* "Answer:" / "the answer is" (also "final
   answer", "correct answer") is searched first. Chain-of-thought prompts ask for this marker.
2. Without a marker, an output that names exactly one label (however often) gives that label.
3. An output naming several different labels without a marker is ``ambiguous``; one naming none
   is ``no_answer``; an empty one is ``empty``. All three count as unparsable.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_MARKDOWN = re.compile(r"[*_`#>]+")
_MARKER = re.compile(r"\b(?:(?:final|correct)\s+)?answer\s*(?:is\b|:|=)\s*[:\-]?\s*", re.IGNORECASE)

OK = "ok"
EMPTY = "empty"
NO_ANSWER = "no_answer"
AMBIGUOUS = "ambiguous"

Hits = list[tuple[int, str]]


def clean(text: str) -> str:
    """Drop markdown emphasis/code marks, collapse spaces; keep line breaks."""
    text = _MARKDOWN.sub(" ", text or "")
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def answer_segment(text: str) -> str | None:
    """The text after the last answer marker, up to the end of its line (or the next line
    when the marker ends a line); ``None`` when there is no marker."""
    matches = list(_MARKER.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    rest = text[last.end() :]
    first, _, after = rest.partition("\n")
    if first.strip():
        return first.strip()
    return after.strip().split("\n", 1)[0] if after.strip() else ""


def choose_one(
    text: str, find: Callable[[str], Hits], find_marked: Callable[[str], Hits] | None = None
) -> tuple[str | None, str]:
    """One label from ``text`` by the rules above; ``find`` lists (position, label) hits.

    ``find_marked`` (default ``find``) searches the marked answer, where looser cues are
    safe (a bare letter right after "Answer:" is an option letter, not an article).
    """
    body = clean(text)
    if not body:
        return None, EMPTY
    segment = answer_segment(body)
    if segment:
        hits = (find_marked or find)(segment)
        if hits:
            return min(hits)[1], OK
    labels = {label for _, label in find(body)}
    if len(labels) == 1:
        return labels.pop(), OK
    return None, AMBIGUOUS if labels else NO_ANSWER


def word_pattern(label: str) -> re.Pattern[str]:
    """A label as a whole word or phrase; case and the separators ':', '-', '_', space vary."""
    parts = [re.escape(p) for p in re.split(r"[:\-_\s]+", label) if p]
    return re.compile(r"(?<!\w)" + r"[\s:\-_]*".join(parts) + r"(?!\w)", re.IGNORECASE)


def find_words(labels: tuple[str, ...]) -> Callable[[str], Hits]:
    patterns = [(label, word_pattern(label)) for label in labels]

    def find(text: str) -> Hits:
        return [(m.start(), label) for label, pat in patterns for m in pat.finditer(text)]

    return find
