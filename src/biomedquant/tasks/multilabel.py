"""Multi-label classification: the set of topic labels that apply to a document.

Read by the set form of the reading rule (:mod:`.answer_reading`): the labels in the marked
answer, else in the opening paragraph when the output opens with a label, else every label
named. Labels match as whole phrases in any case, with ":", "-", "_" or a space between words
("case-report") and "&" for "and", and so do their other wordings in the dataset's table of
facts (the hallmarks in Hanahan & Weinberg's own words, "Case Reports", "Forecasting"); a label
under negation ("does not discuss Diagnosis", "not Treatment") is not
predicted; "none", "none of the labels", "no label applies" is the empty set; a JSON list of
labels or a JSON map from labels to 0/1, true/false or yes/no is read as such.
"""

from __future__ import annotations

from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.tasks.answer_reading import SetReader, find_phrases, read_set
from biomedquant.tasks.metrics import multilabel_scores
from biomedquant.tasks.text import word_pattern


def description(spec: DatasetSpec) -> str:
    options = "\n".join(f"- {lab}" for lab in spec.labels)
    return (
        "Which of the following topics apply to a biomedical text? Choose one or more of "
        f"these labels:\n{options}\n"
        "Answer with the applicable labels separated by semicolons, and nothing else."
    )


def render_input(spec: DatasetSpec, rec: Record) -> str:
    return f"Text: {rec['text']}"


def headers(spec: DatasetSpec) -> tuple[str, ...]:
    """The line that starts the next example in the prompt format."""
    return ("Text:",)


def render_answer(spec: DatasetSpec, rec: Record) -> str:
    return "; ".join(rec["labels"]) if rec["labels"] else "none"


def reader(spec: DatasetSpec) -> SetReader:
    """What names a label of ``spec``: the label, or one of its wordings in the dataset's table
    of facts (``label_synonyms``: "genomic instability", "immune evasion", "Case Reports")."""
    patterns = [(lab, word_pattern(lab)) for lab in spec.labels]
    patterns += [
        (lab, word_pattern(wording))
        for lab, wordings in spec.label_synonyms.items()
        for wording in wordings
    ]
    return SetReader(labels=lambda text: find_phrases(text, patterns), order=spec.labels)


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[list[str], str, str | None]:
    """The labels predicted, the parse status and the rule that decided."""
    reading = read_set(text, reader(spec), headers(spec))
    return reading.prediction, reading.status, reading.rule


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return multilabel_scores(gold, pred)
