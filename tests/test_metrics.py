"""Metrics against hand-computed values and against seqeval / scikit-learn."""

from __future__ import annotations

import random

import pytest

from biomedquant.metrics import (
    bootstrap_intervals,
    iob2_spans,
    multilabel_scores,
    ner_scores,
    single_label_scores,
)


def test_iob2_spans_strict():
    assert iob2_spans(["B", "I", "O", "B", "B", "I", "I"]) == {(0, 2), (3, 4), (4, 7)}
    assert iob2_spans(["O", "I", "I", "O"]) == set()  # stray I starts nothing


def test_ner_hand_computed():
    gold = [["B", "I", "O", "B"], ["O", "B", "O", "O"]]
    pred = [["B", "O", "O", "B"], ["O", "B", "O", "B"]]
    # gold spans: (0,2),(3,4),(1,2) -> 3; pred: (0,1),(3,4),(1,2),(3,4) -> 4; tp = 2
    s = ner_scores(gold, pred)
    assert s["precision"] == pytest.approx(2 / 4)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_single_label_hand_computed():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", None]
    # a: tp1 fn1 -> f1 2/3; b: tp1 fp1 -> 2/3; c: fn1 -> 0
    s = single_label_scores(gold, pred)
    assert s["accuracy"] == 0.5
    assert s["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    # micro: tp 2, fp 1, fn 2 -> p 2/3, r 1/2
    assert s["micro_f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))


def test_multilabel_hand_computed():
    gold = [["x", "y"], ["y"], []]
    pred = [["x"], ["y", "z"], None]
    # x: tp1 -> 1; y: tp1 fn1 -> 2/3; z: fp1 -> 0
    s = multilabel_scores(gold, pred)
    assert s["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert s["micro_f1"] == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))


def _random_tags(rng: random.Random, n: int) -> list[str]:
    return [rng.choice("BIOOO") for _ in range(n)]


def test_ner_equals_seqeval_strict_on_random_cases():
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.scheme import IOB2

    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 5)
        lens = [rng.randint(1, 12) for _ in range(n)]
        gold = [_random_tags(rng, k) for k in lens]
        pred = [_random_tags(rng, k) for k in lens]
        # seqeval needs a type suffix; strict mode ignores stray I like we do.
        g = [[t if t == "O" else f"{t}-E" for t in s] for s in gold]
        p = [[t if t == "O" else f"{t}-E" for t in s] for s in pred]
        ours = ner_scores(gold, pred)
        kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
        assert ours["f1"] == pytest.approx(seqeval.f1_score(g, p, **kw))
        assert ours["precision"] == pytest.approx(seqeval.precision_score(g, p, **kw))
        assert ours["recall"] == pytest.approx(seqeval.recall_score(g, p, **kw))


def test_single_label_equals_sklearn_on_random_cases():
    sk = pytest.importorskip("sklearn.metrics")
    rng = random.Random(1)
    labels = ["a", "b", "c", "d"]
    for _ in range(200):
        n = rng.randint(1, 30)
        gold = [rng.choice(labels) for _ in range(n)]
        pred = [rng.choice(labels) for _ in range(n)]
        ours = single_label_scores(gold, pred)
        assert ours["accuracy"] == pytest.approx(sk.accuracy_score(gold, pred))
        assert ours["macro_f1"] == pytest.approx(
            sk.f1_score(gold, pred, average="macro", zero_division=0)
        )
        assert ours["micro_f1"] == pytest.approx(
            sk.f1_score(gold, pred, average="micro", zero_division=0)
        )


def test_multilabel_equals_sklearn_on_random_cases():
    sk = pytest.importorskip("sklearn.metrics")
    from sklearn.preprocessing import MultiLabelBinarizer

    rng = random.Random(2)
    labels = ["a", "b", "c", "d", "e"]
    for _ in range(200):
        n = rng.randint(1, 20)
        gold = [rng.sample(labels, rng.randint(0, 3)) for _ in range(n)]
        pred = [rng.sample(labels, rng.randint(0, 3)) for _ in range(n)]
        present = sorted(set().union(*map(set, gold), *map(set, pred)))
        if not present:
            continue
        mlb = MultiLabelBinarizer(classes=present)
        yg, yp = mlb.fit_transform(gold), mlb.transform(pred)
        ours = multilabel_scores(gold, pred)
        assert ours["macro_f1"] == pytest.approx(
            sk.f1_score(yg, yp, average="macro", zero_division=0)
        )
        assert ours["micro_f1"] == pytest.approx(
            sk.f1_score(yg, yp, average="micro", zero_division=0)
        )


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    gold = ["a", "b"] * 20
    pred = ["a", "a"] * 20
    ci1 = bootstrap_intervals(single_label_scores, gold, pred, resamples=200, level=0.95, seed=3)
    ci2 = bootstrap_intervals(single_label_scores, gold, pred, resamples=200, level=0.95, seed=3)
    assert ci1 == ci2
    lo, hi = ci1["accuracy"]
    assert lo <= 0.5 <= hi and lo < hi
