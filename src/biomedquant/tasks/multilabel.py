"""Multi-label classification: the set of topic labels that apply to a document."""

from __future__ import annotations

import re
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.metrics import multilabel_scores
from biomedquant.tasks.text import clean

_NONE = re.compile(r"\b(none|no label|not applicable)\b", re.IGNORECASE)


def instruction(spec: DatasetSpec, rec: Record) -> str:
    options = "\n".join(f"- {lab}" for lab in spec.labels)
    return (
        "Which of the following topics apply to the biomedical text below? Choose one or more "
        f"of these labels:\n{options}\n"
        "Answer with the applicable labels separated by semicolons, and nothing else.\n\n"
        f"Text: {rec['text']}"
    )


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[list[str], bool]:
    """Every label named in the output (in label-set order); empty and not ok if none is."""
    body = clean(text)
    found = [
        lab
        for lab in spec.labels
        if re.search(r"(?<!\w)" + re.escape(lab) + r"(?!\w)", body, re.IGNORECASE)
    ]
    if found:
        return found, True
    return [], bool(_NONE.search(body))


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return multilabel_scores(gold, pred)
