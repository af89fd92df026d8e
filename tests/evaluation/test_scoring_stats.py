"""Vectorised statistics against the pure metric definitions; cluster bootstrap; paired tests.

Real-data cases read ../shared/data/bionlp-benchmarks (never copied into the repository) and
skip when it is absent.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import get_dataset
from biomedquant.evaluation.stats.bootstrap import (
    cluster_index,
    cluster_sums,
    count_blocks,
    make_rng,
    resampled_totals,
)
from biomedquant.evaluation.stats.intervals import compare_items, score_items
from biomedquant.evaluation.stats.paired_tests import flip_directions, mcnemar_exact
from biomedquant.evaluation.stats.sufficient import (
    TASK_KIND,
    item_stats,
    labels_of,
    metrics_from_totals,
)
from biomedquant.tasks.metrics import (
    multilabel_scores,
    ner_scores,
    single_label_scores,
    worst_false_labels,
)

from conftest import SHARED_DATA

PURE = {"ner": ner_scores, "single": single_label_scores, "multi": multilabel_scores}

TAGS = st.lists(st.sampled_from("BIOOO"), min_size=1, max_size=10)
LABEL = st.sampled_from(["a", "b", "c", "d", None])
LABELSET = st.one_of(
    st.none(), st.lists(st.sampled_from(["x", "y", "z", "w"]), max_size=3, unique=True)
)


@st.composite
def ner_case(draw):
    gold = draw(st.lists(TAGS, min_size=1, max_size=8))
    pred = [draw(st.lists(st.sampled_from("BIO"), min_size=len(g), max_size=len(g))) for g in gold]
    ok = draw(st.lists(st.booleans(), min_size=len(gold), max_size=len(gold)))
    return gold, pred, ok


@st.composite
def single_case(draw):
    n = draw(st.integers(1, 25))
    gold = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    pred = draw(st.lists(LABEL, min_size=n, max_size=n))
    return gold, pred, None


@st.composite
def multi_case(draw):
    n = draw(st.integers(1, 25))
    gold = draw(
        st.lists(
            st.lists(st.sampled_from(["x", "y", "z"]), max_size=3, unique=True),
            min_size=n,
            max_size=n,
        )
    )
    pred = draw(st.lists(LABELSET, min_size=n, max_size=n))
    return gold, pred, None


CHOICES = {"single": ("a", "b", "c", "d"), "multi": ("w", "x", "y", "z")}


def _check_resamples(
    kind: str,
    gold: list,
    pred: list,
    ok: list | None,
    seed: int,
    n_resamples: int = 5,
    universe: tuple[str, ...] | None = None,
) -> None:
    """Observed metrics and several resamples: statistics route == pure function, unparsable
    answers included (with each item's choices given, as the workflow gives them)."""
    n = len(gold)
    universe = universe or CHOICES.get(kind)
    choices = [universe] * n if kind != "ner" else None
    stats = item_stats(kind, gold, pred, ok=ok, choices=choices)
    # an unparsable answer's false positive is chosen once, on the whole set, and kept with
    # its item in every resample
    if kind == "single":
        false = worst_false_labels(
            [[g] for g in gold], [None if p is None else [p] for p in pred], choices
        )
    elif kind == "multi":
        false = worst_false_labels(gold, pred, choices)

    def pure(idx: list[int]) -> dict[str, float]:
        g, p = [gold[i] for i in idx], [pred[i] for i in idx]
        if kind == "ner":
            return ner_scores(g, p, ok=[ok[i] for i in idx])
        chosen = [false[i] for i in idx]
        if kind == "single":
            return single_label_scores(g, p, choices=[choices[i] for i in idx], false_labels=chosen)
        return multilabel_scores(g, p, labels=universe, false_labels=chosen)

    obs = metrics_from_totals(kind, stats.matrix.sum(axis=0), stats.n_labels)
    for k, v in pure(list(range(n))).items():
        assert float(obs[k]) == pytest.approx(v, abs=1e-12), k
    rng = np.random.default_rng(seed)
    for counts in count_blocks(rng, n, n_resamples):
        vec = metrics_from_totals(kind, counts @ stats.matrix, stats.n_labels)
        for b, row in enumerate(counts):
            idx = list(np.repeat(np.arange(n), row.astype(int)))
            for k, v in pure(idx).items():
                assert float(vec[k][b]) == pytest.approx(v, abs=1e-12), k


@settings(max_examples=150, deadline=None)
@given(ner_case(), st.integers(0, 10**6))
def test_ner_statistics_equal_the_definition(case, seed):
    _check_resamples("ner", *case, seed)


@settings(max_examples=150, deadline=None)
@given(single_case(), st.integers(0, 10**6))
def test_single_label_statistics_equal_the_definition(case, seed):
    _check_resamples("single", *case, seed)


@settings(max_examples=150, deadline=None)
@given(multi_case(), st.integers(0, 10**6))
def test_multilabel_statistics_equal_the_definition(case, seed):
    _check_resamples("multi", *case, seed)


def test_counts_are_a_resample_with_replacement():
    blocks = list(count_blocks(np.random.default_rng(0), 7, 25))
    counts = np.concatenate(blocks)
    assert counts.shape == (25, 7)
    assert (counts.sum(axis=1) == 7).all() and (counts >= 0).all()


def _corrupt(kind: str, gold: list, labels: tuple, rate: float, seed: int) -> list:
    """Predictions that differ from the gold on a seeded share of items."""
    rnd = random.Random(seed)
    out = []
    for g in gold:
        if rnd.random() >= rate:
            out.append(g)
        elif kind == "ner":
            out.append([rnd.choice("BIOO") for _ in g])
        elif kind == "single":
            out.append(rnd.choice([*labels, None]))
        else:
            out.append(rnd.sample(labels, rnd.randint(0, 2)) if rnd.random() > 0.1 else None)
    return out


REAL = [("bc5cdr_chem", "test"), ("ddi", "test"), ("hoc", "test"), ("pubmedqa", "test")]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="real benchmark files are not present")
@pytest.mark.parametrize(("dataset", "split"), REAL)
def test_statistics_equal_the_definition_on_real_data(dataset, split):
    from biomedquant.tasks import get_task

    spec = get_dataset(dataset)
    src = spec.files[split]
    records = read_source(SHARED_DATA / src.path, src.reader)
    task = get_task(spec.task)
    kind = TASK_KIND[spec.task]
    gold = [task.gold(r) for r in records]
    labels = spec.labels if kind != "ner" else ()
    pred = _corrupt(kind, gold, labels, 0.3, 1)
    ok = [random.Random(i).random() > 0.1 for i in range(len(gold))] if kind == "ner" else None
    _check_resamples(kind, gold, pred, ok, seed=2, n_resamples=3, universe=labels or None)


def _real_ids(name: str) -> list[str]:
    src = get_dataset(name).files["test"]
    return [r["id"] for r in read_source(SHARED_DATA / src.path, src.reader)]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="real benchmark files are not present")
@pytest.mark.parametrize(
    ("name", "n_items", "n_units"),
    [("ddi", 5761, 192), ("chemprot", None, None), ("bc5cdr_chem", 4797, 480),
     ("ncbi_disease", 940, 94)],
)  # fmt: skip
def test_real_test_sets_resample_their_documents(name, n_items, n_units):
    """DDI by document (192 of them, not its 795 sentences), ChemProt by abstract, NER by
    blocks of 10 consecutive sentences (about one abstract each)."""
    from biomedquant.evaluation.scoring import resampling_units

    spec = get_dataset(name)
    if name == "chemprot":  # the full test file is not among the shared files: its dev split
        src = spec.files["dev"]
        ids = [r["id"] for r in read_source(SHARED_DATA / src.path, src.reader)]
        clusters, unit = resampling_units(spec, ids)
        assert unit == "abstract"
        assert len({i.split(".")[0] for i in ids}) == clusters.max() + 1
        return
    ids = _real_ids(name)
    clusters, unit = resampling_units(spec, ids)
    assert len(ids) == n_items and clusters.max() + 1 == n_units
    if name == "ddi":
        assert unit == "document"
        # two sentences of one document, one unit; the next document another
        assert clusters[ids.index("DDI-DrugBank.d572.s1.p0")] == clusters[0]
        other = next(i for i in ids if not i.startswith("DDI-DrugBank.d572."))
        assert clusters[ids.index(other)] != clusters[0]
    else:
        assert unit == "block of 10 sentences"
        assert clusters[ids.index("s9")] == clusters[0] != clusters[ids.index("s10")]


def test_too_few_clusters_resample_items_and_say_so():
    from biomedquant.evaluation.scoring import resampling_units

    clusters, unit = resampling_units(get_dataset("ncbi_disease"), [f"s{i}" for i in range(10)])
    assert list(clusters) == list(range(10))
    assert unit == "item (only 1 x block of 10 sentences: too few to resample)"


def test_cluster_index_names_a_bad_id():
    assert list(cluster_index(["1.T1.T2", "1.T3.T4", "2.T1.T2"], r"^(\d+)\.")) == [0, 0, 1]
    with pytest.raises(ValueError, match="'abc' does not match"):
        cluster_index(["abc"], r"^(\d+)\.")


def test_cluster_bootstrap_widens_as_theory_says():
    """200 sentences of 5 pairs, all pairs of a sentence right or all wrong: the item
    bootstrap treats 1000 pairs as independent, the truth has 200 independent units, so the
    accuracy interval must widen by sqrt(5) (design effect 1 + (m - 1) * rho, rho = 1)."""
    rnd = random.Random(0)
    gold, pred, ids = [], [], []
    for s in range(200):
        right = rnd.random() < 0.6
        for p in range(5):
            gold.append("yes")
            pred.append("yes" if right else "no")
            ids.append(f"DDI-X.d{s}.s0.p{p}")
    pattern = get_dataset("ddi").cluster_pattern
    widths = {}
    for name, clusters in (
        ("items", np.arange(len(ids))),
        ("documents", cluster_index(ids, pattern)),
    ):
        res = score_items(
            "single",
            gold,
            pred,
            clusters=clusters,
            resamples=4000,
            level=0.95,
            rng=make_rng(0, "t"),
        )
        widths[name] = res["accuracy"]["ci_high"] - res["accuracy"]["ci_low"]
    assert widths["documents"] / widths["items"] == pytest.approx(math.sqrt(5), rel=0.12)
    # and each resample keeps whole sentences: every total is a multiple of 5 items
    sums = cluster_sums(item_stats("single", gold, pred).matrix, cluster_index(ids, pattern))
    totals = resampled_totals(sums, 50, make_rng(1, "t"))
    assert (totals[:, 0] == 1000).all() and (totals[:, 1] % 5 == 0).all()


def test_mcnemar_matches_hand_computed_exact_p():
    # b = 1, c = 5: 2 * (C(6,0) + C(6,1)) / 2^6 = 14 / 64
    assert mcnemar_exact(1, 5) == pytest.approx(14 / 64)
    assert mcnemar_exact(5, 1) == pytest.approx(14 / 64)
    # b = 0, c = 10: 2 / 1024
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    # large counts stay exact and finite: symmetric tail of Binomial(4000, 1/2)
    assert 0 < mcnemar_exact(1900, 2100) < 0.01


def test_flip_directions_single_label():
    gold = ["a", "a", "b", "b", "c", "c"]
    base = ["a", "a", "a", "b", "a", None]
    other = ["a", "b", "b", "c", "b", "a"]
    # item 1: c->w; item 2: w->c; item 3: c->w; item 4: a->b both wrong; item 5: None->a
    f = flip_directions("single", gold, base, other)
    assert f == {
        "decisions": 6,
        "correct_to_wrong": 2,
        "wrong_to_correct": 1,
        "wrong_to_other_wrong": 2,
    }


def test_flip_directions_per_entity_and_per_label():
    gold = [["B", "I", "O", "B"]]  # spans (0,2), (3,4)
    base = [["B", "I", "O", "O"]]  # (0,2)
    other = [["B", "O", "O", "B"]]  # (0,1), (3,4)
    # decisions: (0,2) base right other wrong; (3,4) w->c; (0,1) base right (absent), other wrong
    f = flip_directions("ner", gold, base, other)
    assert f == {
        "decisions": 3,
        "correct_to_wrong": 2,
        "wrong_to_correct": 1,
        "wrong_to_other_wrong": 0,
    }
    f = flip_directions("multi", [["x"], ["y"]], [["x"], None], [[], ["y", "x"]])
    # labels x, y over 2 docs = 4 decisions: doc1 x c->w; doc2 y w->c, x c->w
    assert f["decisions"] == 4 and f["correct_to_wrong"] == 2 and f["wrong_to_correct"] == 1


def test_compare_pairs_the_resamples_and_labels():
    gold = ["a"] * 30 + ["b"] * 30
    base = list(gold)
    other = ["a"] * 30 + ["a"] * 10 + ["b"] * 20  # 10 b's lost
    res = compare_items(
        "single",
        gold,
        base,
        other,
        clusters=np.arange(60),
        resamples=500,
        level=0.95,
        rng=make_rng(0, "x"),
        primary="accuracy",
        by_label=True,
    )
    acc = res["metrics"]["accuracy"]
    assert acc["diff"] == pytest.approx(-10 / 60)
    assert acc["ci_high"] < 0 and acc["p_value"] < 0.01
    assert len(res["primary_diff_draws"]) == 500 and max(res["primary_diff_draws"]) < 0
    assert res["flips"]["correct_to_wrong"] == 10 and res["mcnemar_p"] == pytest.approx(2 / 1024)
    b = res["by_label"]["b"]
    assert b["support"] == 30 and b["baseline"] == 1.0
    assert b["value"] == pytest.approx(2 * 20 / (2 * 20 + 10))
    assert b["ci_high"] < 0


def test_score_intervals_are_seeded_and_bracket_the_estimate():
    gold = ["a", "b"] * 20
    pred = ["a", "a"] * 20
    kw = {"clusters": np.arange(40), "resamples": 300, "level": 0.95}
    r1 = score_items("single", gold, pred, rng=make_rng(3, "d"), **kw)
    r2 = score_items("single", gold, pred, rng=make_rng(3, "d"), **kw)
    assert r1 == r2
    assert r1["accuracy"]["ci_low"] <= 0.5 <= r1["accuracy"]["ci_high"]
    r3 = score_items("single", gold, pred, rng=make_rng(3, "other dataset"), **kw)
    assert r3 != r1  # each dataset its own stream


def test_labels_of_unions_both_systems():
    assert labels_of("single", ["a"], ["b", None], ["c"]) == ("a", "b", "c")
    assert labels_of("multi", [["x"]], [None], [["y"]]) == ("x", "y")
    # an item some system left unparsable brings in every label it could have been given
    choices = [["a", "b"], ["a", "b", "d"]]
    assert labels_of("single", ["a", "a"], ["a", None], ["a", "a"], choices=choices) == (
        "a",
        "b",
        "d",
    )
    # parse flags decide, whatever the prediction holds
    flags = labels_of("multi", [["x"]], [[]], oks=[[False]], choices=[["x", "v"]])
    assert flags == ("v", "x")


@settings(max_examples=60, deadline=None)
@given(ner_case(), st.integers(0, 10**6))
def test_ner_comparison_equals_the_difference_of_definitions(case, seed):
    gold, other, other_ok = case
    rnd = random.Random(seed)
    base = [[rnd.choice("BIO") for _ in g] for g in gold]
    base_ok = [rnd.random() > 0.2 for _ in gold]
    res = compare_items(
        "ner",
        gold,
        base,
        other,
        clusters=np.arange(len(gold)),
        resamples=20,
        level=0.9,
        rng=make_rng(seed, "n"),
        primary="f1",
        baseline_ok=base_ok,
        other_ok=other_ok,
    )
    for k, v in ner_scores(gold, other, ok=other_ok).items():
        expected = v - ner_scores(gold, base, ok=base_ok)[k]
        assert res["metrics"][k]["diff"] == pytest.approx(expected)
    assert len(res["primary_diff_draws"]) == 20 and res["mcnemar_p"] is None
