"""Relation extraction: one label for the pair of masked entities in a sentence."""

from __future__ import annotations

import re
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.metrics import single_label_scores
from biomedquant.tasks.text import clean


def instruction(spec: DatasetSpec, rec: Record) -> str:
    options = "\n".join(
        f"- {lab}: {spec.label_help.get(lab, '')}".rstrip(": ") for lab in spec.labels
    )
    return (
        "The sentence below comes from a biomedical article; the two entities of interest are "
        f"masked as {spec.extra.get('entity_markers', 'markers')}. Classify the relation "
        "between them with exactly one of these labels:\n"
        f"{options}\n"
        "Answer with the label only.\n\n"
        f"Sentence: {rec['text']}"
    )


def _label_pattern(label: str) -> re.Pattern[str]:
    """Tolerant pattern for a label: case, and separators ':', '-', '_' or spaces vary."""
    parts = [re.escape(p) for p in re.split(r"[:\-_\s]+", label) if p]
    return re.compile(r"(?<!\w)" + r"[\s:\-_]*".join(parts) + r"(?!\w)", re.IGNORECASE)


def find_labels(text: str, labels: tuple[str, ...]) -> list[tuple[int, str]]:
    """Every label mention in ``text`` as (position, label), in order of appearance."""
    hits = []
    for lab in labels:
        for m in _label_pattern(lab).finditer(text):
            hits.append((m.start(), lab))
    return sorted(hits)


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[str | None, bool]:
    """The first label the output names; ``None`` (unparsable) when it names none."""
    hits = find_labels(clean(text), spec.labels)
    if not hits:
        return None, False
    return hits[0][1], True


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return single_label_scores(gold, pred)
