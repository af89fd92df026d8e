"""Question answering: an option letter (MedQA) or a decision word (PubMedQA)."""

from __future__ import annotations

import re
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.metrics import single_label_scores
from biomedquant.tasks.text import Hits, choose_one, find_words


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


def render_answer(spec: DatasetSpec, rec: Record) -> str:
    return rec["answer"]


def _letter_finder(options: dict[str, str]) -> Any:
    letters = "".join(sorted(options))
    cls = f"[{re.escape(letters)}]"
    cues = (
        re.compile(rf"(?m)^\(?({cls})\)?(?:[.):,]|\s*$)"),  # "D", "D.", "(D)", "D) ..."
        re.compile(rf"\(({cls})\)"),  # "... (D) ..."
        re.compile(rf"\boption\s*\(?({cls})\b", re.IGNORECASE),  # "option D"
    )
    texts = [(k, v.lower()) for k, v in options.items() if len(v.strip()) >= 3]

    def find(text: str) -> Hits:
        hits = [(m.start(1), m.group(1)) for cue in cues for m in cue.finditer(text)]
        low = text.lower()
        for key, value in texts:  # the option's own words, when the model answers in words
            for m in re.finditer(re.escape(value), low):
                hits.append((m.start(), key))
        return hits

    return find


def _marked_letter_finder(options: dict[str, str]) -> Any:
    """In a marked answer, a leading letter counts whatever follows it ("C because ...")."""
    find = _letter_finder(options)
    lead = re.compile(rf"^\(?([{re.escape(''.join(sorted(options)))}])\)?(?!\w)", re.IGNORECASE)

    def find_marked(text: str) -> Hits:
        m = lead.match(text)
        return [(0, m.group(1).upper())] if m else find(text)

    return find_marked


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[str | None, str]:
    if is_multiple_choice(spec):
        options = rec["options"]
        return choose_one(text, _letter_finder(options), _marked_letter_finder(options))
    return choose_one(text, find_words(spec.labels))


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return single_label_scores(gold, pred)
