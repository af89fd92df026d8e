"""Breaking format never pays: on every real test set, turning wrong answers into unparsable
ones never raises any metric, the task's primary metric included.

The convention (:mod:`biomedquant.tasks.metrics`) scores an unparsable answer as the worst
answer its format allows. This checks it through the functions the evaluate step uses
(:func:`biomedquant.evaluation.scoring.worst_answer_context`,
:func:`biomedquant.evaluation.stats.sufficient.item_stats`) on the eight benchmark test sets in
``../shared/data`` (ChemProt's dev set: the shared copy has no test file; skipped when absent), with
seeded wrong answers of the kinds a model gives: another label or option, a wrong label set, a wrong
tagging.
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

from conftest import SHARED_DATA


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="real benchmark files are not present")
@pytest.mark.parametrize("dataset", DATASETS.names())
def test_turning_wrong_answers_unparsable_never_raises_a_metric(dataset):
    spec = get_dataset(dataset)
    task = get_task(spec.task)
    kind = TASK_KIND[spec.task]
    src = spec.files[evaluated_split(dataset)]
    records = read_source(SHARED_DATA / src.path, src.reader)
    gold = [task.gold(r) for r in records]
    rnd = random.Random(dataset)
    pred: list = []
    wrong: list[int] = []
    for i, (rec, g) in enumerate(zip(records, gold, strict=True)):
        if rnd.random() < 0.35:
            choices = answer_choices(spec, rec) if kind != "ner" else None
            pred.append(wrong_answer(kind, g, choices, rnd))
            wrong.append(i)
        else:
            pred.append(list(g) if isinstance(g, list) else g)
    context = worst_answer_context(spec, records)
    ok = [True] * len(gold)

    def metrics() -> dict[str, float]:
        shown = [p if o or kind == "ner" else None for p, o in zip(pred, ok, strict=True)]
        return observed_metrics(item_stats(kind, gold, shown, ok=ok, **context))

    before = metrics()
    rnd.shuffle(wrong)
    # three steps, each turning another tenth of the wrong answers unparsable
    step = max(1, len(wrong) // 10)
    for k in range(3):
        for i in wrong[k * step : (k + 1) * step]:
            ok[i] = False
        after = metrics()
        for name, value in after.items():
            assert value <= before[name] + 1e-12, (dataset, name, before[name], value)
        assert after[task.primary_metric] <= before[task.primary_metric]
        before = after
    if task.primary_metric != "accuracy":  # accuracy counts both as wrong: equal
        first = metrics()
        ok[:] = [True] * len(gold)
        assert first[task.primary_metric] < metrics()[task.primary_metric]
