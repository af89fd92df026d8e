"""Text handling shared by the parsers: clean-up, the end of the model's own answer, the
answer marker and its segment, whole-word label patterns and negation.

Small and quantized models wrap answers in markdown, explanations, repeats, second thoughts
and, without a chat template or an end-of-turn token, invented follow-up examples. The helpers
here find the part of an output that is the model's answer; :mod:`.answer_reading` applies the
reading rule to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

OK = "ok"
EMPTY = "empty"
NO_ANSWER = "no_answer"
AMBIGUOUS = "ambiguous"

# Lines that open a turn the model invented (its own next question, a chat turn). The prompt's
# example headers ("Sentence:", "Question:" ...) are added per task by the caller.
TURN_HEADERS = ("User:", "Human:", "### Human", "### Instruction", "### Input", "Instruction:")
# A line that is only a role name: a chat turn whose special tokens were decoded away
# ("<|start_header_id|>user<|end_header_id|>" reads "user").
TURN_ROLES = {"user", "assistant", "system", "model"}

# An explicit answer marker: "Answer:", "the (final/correct) answer is", "Label(s):", "the best
# fitting topic is" ... Only where the marker ends matters, so words before "answer" ("final",
# "correct") need no pattern.
_MARKER = re.compile(
    r"\banswers?(?:\s+to\s+(?:this|the)\s+question)?\s*"
    r"(?:is\b|(?:would|will|might|could|may)\s+be\b|:|=)"
    r"|\b(?:(?:the\s+)?(?:applicable\s+|predicted\s+|correct\s+)?labels?\s+(?:is|are)\b)"
    r"|\bthe\s+(?:correct\s+|best\s+|right\s+)?(?:option|choice)\s+is\b"
    r"|\bthe\s+(?:(?:most\s+)?(?:correct|right|likely|appropriate|accurate|fitting|suitable)\s+"
    r"|best(?:[\s-]+(?:fitting|matching|suited))?\s+)"
    r"(?:topics?|categor(?:y|ies)|hallmarks?|relation(?:\s+type)?|interaction\s+type|class)\s+"
    r"(?:is|are|would\s+be)\b"
    r"|\bI\s*(?:would|will|'d)?\s+(?:choose|pick|select|go\s+with)\b"
    r"|(?m:^\s*(?:final\s+)?(?:label|labels|relation|relation\s+type|classification|prediction|"
    r"category|categories|topics?|output|decision|result|final)\s*:)",
    re.IGNORECASE,
)
# A marker that states what the answer would be under another condition ("in a younger
# patient the answer would be D", "if the trial were larger, the answer might be maybe"): it
# does not replace an answer the output declares outright.
_HYPOTHETICAL_MARKER = re.compile(r"\b(?:might|could|may)\s+be\b", re.IGNORECASE)
CONDITION = re.compile(
    r"\b(?:if|unless|otherwise|were|had|(?:in|for)\s+(?:an?|another|other)\s+"
    r"(?:[\w-]+[\s,]+){0,3}?(?:patients?|adults?|persons?|people|cases?|settings?|scenarios?|"
    r"contexts?|populations?|child|children|wom[ae]n|m[ae]n|trials?|stud(?:y|ies)|cohorts?))\b",
    re.IGNORECASE,
)
# A note after the answer ("Note: ...", "(Note: ...)"): commentary, whose markers do not
# replace the answer declared before it.
_COMMENTARY = re.compile(
    r"(?:^|[.!?]\s+|\(\s*)(?:notes?|caveat|remark|disclaimer|p\.?s\.?|explanation|reason|"
    r"reasons|rationale|justification|why)\s*[:\-]",
    re.IGNORECASE | re.MULTILINE,
)

# A line that starts a new section: the answer segment stops before it.
_SECTION = re.compile(
    r"^(?:explanation|reason|reasons|reasoning|rationale|justification|note|notes|why|"
    r"confidence|evidence|analysis|summary|step\s*\d+|question|context)\b\s*[:\-]",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_EMPHASIS = re.compile(r"[*`]+|(?<!\w)_+|_+(?!\w)")
_QUOTE = re.compile(r"^\s*>+\s?")
# LaTeX answer boxes, as math-tuned models write them: "$\boxed{C}$".
_BOXED = re.compile(r"\\boxed\s*\{([^{}]*)\}")
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|mathrm)\s*\{([^{}]*)\}")

# Marks that say a label does (check) or does not (cross) apply, as in a checklist.
CHECK_MARKS = "\u2713\u2714\u2705\u2611"
CROSS_MARKS = "\u2717\u2718\u274c\u2716\u00d7\u274e"
# Words that put what follows them in the same clause under negation.
_NEGATION = re.compile(
    r"\b(?:not(?!\s+only)|no|never|without|neither|nor|cannot|lacks?|lacking|absence\s+of|"
    r"rather\s+than|instead\s+of|other\s+than|except|excluding|rules?\s+out|ruled\s+out)\b"
    rf"|n't\b|[{CROSS_MARKS}]",
    re.IGNORECASE,
)
# What states, right after a label and a separator, that it does not apply ("Diagnosis: no",
# "Prevention (not discussed)", "| Mechanism | No |", "Treatment - not relevant").
_ABSENT = (
    r"(?:no(?=[ \t]*(?:$|[.,;:!|)\n]))|false|0|absent|none|n/a|not\s+applicable"
    r"|not\s+(?:\w+\s+)?(?:discussed|mentioned|addressed|covered|relevant|applicable|present|"
    r"supported|reported|described|stated|indicated|found|included|selected|the\s+focus|a\s+focus))"
)
# Right after a mention: it is stated not to apply.
_NEGATED_AFTER = re.compile(
    r"[ \t]*(?:(?:is|are|was|were|does|do)\s+not\b|(?:is|are|does|do)n't\b"
    r"|(?:is|are|was|seems)\s+(?:wrong|incorrect|unlikely|excluded|ruled\s+out)\b"
    rf"|(?:[:=\-\u2013\u2014|]|\()[ \t]*{_ABSENT}(?!\w)|[:=\-|]?[ \t]*[{CROSS_MARKS}])",
    re.IGNORECASE,
)
# How far back a negation is looked for (characters); longer clauses are cut there.
CLAUSE_WINDOW = 200
# Where a clause starts: sentence ends, line breaks, semicolons, colons, commas, "but", a table
# cell, a check or cross mark (which opens the clause it marks).
_CLAUSE_BREAK = re.compile(
    rf"[.;:!?\n,|]|\bbut\b|\bhowever\b|\bwhile\b|\bwhereas\b|(?=[{CHECK_MARKS}{CROSS_MARKS}])",
    re.IGNORECASE,
)


def cut_follow_up(text: str, headers: Iterable[str] = ()) -> tuple[str, bool]:
    """The output up to the first line that starts an invented next example or turn (a
    header, a "User:" line, or a line that is only a role name).

    ``headers`` are the prompt format's input headers (the next example's "Sentence:" or
    "Question:" line). A header on the output's first non-empty line is the model echoing the
    input format, not a follow-up, so only later lines cut. Returns (text, whether it was cut).
    """
    text = text or ""
    starts = tuple(h.lower() for h in (*headers, *TURN_HEADERS))
    seen_content = False
    pos = 0
    for line in text.splitlines(keepends=True):
        stripped = _EMPHASIS.sub("", line).strip().lower()
        if seen_content and (stripped.startswith(starts) or stripped in TURN_ROLES):
            return text[:pos].rstrip(), True
        seen_content = seen_content or bool(stripped)
        pos += len(line)
    return text, False


# Typographic quotes as the straight ones every reader knows ("“Yes”" reads as '"Yes"').
_TYPOGRAPHIC_QUOTES = str.maketrans(
    {"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'"}
)


def straight_quotes(text: str) -> str:
    """Typographic quotes as straight ones (what :func:`clean` does to outputs; option texts
    matched against cleaned outputs need the same)."""
    return text.translate(_TYPOGRAPHIC_QUOTES)


def clean(text: str) -> str:
    """Drop markdown emphasis, code marks, quote marks and LaTeX answer boxes, turn
    typographic quotes straight, collapse spaces; keep line breaks.

    A markdown heading becomes a new paragraph (a blank line before it), so an answer segment
    ends where the model's next section starts; runs of blank lines become one.
    """
    text = (text or "").replace("\r\n", "\n").translate(_TYPOGRAPHIC_QUOTES)
    text = _LATEX_TEXT.sub(r"\1", text)
    text = _BOXED.sub(r" \1 ", text).replace("$", " ")
    out: list[str] = []
    for raw in text.split("\n"):
        heading = bool(_HEADING.match(raw))
        line = _QUOTE.sub("", _HEADING.sub("", raw))
        line = re.sub(r"[ \t\f\v\r]+", " ", _EMPHASIS.sub(" ", line)).strip()
        if heading and out and out[-1]:
            out.append("")
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _declared(text: str, matches: list[re.Match[str]]) -> re.Match[str]:
    """The marker that declares the answer: the last one, unless later ones only say what the
    answer would be under another condition or stand in a note after it (then the last marker
    before them). A careful annotator reads "Answer: B. ... Note: in a younger patient the
    answer would be D" as B."""
    declared = []
    for i, m in enumerate(matches):
        sentence_start = max(text.rfind(c, 0, m.start()) for c in ".!?\n") + 1
        hypothetical = bool(
            _HYPOTHETICAL_MARKER.search(m.group(0))
            or CONDITION.search(text, sentence_start, m.start())
        )
        since = matches[i - 1].end() if i else 0
        paragraph = text.rfind("\n\n", 0, m.start())
        in_note = i > 0 and bool(_COMMENTARY.search(text, max(since, paragraph + 1), m.start()))
        if not hypothetical and not in_note:
            declared.append(m)
    return declared[-1] if declared else matches[-1]


def answer_segment(text: str) -> str | None:
    """The text after the answer marker that declares the answer (the last one, see
    :func:`_declared`), up to a blank line or a new section.

    When the marker ends its line, the segment starts on the next non-empty line. ``None``
    when there is no marker; ``""`` when nothing follows it.
    """
    matches = list(_MARKER.finditer(text))
    if not matches:
        return None
    rest = text[_declared(text, matches).end() :].lstrip(" \t:-=")
    lines = rest.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    segment: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip() or (i and _SECTION.match(line.strip())):
            break
        segment.append(line.strip())
    return "\n".join(segment).strip()


def paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks of a cleaned text."""
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def word_pattern(label: str) -> re.Pattern[str]:
    """A label as a whole word or phrase; case, the separators ':', '-', '_', space, and "&"
    for "and" vary ("activating invasion & metastasis")."""
    parts = [
        "(?:and|&)" if p.lower() == "and" else re.escape(p)
        for p in re.split(r"[:\-_\s]+", label)
        if p
    ]
    return re.compile(r"(?<![\w-])" + r"[\s:\-_]*".join(parts) + r"(?![\w-])", re.IGNORECASE)


def negated(text: str, start: int, end: int | None = None) -> bool:
    """Whether a mention at ``text[start:end]`` stands under a negation.

    Before it, in its clause: "does not discuss Diagnosis", "not CPR:4", "without Treatment",
    "rather than B", a cross mark (clauses end at sentence punctuation, line breaks, commas,
    "but", "however", table cells, check and cross marks). Right after it: "Prevention is not
    relevant", "Diagnosis: no", "Mechanism - false", "Prevention (not discussed)", a table
    cell "| No |", a cross mark.
    """
    window = max(0, start - CLAUSE_WINDOW)  # bounded: long outputs stay linear to read
    breaks = [m.end() for m in _CLAUSE_BREAK.finditer(text, window, start)]
    clause = text[breaks[-1] if breaks else window : start]
    if _NEGATION.search(clause):
        return True
    return end is not None and bool(_NEGATED_AFTER.match(text, end))


def strip_list_mark(line: str) -> str:
    """A line without its bullet or number ("- x", "* x", "1. x", "2) x")."""
    return re.sub(r"^\s*(?:[-*\u2022+]|\d+[.)])\s+", "", line)
