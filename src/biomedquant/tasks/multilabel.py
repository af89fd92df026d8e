"""Multi-label classification: the set of topic labels that apply to a document."""

from __future__ import annotations

import re
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.metrics import multilabel_scores
from biomedquant.tasks.text import EMPTY, NO_ANSWER, OK, answer_segment, clean, find_words

_NONE = re.compile(r"\b(none|no label|no labels|not applicable)\b", re.IGNORECASE)


def description(spec: DatasetSpec) -> str:
    options = "\n".join(f"- {lab}" for lab in spec.labels)
    return (
        "Which of the following topics apply to a biomedical text? Choose one or more of "
        f"these labels:\n{options}\n"
        "Answer with the applicable labels separated by semicolons, and nothing else."
    )


def render_input(spec: DatasetSpec, rec: Record) -> str:
    return f"Text: {rec['text']}"


def render_answer(spec: DatasetSpec, rec: Record) -> str:
    return "; ".join(rec["labels"]) if rec["labels"] else "none"


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[list[str], str]:
    """Every label named (after the answer marker when there is one), in label-set order.

    A set answer has no contradiction to resolve: naming a label is predicting it. An explicit
    "none" is an empty prediction; naming nothing at all is unparsable.
    """
    body = clean(text)
    if not body:
        return [], EMPTY
    segment = answer_segment(body)
    find = find_words(spec.labels)
    scope = segment if segment and (find(segment) or _NONE.search(segment)) else body
    named = {label for _, label in find(scope)}
    if named:
        return [lab for lab in spec.labels if lab in named], OK
    return [], OK if _NONE.search(scope) else NO_ANSWER


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return multilabel_scores(gold, pred)
