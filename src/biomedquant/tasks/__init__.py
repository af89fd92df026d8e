"""Task registry: what each of the four task types asks, how its answers are read and scored.

A task is data plus functions, not a class per dataset: ``description`` states the task and
the output format for a dataset, ``render_input`` shows one item, ``render_answer`` writes an
item's gold answer in the output format (for few-shot examples), ``headers`` names the line that
starts the next example in the prompt format (where an invented follow-up begins), ``parse``
reads a generation into a prediction, a status and the reading rule that decided (see
:mod:`biomedquant.tasks.answer_reading`), ``vote`` combines self-consistency samples,
``metrics`` scores.
Datasets name their task in :mod:`biomedquant.datasets.registry`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from biomedquant.common.registry import Registry
from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.tasks import multilabel, ner, qa, relation
from biomedquant.tasks.metrics import iob2_spans
from biomedquant.tasks.text import AMBIGUOUS, EMPTY, NO_ANSWER, OK

__all__ = ["AMBIGUOUS", "EMPTY", "NO_ANSWER", "OK", "TASKS", "Parsed", "Task", "get_task"]

VOTE = "vote"


@dataclass(frozen=True)
class Parsed:
    """A parsed generation: the prediction, the parse status (``ok`` or why not) and the
    reading rule that decided (``None`` when none did)."""

    prediction: Any
    status: str
    rule: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


def vote_label(preds: list[Parsed]) -> Parsed:
    """Plurality of the parsed samples; ties go to the label sampled first."""
    labels = [p.prediction for p in preds if p.ok]
    if not labels:
        return Parsed(None, NO_ANSWER)
    counts = Counter(labels)
    top = max(counts.values())
    return Parsed(next(lab for lab in labels if counts[lab] == top), OK, VOTE)


def vote_labelset(preds: list[Parsed]) -> Parsed:
    """Each label kept when more than half of the parsed samples predict it."""
    sets = [p.prediction for p in preds if p.ok]
    if not sets:
        return Parsed([], NO_ANSWER)
    counts = Counter(lab for s in sets for lab in set(s))
    order = list(dict.fromkeys(lab for s in sets for lab in s))
    return Parsed([lab for lab in order if counts[lab] * 2 > len(sets)], OK, VOTE)


def vote_spans(preds: list[Parsed]) -> Parsed:
    """Each entity span kept when more than half of the parsed samples predict it (such
    spans cannot overlap, since each sample's spans are disjoint)."""
    tag_lists = [p.prediction for p in preds if p.ok]
    if not tag_lists:
        return Parsed(list(preds[0].prediction) if preds else [], NO_ANSWER)
    counts = Counter(span for tags in tag_lists for span in iob2_spans(tags))
    tags = ["O"] * len(tag_lists[0])
    for (start, end), n in counts.items():
        if n * 2 > len(tag_lists):
            tags[start] = "B"
            for i in range(start + 1, end):
                tags[i] = "I"
    return Parsed(tags, OK, VOTE)


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    max_new_tokens: int  # benchmark default for direct answers
    cot_max_new_tokens: int  # room for the reasoning before the marked answer
    primary_metric: str
    description: Callable[[DatasetSpec], str]
    render_input: Callable[[DatasetSpec, Record], str]
    render_answer: Callable[[DatasetSpec, Record], str]
    headers: Callable[[DatasetSpec], tuple[str, ...]]
    parse_fn: Callable[[str, DatasetSpec, Record], tuple[Any, str, str | None]]
    gold: Callable[[Record], Any]
    vote: Callable[[list[Parsed]], Parsed]
    metrics: Callable[[list[Any], list[Any]], dict[str, float]]
    # Few-shot examples: balanced over this label (RE, QA) or the pool's first items (None).
    balance_on: Callable[[Record], str] | None = None

    def parse(self, text: str, spec: DatasetSpec, rec: Record) -> Parsed:
        """Parse one generation; never raises on model output."""
        pred, status, rule = self.parse_fn(text or "", spec, rec)
        return Parsed(pred, status, rule)


TASKS: Registry[Task] = Registry(
    "task",
    (
        (t.name, t)
        for t in (
            Task(
                name="ner",
                summary="named entity recognition (span-tagged sentence)",
                max_new_tokens=512,
                cot_max_new_tokens=1024,
                primary_metric="f1",
                description=ner.description,
                render_input=ner.render_input,
                render_answer=ner.render_answer,
                headers=ner.headers,
                parse_fn=ner.parse,
                gold=lambda rec: rec["tags"],
                vote=vote_spans,
                metrics=ner.metrics,
            ),
            Task(
                name="re",
                summary="relation extraction (one label per entity pair)",
                max_new_tokens=20,
                cot_max_new_tokens=384,
                primary_metric="macro_f1",
                description=relation.description,
                render_input=relation.render_input,
                render_answer=relation.render_answer,
                headers=relation.headers,
                parse_fn=relation.parse,
                gold=lambda rec: rec["label"],
                vote=vote_label,
                metrics=relation.metrics,
                balance_on=lambda rec: rec["label"],
            ),
            Task(
                name="mlc",
                summary="multi-label document classification",
                max_new_tokens=64,
                cot_max_new_tokens=384,
                primary_metric="macro_f1",
                description=multilabel.description,
                render_input=multilabel.render_input,
                render_answer=multilabel.render_answer,
                headers=multilabel.headers,
                parse_fn=multilabel.parse,
                gold=lambda rec: rec["labels"],
                vote=vote_labelset,
                metrics=multilabel.metrics,
            ),
            Task(
                name="qa",
                summary="question answering (option letter or yes/no/maybe)",
                max_new_tokens=128,
                cot_max_new_tokens=512,
                primary_metric="accuracy",
                description=qa.description,
                render_input=qa.render_input,
                render_answer=qa.render_answer,
                headers=qa.headers,
                parse_fn=qa.parse,
                gold=lambda rec: rec["answer"],
                vote=vote_label,
                metrics=qa.metrics,
                balance_on=lambda rec: rec["answer"],
            ),
        )
    ),
)


def get_task(name: str) -> Task:
    """The task ``name`` (an error naming the closest tasks when unknown)."""
    return TASKS[name]
