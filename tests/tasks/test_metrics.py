"""Metrics against hand-computed values and against seqeval / scikit-learn."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biomedquant.tasks.metrics import (
    flip_rate,
    iob2_spans,
    multilabel_scores,
    ner_scores,
    single_label_scores,
    worst_false_labels,
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
    # Parsed: a tp1 fn1 (f1 2/3), b tp1 fp1 (2/3); the unparsable item (gold c) misses c and
    # counts one false positive, of a or b: either takes that label's F1 to 1/2 (a tie, so a,
    # the first). a: 1/2; b: 2/3; c: 0.
    assert worst_false_labels(
        [[g] for g in gold], [None if p is None else [p] for p in pred], [["a", "b", "c"]] * 4
    ) == [None, None, None, "a"]
    s = single_label_scores(gold, pred)
    assert s["accuracy"] == 0.5
    assert s["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    # micro: tp 2, fp 2, fn 2
    assert s["micro_f1"] == pytest.approx(0.5)


def test_an_unparsable_answer_counts_against_the_label_it_hurts_most():
    # a: tp3 (f1 1); b: tp1 (f1 1); c missed by the unparsable item. One false positive on a
    # takes a to 6/7, on b takes b to 2/3: b, the rarer label, loses more.
    gold, pred = ["a", "a", "a", "b", "c"], ["a", "a", "a", "b", None]
    s = single_label_scores(gold, pred)
    assert s["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    # given explicitly, another label is taken as given
    s = single_label_scores(gold, pred, false_labels=[None] * 4 + ["a"])
    assert s["macro_f1"] == pytest.approx((6 / 7 + 1 + 0) / 3)


def test_an_unparsable_answer_costs_what_the_worst_wrong_answer_costs_by_hand():
    gold = ["a", "a", "b", "c"]
    unparsable = single_label_scores(gold, ["a", "b", "b", None])
    answered = [single_label_scores(gold, ["a", "b", "b", w]) for w in ("a", "b")]
    assert all(unparsable["macro_f1"] <= a["macro_f1"] for a in answered)
    assert unparsable["macro_f1"] == pytest.approx(min(a["macro_f1"] for a in answered))
    assert all(unparsable["accuracy"] == a["accuracy"] for a in answered)
    # A QA item counts only against its own options: with options a/c, label b is untouched.
    s = single_label_scores(["a", "c"], ["a", None], choices=[["a", "c"], ["a", "c"]])
    # a: tp1 fp1 -> 2/3; c: fn1 -> 0
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
    # A label only an unparsable item brings in enters the average with F1 0.
    s = single_label_scores(["a"], [None], choices=[["a", "b"]])
    assert s["macro_f1"] == 0.0 and s["micro_f1"] == 0.0


def test_multilabel_hand_computed():
    gold = [["x", "y"], ["y"], []]
    pred = [["x"], ["y", "z"], None]
    # Parsed: x tp1 (1), y tp1 fn1 (2/3), z fp1 (0). The unparsable third document (no gold
    # label) counts one false label: on x -> 2/3, on y -> 1/2, on z -> 0 still; the macro
    # averages are 4/9, 1/2 and 5/9, so x.
    s = multilabel_scores(gold, pred)
    assert s["macro_f1"] == pytest.approx(4 / 9)
    # micro: tp 2, fp 2, fn 1 -> p 1/2, r 2/3
    assert s["micro_f1"] == pytest.approx(4 / 7)
    # Over a given label set, a label nobody predicted can take the false positive.
    s = multilabel_scores([["x"]], [None], labels=["x", "w"])
    assert s == {"macro_f1": 0.0, "micro_f1": 0.0}


def test_an_unparsable_sentence_misses_every_entity_and_counts_one_false_entity():
    gold = [["B", "I", "O", "B"], ["O", "B", "O", "O"]]
    pred = [["B", "I", "O", "B"], ["O", "O", "O", "O"]]
    # sentence 2 unparsable: its entity missed, one false entity
    s = ner_scores(gold, pred, ok=[True, False])
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert ner_scores(gold, pred)["precision"] == 1.0  # read as "no entity" it would cost none
    # never better than answering "no entity", or one wrong entity
    wrong_once = ner_scores(gold, [pred[0], ["B", "O", "O", "O"]])
    assert s["f1"] <= wrong_once["f1"] <= ner_scores(gold, pred)["f1"]


TAGS = st.lists(st.sampled_from("BIOOO"), min_size=1, max_size=12)


@st.composite
def tag_pairs(draw):
    """Gold and predicted tag sequences of equal lengths, several sentences."""
    gold = draw(st.lists(TAGS, min_size=1, max_size=6))
    pred = [draw(st.lists(st.sampled_from("BIO"), min_size=len(g), max_size=len(g))) for g in gold]
    return gold, pred


@settings(max_examples=200, deadline=None)
@given(tag_pairs())
def test_ner_equals_seqeval_strict(pair):
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.scheme import IOB2

    gold, pred = pair
    # seqeval needs a type suffix; strict mode ignores a stray I as we do.
    g = [[t if t == "O" else f"{t}-E" for t in s] for s in gold]
    p = [[t if t == "O" else f"{t}-E" for t in s] for s in pred]
    ours = ner_scores(gold, pred)
    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    assert ours["f1"] == pytest.approx(seqeval.f1_score(g, p, **kw))
    assert ours["precision"] == pytest.approx(seqeval.precision_score(g, p, **kw))
    assert ours["recall"] == pytest.approx(seqeval.recall_score(g, p, **kw))


LABEL = st.sampled_from(["a", "b", "c", "d"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(LABEL, LABEL), min_size=1, max_size=40))
def test_single_label_equals_sklearn(pairs):
    sk = pytest.importorskip("sklearn.metrics")
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    ours = single_label_scores(gold, pred)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(gold, pred))
    assert ours["macro_f1"] == pytest.approx(
        sk.f1_score(gold, pred, average="macro", zero_division=0)
    )
    assert ours["micro_f1"] == pytest.approx(
        sk.f1_score(gold, pred, average="micro", zero_division=0)
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(LABEL, st.sampled_from(["a", "b", "c", "d", None])), min_size=1))
def test_single_label_with_unparsable_answers_equals_sklearn_on_indicators(pairs):
    """An unparsable answer is the indicator row of its chosen false label alone: scikit-learn's
    per-label F1 on those rows, averaged over the labels with any count, is ours."""
    sk = pytest.importorskip("sklearn.metrics")
    import numpy as np

    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    choices = [["a", "b", "c", "d"]] * len(gold)
    false = worst_false_labels([[g] for g in gold], [p and [p] for p in pred], choices)
    answered = [p if p is not None else f for p, f in zip(pred, false, strict=True)]
    labels = sorted({*gold, *answered})
    yg = np.array([[lab == g for lab in labels] for g in gold])
    yp = np.array([[lab == a for lab in labels] for a in answered])
    counted = (yg | yp).any(axis=0)
    ours = single_label_scores(gold, pred, choices=choices)
    per_label = sk.f1_score(yg, yp, average=None, zero_division=0)
    assert ours["macro_f1"] == pytest.approx(per_label[counted].mean())
    assert ours["micro_f1"] == pytest.approx(sk.f1_score(yg, yp, average="micro", zero_division=0))
    assert ours["accuracy"] == pytest.approx(np.mean([g == p for g, p in pairs]))


LABELSET = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=3, unique=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(LABELSET, LABELSET), min_size=1, max_size=30))
def test_multilabel_equals_sklearn(pairs):
    sk = pytest.importorskip("sklearn.metrics")
    from sklearn.preprocessing import MultiLabelBinarizer

    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    present = sorted(set().union(*map(set, gold), *map(set, pred)))
    ours = multilabel_scores(gold, pred)
    if not present:
        assert ours == {"macro_f1": 0.0, "micro_f1": 0.0}
        return
    mlb = MultiLabelBinarizer(classes=present)
    yg, yp = mlb.fit_transform(gold), mlb.transform(pred)
    if len(present) == 1:  # sklearn reads a one-column indicator as two classes 0/1
        f1 = sk.f1_score(yg[:, 0], yp[:, 0], zero_division=0)
        assert ours == pytest.approx({"macro_f1": f1, "micro_f1": f1})
        return
    assert ours["macro_f1"] == pytest.approx(sk.f1_score(yg, yp, average="macro", zero_division=0))
    assert ours["micro_f1"] == pytest.approx(sk.f1_score(yg, yp, average="micro", zero_division=0))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(LABEL, LABEL, LABEL), min_size=1, max_size=30))
def test_flip_rate_counts_changed_predictions(triples):
    base = [b for _, b, _ in triples]
    other = [o for _, _, o in triples]
    assert flip_rate(base, other) == pytest.approx(
        sum(b != o for b, o in zip(base, other, strict=True)) / len(base)
    )
    assert flip_rate(base, base) == 0


def test_flip_rate_compares_label_sets_as_sets():
    assert flip_rate([["a", "b"], ["c"]], [["b", "a"], []], as_set=True) == 0.5
    assert flip_rate([["B", "I"]], [["B", "O"]]) == 1.0
