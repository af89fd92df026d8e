"""The benchmark script's metrics (``benchmark_*``,
:func:`biomedquant.tasks.metrics.benchmark_metrics`) equal scikit-learn called as
BIDS-Xu-Lab/Biomedical-NLP-Benchmarks' ``run_eval.py`` calls it, on the eight real test sets
(``../shared/data``; skipped when absent) with perturbed predictions: a share of wrong answers and
of unparsable ones (which the script receives as empty answers)."""

from __future__ import annotations

import random

import pytest
from support.scoring import evaluated_split, wrong_answer

from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import DATASETS, get_dataset
from biomedquant.evaluation.inputs import answer_choices
from biomedquant.evaluation.stats.sufficient import TASK_KIND
from biomedquant.tasks import get_task
from biomedquant.tasks.metrics import benchmark_metrics, iob2_spans

from conftest import SHARED_DATA


def perturbed(dataset: str, wrong: float = 0.3, unparsable: float = 0.05):
    """Gold answers, predictions (a share wrong) and parse flags (a share unparsable)."""
    spec = get_dataset(dataset)
    task, kind = get_task(spec.task), TASK_KIND[spec.task]
    src = spec.files[evaluated_split(dataset)]
    records = read_source(SHARED_DATA / src.path, src.reader)
    gold = [task.gold(r) for r in records]
    rnd = random.Random(f"benchmark-{dataset}")
    pred, ok = [], []
    for rec, g in zip(records, gold, strict=True):
        choices = answer_choices(spec, rec) if kind != "ner" else None
        pred.append(wrong_answer(kind, g, choices, rnd) if rnd.random() < wrong else g)
        ok.append(rnd.random() >= unparsable)
    return spec, gold, pred, ok


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="real benchmark files are not present")
@pytest.mark.parametrize("dataset", DATASETS.names())
def test_benchmark_metrics_equal_the_scripts_scikit_learn_calls(dataset):
    sk = pytest.importorskip("sklearn.metrics")
    from sklearn.preprocessing import MultiLabelBinarizer

    spec, gold, pred, ok = perturbed(dataset)
    ours = benchmark_metrics(spec.task, gold, pred, ok)
    if spec.task == "ner":
        # exact spans summed over sentences; P and R rounded to 4 decimals, then F1
        tp = n_pred = n_gold = 0
        for g, p, o in zip(gold, pred, ok, strict=True):
            gs, ps = iob2_spans(g), iob2_spans(p) if o else set()
            tp, n_pred, n_gold = tp + len(gs & ps), n_pred + len(ps), n_gold + len(gs)
        prec, rec = round(tp / n_pred, 4), round(tp / n_gold, 4)
        assert ours == pytest.approx(
            {
                "benchmark_precision": prec,
                "benchmark_recall": rec,
                "benchmark_f1": 2 * prec * rec / (prec + rec),
            }
        )
        return
    if spec.task == "mlc":
        shown = [p if o else [] for p, o in zip(pred, ok, strict=True)]
        mlb = MultiLabelBinarizer().fit([*gold, *shown])
        y_true, y_pred = mlb.transform(gold), mlb.transform(shown)
        expected = {
            "benchmark_macro_f1": sk.f1_score(y_true, y_pred, average="macro", zero_division=0),
            "benchmark_weighted_f1": sk.f1_score(
                y_true, y_pred, average="weighted", zero_division=0
            ),
        }
    else:
        y_true = [str(g) for g in gold]
        y_pred = [str(p) if o else "" for p, o in zip(pred, ok, strict=True)]
        expected = {"benchmark_macro_f1": sk.f1_score(y_true, y_pred, average="macro")}
        if spec.task == "qa":
            expected["benchmark_accuracy"] = sk.accuracy_score(y_true, y_pred)
        else:
            expected["benchmark_weighted_f1"] = sk.f1_score(y_true, y_pred, average="weighted")
    assert ours == pytest.approx(expected, abs=1e-12)


def test_an_unparsable_answer_is_a_class_of_its_own_for_the_benchmark():
    """One unparsable answer among correct ones: the empty string enters the script's label
    set with F1 0, so its macro-F1 drops by a whole class's share (the project's does not)."""
    gold = ["a", "a", "b", "b"]
    ours = benchmark_metrics("re", gold, ["a", "a", "b", "b"], [True, True, True, False])
    # labels a, b, "": F1 1, 2/3, 0
    assert ours["benchmark_macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert ours["benchmark_weighted_f1"] == pytest.approx((2 * 1 + 2 * 2 / 3) / 4)
