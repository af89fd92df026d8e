"""Relation extraction: one label for the pair of masked entities in a sentence."""

from __future__ import annotations

from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.metrics import single_label_scores
from biomedquant.tasks.text import choose_one, find_words


def description(spec: DatasetSpec) -> str:
    options = "\n".join(
        f"- {lab}: {spec.label_help[lab]}" if lab in spec.label_help else f"- {lab}"
        for lab in spec.labels
    )
    return (
        "Each sentence below comes from a biomedical article; the two entities of interest are "
        f"masked as {spec.extra.get('entity_markers', 'markers')}. Classify the relation "
        f"between them with exactly one of these labels:\n{options}\n"
        "Answer with the label only."
    )


def render_input(spec: DatasetSpec, rec: Record) -> str:
    return f"Sentence: {rec['text']}"


def render_answer(spec: DatasetSpec, rec: Record) -> str:
    return rec["label"]


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[str | None, str]:
    return choose_one(text, find_words(spec.labels))


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return single_label_scores(gold, pred)
