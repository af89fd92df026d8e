"""Task registry: what each of the four task types asks, how its answers are read and scored.

A task is data plus three functions, not a class per dataset: ``instruction`` builds the user
message from a dataset's facts and one item, ``parse`` reads a generation into a prediction
(or reports it unparsable), ``metrics`` scores predictions against gold. Datasets name their
task in :mod:`biomedquant.datasets.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.tasks import multilabel, ner, qa, relation


@dataclass(frozen=True)
class Parsed:
    """A parsed generation: the prediction, and whether the output could be read at all."""

    prediction: Any
    ok: bool


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    max_new_tokens: int  # benchmark default for direct answers
    primary_metric: str
    instruction: Callable[[DatasetSpec, Record], str]
    parse: Callable[[str, DatasetSpec, Record], tuple[Any, bool]]
    gold: Callable[[Record], Any]
    metrics: Callable[[list[Any], list[Any]], dict[str, float]]


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            name="ner",
            description="named entity recognition (span-tagged sentence)",
            max_new_tokens=512,
            primary_metric="f1",
            instruction=ner.instruction,
            parse=ner.parse,
            gold=lambda rec: rec["tags"],
            metrics=ner.metrics,
        ),
        Task(
            name="re",
            description="relation extraction (one label per entity pair)",
            max_new_tokens=20,
            primary_metric="macro_f1",
            instruction=relation.instruction,
            parse=relation.parse,
            gold=lambda rec: rec["label"],
            metrics=relation.metrics,
        ),
        Task(
            name="mlc",
            description="multi-label document classification",
            max_new_tokens=64,
            primary_metric="macro_f1",
            instruction=multilabel.instruction,
            parse=multilabel.parse,
            gold=lambda rec: rec["labels"],
            metrics=multilabel.metrics,
        ),
        Task(
            name="qa",
            description="question answering (option letter or yes/no/maybe)",
            max_new_tokens=128,
            primary_metric="accuracy",
            instruction=qa.instruction,
            parse=qa.parse,
            gold=lambda rec: rec["answer"],
            metrics=qa.metrics,
        ),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def parse_output(text: str, spec: DatasetSpec, rec: Record) -> Parsed:
    """Parse one generation for ``spec``'s task; never raises on model output."""
    pred, ok = get_task(spec.task).parse(text, spec, rec)
    return Parsed(pred, ok)
