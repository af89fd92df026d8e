"""Question answering: an option letter (MedQA) or a decision word (PubMedQA)."""

from __future__ import annotations

import re
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.metrics import single_label_scores
from biomedquant.tasks.text import clean


def is_multiple_choice(spec: DatasetSpec) -> bool:
    return all(len(lab) == 1 and lab.isupper() for lab in spec.labels)


def instruction(spec: DatasetSpec, rec: Record) -> str:
    if is_multiple_choice(spec):
        options = "\n".join(f"{k}. {v}" for k, v in rec["options"].items())
        return (
            "Answer the following medical exam question. Reply with the letter of the single "
            "correct option only.\n\n"
            f"Question: {rec['question']}\nOptions:\n{options}"
        )
    words = ", ".join(spec.labels[:-1]) + f" or {spec.labels[-1]}"
    return (
        "Answer the research question using the abstract below. Reply with "
        f"{words} only.\n\n"
        f"Abstract: {rec['context']}\nQuestion: {rec['question']}"
    )


_LETTER_CUES = (
    r"answer\s*(?:is|:)?\s*(?:option\s*)?\(?([A-Z])\)?(?![\w])",
    r"^\(?([A-Z])\)?(?:[.):\s]|$)",
    r"option\s*\(?([A-Z])\)?(?![\w])",
    r"\(([A-Z])\)",
)


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[str | None, bool]:
    body = clean(text)
    if is_multiple_choice(spec):
        letters = set(rec["options"])
        for cue in _LETTER_CUES:
            flags = re.IGNORECASE | re.MULTILINE if cue.startswith("answer") else re.MULTILINE
            for m in re.finditer(cue, body, flags):
                if m.group(1).upper() in letters:
                    return m.group(1).upper(), True
        # The option text itself, when the model answers in words.
        for key, value in rec["options"].items():
            if value and value.lower() in body.lower():
                return key, True
        return None, False
    hits = sorted(
        (m.start(), lab)
        for lab in spec.labels
        for m in re.finditer(rf"\b{re.escape(lab)}\b", body, re.IGNORECASE)
    )
    if not hits:
        return None, False
    return hits[0][1], True


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return single_label_scores(gold, pred)
