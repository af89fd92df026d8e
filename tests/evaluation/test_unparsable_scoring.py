"""What an unparsable answer costs, on every real test set.

The convention (:mod:`biomedquant.tasks.metrics`) scores an unparsable answer as the least-wrong
answer that gets nothing right: every gold label or entity missed and one false positive (of the
label that lowers macro-F1 most). It promises two things, checked here through the functions the
evaluate step uses (:func:`biomedquant.evaluation.scoring.worst_answer_context`,
:func:`biomedquant.evaluation.stats.sufficient.item_stats`) on the eight benchmark test sets in
``../shared/data`` (ChemProt's dev set: the shared copy has no test file; skipped when absent):

* breaking format never beats answering "nothing" or answering wrongly once: turning such answers
  unparsable never raises any metric;
* an unparsable answer costs about one wrong answer: 5% of the answers unparsable cost within 2x
  of what the same 5% answered wrongly cost, in the task's primary metric.
"""

from __future__ import annotations

import random

import pytest
from support.scoring import evaluated_split, wrong_answer

from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import DATASETS, get_dataset
from biomedquant.evaluation.inputs import answer_choices
from biomedquant.evaluation.scoring import worst_answer_context
from biomedquant.evaluation.stats.sufficient import TASK_KIND, item_stats, observed_metrics
from biomedquant.tasks import get_task
from biomedquant.tasks.metrics import iob2_spans

from conftest import SHARED_DATA

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="real benchmark files are absent")


def _load(dataset: str) -> tuple:
    spec = get_dataset(dataset)
    src = spec.files[evaluated_split(dataset)]
    records = read_source(SHARED_DATA / src.path, src.reader)
    task = get_task(spec.task)
    return spec, task, records, [task.gold(r) for r in records]


def wrong_once(kind: str, gold, choices, rnd: random.Random):
    """An answer that gets nothing right with at most one wrong: another label (single-label);
    no label or one label outside the gold (multi-label); no entity or one false entity (NER)."""
    if kind == "single":
        return rnd.choice([c for c in choices if c != gold])
    if kind == "multi":
        outside = [c for c in choices if c not in gold]
        if gold and (not outside or rnd.random() < 0.5):
            return []
        return [rnd.choice(outside)] if outside else None
    tags = ["O"] * len(gold)
    if rnd.random() < 0.5:
        free = [i for i in range(len(gold)) if not any(s <= i < e for s, e in iob2_spans(gold))]
        if free:
            tags[rnd.choice(free)] = "B"
    return tags if tags != list(gold) else None


def realistic_wrong(kind: str, gold, choices, rnd: random.Random):
    """A wrong answer of the kind a model gives: another label or option, a wrong label set; in
    NER every entity's boundary off by one token (or, without entities, one false entity)."""
    if kind != "ner":
        return wrong_answer(kind, gold, choices, rnd)
    tags = ["O"] * len(gold)
    spans = sorted(iob2_spans(gold))
    if not spans:
        tags[rnd.randrange(len(gold))] = "B"
        return tags
    for start, end in spans:
        if end < len(gold) and rnd.random() < 0.5:
            end += 1  # one token too many
        elif end - start > 1:
            end -= 1  # one too few
        else:
            start, end = max(0, start - 1), end  # or starting one early
            if (start, end) in spans:
                continue  # shifting would make it right: missed instead
        tags[start] = "B"
        tags[start + 1 : end] = ["I"] * (end - start - 1)
    return tags if iob2_spans(tags) != iob2_spans(gold) else ["O"] * len(gold)


class Scorer:
    """One dataset's items, answered right except where told, scored as the evaluate step does."""

    def __init__(self, dataset: str) -> None:
        self.spec, self.task, self.records, self.gold = _load(dataset)
        self.kind = TASK_KIND[self.spec.task]
        self.context = worst_answer_context(self.spec, self.records)
        self.choices = [
            answer_choices(self.spec, r) if self.kind != "ner" else None for r in self.records
        ]

    def right(self) -> tuple[list, list[bool]]:
        return [list(g) if isinstance(g, list) else g for g in self.gold], [True] * len(self.gold)

    def metrics(self, pred: list, ok: list[bool]) -> dict[str, float]:
        shown = [p if o or self.kind == "ner" else None for p, o in zip(pred, ok, strict=True)]
        return observed_metrics(item_stats(self.kind, self.gold, shown, ok=ok, **self.context))


@needs_data
@pytest.mark.parametrize("dataset", DATASETS.names())
def test_breaking_format_never_beats_answering_nothing_or_wrongly_once(dataset):
    scorer = Scorer(dataset)
    rnd = random.Random(dataset)
    pred, ok = scorer.right()
    once: list[int] = []
    for i, g in enumerate(scorer.gold):
        roll = rnd.random()
        if roll < 0.3:
            answer = wrong_once(scorer.kind, g, scorer.choices[i], rnd)
            if answer is not None:
                pred[i] = answer
                once.append(i)
        elif roll < 0.4:  # other wrong answers around them
            pred[i] = wrong_answer(scorer.kind, g, scorer.choices[i], rnd)
    before = scorer.metrics(pred, ok)
    rnd.shuffle(once)
    # three steps, each turning another tenth of those answers unparsable
    step = max(1, len(once) // 10)
    for k in range(3):
        for i in once[k * step : (k + 1) * step]:
            ok[i] = False
        after = scorer.metrics(pred, ok)
        for name, value in after.items():
            assert value <= before[name] + 1e-12, (dataset, name, before[name], value)
        before = after


def _cost_of_five_percent(dataset: str) -> tuple[float, float, float]:
    """(primary metric of a ~70%-right answer set, its loss when 5% of its right answers are
    answered wrongly instead, its loss when the same 5% are unparsable)."""
    scorer = Scorer(dataset)
    rnd = random.Random(f"{dataset} cost")
    pred, ok = scorer.right()
    right = []
    for i, g in enumerate(scorer.gold):
        if rnd.random() < 0.3:
            pred[i] = realistic_wrong(scorer.kind, g, scorer.choices[i], rnd)
        else:
            right.append(i)
    primary = scorer.task.primary_metric
    base = scorer.metrics(pred, ok)[primary]
    hit = rnd.sample(right, max(1, round(0.05 * len(scorer.gold))))
    wrong = list(pred)
    for i in hit:
        wrong[i] = realistic_wrong(scorer.kind, scorer.gold[i], scorer.choices[i], rnd)
    broken = [i not in set(hit) for i in range(len(pred))]
    return (
        base,
        base - scorer.metrics(wrong, ok)[primary],
        base - scorer.metrics(pred, broken)[primary],
    )


@needs_data
@pytest.mark.parametrize("dataset", ["bc5cdr_chem", "ddi"])
def test_five_percent_unparsable_costs_about_five_percent_wrong(dataset):
    base, wrong_cost, unparsable_cost = _cost_of_five_percent(dataset)
    assert wrong_cost > 0 and unparsable_cost > 0
    assert 0.5 <= unparsable_cost / wrong_cost <= 2.0, (base, wrong_cost, unparsable_cost)
