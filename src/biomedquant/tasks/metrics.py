"""The benchmark metrics as small pure functions: the definitions.

The workflow computes the same metrics from per-item sufficient statistics
(:mod:`biomedquant.evaluation.stats.sufficient`), which makes the bootstrap one matrix product; the
tests check both against each other on random and real data, and these functions against
hand-computed values, seqeval and scikit-learn.

Definitions (they follow the benchmark of Chen et al., Nature Communications 2025):

* NER: entity-level precision, recall and F1 over exact spans, micro-averaged over all
  entities of the test set. Spans come from IOB2 tags in strict mode: an entity starts at ``B``
  and extends over the following ``I`` tags; a stray ``I`` (after ``O``) starts no entity. This
  equals ``seqeval`` with ``mode="strict", scheme=IOB2`` (checked in the tests).
* Single-label classification (relation extraction, QA): per-label F1 from one-vs-rest counts.
  Macro-F1 averages over the labels that occur in the gold or in the predictions, the negative
  class included (scikit-learn's default label set). Micro-F1 pools the counts of all labels;
  accuracy is the share of exact matches.
* Multi-label classification: one binary decision per (document, label); macro-F1 averages
  per-label F1 over labels present in the gold or predictions, micro-F1 pools all decisions.

Unparsable outputs score as the least-wrong answer that gets nothing right: every gold label
or entity missed, and exactly one false positive. So breaking format never beats answering
"nothing" or answering wrongly once (a property test checks it on the real test sets), and an
unparsable answer costs about what one wrong answer costs (5% unparsable answers cost within 2x
of 5% wrong ones on BC5CDR and DDI, checked there too). Scoring them as "no prediction" would
not do: a missed gold label costs recall only, while a wrong answer also costs another label's
precision, so a model that breaks format on hard items would gain macro-F1. Scoring them as the
worst answer the format allows (a false entity per token, a false positive of every label) would
make the score measure format breaks rather than answers: 5% unparsable BC5CDR sentences took
entity F1 from 0.63 to 0.40 that way.

* single-label: a false negative of its gold label and one false positive, of the label among
  the item's ``choices`` (the dataset's labels, a QA item's options) whose false positive
  lowers macro-F1 most (:func:`worst_false_labels`); accuracy and micro-F1 count it as one
  wrong answer, whichever label it is.
* multi-label: every gold label missed and one false positive, chosen the same way among the
  labels not in the gold.
* NER: every gold entity missed, and one false entity.

The label of an unparsable answer's false positive is chosen once, on the whole test set
(greedily, item by item, each time the label that lowers macro-F1 most given the counts so far),
and then kept with the item: a bootstrap resample draws items with their chosen labels, so the
resampled statistics and these functions on the same items agree (``false_labels``).

A label with no true positives, no false positives and no false negatives never enters a
macro average; when precision or recall is 0/0 it counts as 0 (scikit-learn's zero_division=0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def iob2_spans(tags: Sequence[str]) -> set[tuple[int, int]]:
    """Exact entity spans ``(start, end_exclusive)`` from IOB2 tags in strict mode."""
    spans = set()
    start = None
    for i, tag in enumerate([*tags, "O"]):
        if tag == "I" and start is not None:
            continue
        if start is not None:
            spans.add((start, i))
            start = None
        if tag == "B":
            start = i
    return spans


def ner_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    ok: Sequence[bool] | None = None,
) -> dict[str, float]:
    """Entity-level micro precision/recall/F1 over exact spans; ``ok[i]`` false marks an
    unparsable sentence (every gold entity missed and one false entity: see the module
    docstring)."""
    tp = fp = fn = 0
    oks = ok if ok is not None else [True] * len(gold)
    for g, p, parsed in zip(gold, pred, oks, strict=True):
        gs = iob2_spans(g)
        if not parsed:
            fp += 1
            fn += len(gs)
            continue
        ps = iob2_spans(p)
        tp += len(gs & ps)
        fp += len(ps - gs)
        fn += len(gs - ps)
    prec, rec, f1 = _prf(tp, fp, fn)
    return {"precision": prec, "recall": rec, "f1": f1}


class _MacroCounts:
    """Per-label (tp, fp, fn) with macro-F1 kept up to date as false positives move."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}
        self.f1: dict[str, float] = {}
        self.total = 0.0

    def add(self, label: str, column: int, step: int = 1) -> None:
        c = self.counts.setdefault(label, [0, 0, 0])
        c[column] += step
        old = self.f1.pop(label, None)
        self.total -= old or 0.0
        if any(c):
            self.f1[label] = _prf(*c)[2]
            self.total += self.f1[label]

    def macro_with_false_positive(self, label: str) -> float:
        """Macro-F1 if ``label`` got one more false positive."""
        tp, fp, fn = self.counts.get(label, (0, 0, 0))
        old = self.f1.get(label, 0.0)
        present = len(self.f1) + (label not in self.f1)
        return (self.total - old + _prf(tp, fp + 1, fn)[2]) / present

    def worst(self, labels: Sequence[str]) -> tuple[str | None, float]:
        """The label whose false positive lowers macro-F1 most (ties: the first)."""
        best, best_macro = None, np.inf
        for lab in labels:
            macro = self.macro_with_false_positive(lab)
            if macro < best_macro - 1e-15:
                best, best_macro = lab, macro
        return best, best_macro


def worst_false_labels(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str] | None],
    options: Sequence[Sequence[str]],
) -> list[str | None]:
    """Per item, the label an unparsable answer (``pred[i] is None``) counts as a false
    positive of, among ``options[i]`` outside its gold ``gold[i]``: together, the choice that
    lowers macro-F1 most. ``None`` for parsed items and for items with no such label.

    Each unparsable answer must cost at least what its worst single wrong label would, and a
    set of them at least what any set of wrong answers would (so no set of wrong answers gains
    by turning unparsable). The choice is made by coordinate descent: first greedily, item by
    item, the label that lowers macro-F1 most given the counts so far; then, until nothing
    changes, each item's label chosen again given all the others. Every step lowers macro-F1,
    so it ends at a choice no single item's change can lower further (ties keep the first
    label in sorted order, so the result is deterministic)."""
    if all(p is not None for p in pred):  # nothing to choose (the usual case)
        return [None] * len(pred)
    counts = _MacroCounts()
    for g, p in zip(gold, pred, strict=True):
        gs = set(g)
        for lab in gs:
            counts.add(lab, 0 if p is not None and lab in p else 2)
        for lab in set(p or ()) - gs:
            counts.add(lab, 1)
    allowed = {i: sorted(set(options[i]) - set(gold[i])) for i, p in enumerate(pred) if p is None}
    chosen: list[str | None] = [None] * len(pred)
    for i, labels in allowed.items():
        chosen[i] = counts.worst(labels)[0]
        if chosen[i] is not None:
            counts.add(chosen[i], 1)
    for _ in range(100):  # each pass lowers macro-F1; a few passes settle it
        moved = False
        for i, labels in allowed.items():
            current = chosen[i]
            if current is None:
                continue
            counts.add(current, 1, -1)
            stay = counts.macro_with_false_positive(current)
            best, best_macro = counts.worst(labels)
            if best is not None and best != current and best_macro < stay - 1e-12:
                chosen[i], moved = best, True
            counts.add(chosen[i], 1)
        if not moved:
            break
    return chosen


def single_label_scores(
    gold: Sequence[str],
    pred: Sequence[str | None],
    choices: Sequence[Sequence[str]] | None = None,
    false_labels: Sequence[str | None] | None = None,
) -> dict[str, float]:
    """Accuracy, macro-F1 and micro-F1 for one label per item. ``None`` = unparsable: a false
    negative of the gold and one false positive, of ``false_labels[i]`` (default: chosen by
    :func:`worst_false_labels` among ``choices[i]``, else among every label in the gold or
    the predictions)."""
    found = sorted({*gold, *(p for p in pred if p is not None)})
    if false_labels is None:
        options = [choices[i] if choices is not None else found for i in range(len(gold))]
        false_labels = worst_false_labels(
            [[g] for g in gold], [None if p is None else [p] for p in pred], options
        )
    counts: dict[str, list[int]] = {lab: [0, 0, 0] for lab in found}  # tp, fp, fn
    for g, p, false in zip(gold, pred, false_labels, strict=True):
        if p == g:
            counts[g][0] += 1
            continue
        counts[g][2] += 1
        wrong = p if p is not None else false
        if wrong is not None:
            counts.setdefault(wrong, [0, 0, 0])[1] += 1
    f1s = [_prf(*c)[2] for c in counts.values()]
    tp, fp, fn = (sum(c[i] for c in counts.values()) for i in range(3))
    return {
        "accuracy": sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "micro_f1": _prf(tp, fp, fn)[2],
    }


def multilabel_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str] | None],
    labels: Sequence[str] | None = None,
    false_labels: Sequence[str | None] | None = None,
) -> dict[str, float]:
    """Macro- and micro-F1 over (document, label) decisions. ``None`` = unparsable: every gold
    label missed and one false positive, of ``false_labels[i]`` (default: chosen by
    :func:`worst_false_labels` among ``labels``, else among the labels in the gold or the
    predictions)."""
    gold_sets = [set(g) for g in gold]
    universe = set().union(*gold_sets, *(set(p) for p in pred if p is not None))
    if false_labels is None:
        options = sorted(universe | set(labels or ()))
        false_labels = worst_false_labels(gold, pred, [options] * len(gold))
    pred_sets = [
        set(p) if p is not None else ({false} if false is not None else set())
        for p, false in zip(pred, false_labels, strict=True)
    ]
    universe |= set().union(*pred_sets)
    per_label = []
    tp_all = fp_all = fn_all = 0
    for lab in sorted(universe):
        tp = sum(lab in g and lab in p for g, p in zip(gold_sets, pred_sets, strict=True))
        fp = sum(lab not in g and lab in p for g, p in zip(gold_sets, pred_sets, strict=True))
        fn = sum(lab in g and lab not in p for g, p in zip(gold_sets, pred_sets, strict=True))
        if tp + fp + fn == 0:
            continue
        per_label.append(_prf(tp, fp, fn)[2])
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    return {
        "macro_f1": float(np.mean(per_label)) if per_label else 0.0,
        "micro_f1": _prf(tp_all, fp_all, fn_all)[2],
    }


def changed_items(
    baseline: Sequence[Any],
    other: Sequence[Any],
    *,
    as_set: bool = False,
    baseline_ok: Sequence[bool] | None = None,
    other_ok: Sequence[bool] | None = None,
) -> list[bool]:
    """Per item, whether its scored answer differs from the baseline's.

    ``as_set``: predictions are label lists compared as sets (multi-label). An unparsable
    output (``None``, or a false parse flag in ``baseline_ok`` / ``other_ok``) is an answer of
    its own, so label <-> unparsable is a change, and so is an NER sentence that one system
    left unparsable where the other's parsed answer was "no entity" (their tags read alike,
    but they score differently); two unparsable answers are the same answer.
    """

    def norm(p: Any, ok: bool) -> Any:
        if not ok or p is None:
            return None
        if isinstance(p, list):
            return frozenset(p) if as_set else tuple(p)
        return p

    if len(baseline) != len(other):
        raise ValueError("flip rate needs predictions for the same items")
    b_ok = baseline_ok if baseline_ok is not None else [True] * len(baseline)
    o_ok = other_ok if other_ok is not None else [True] * len(other)
    return [
        norm(a, ka) != norm(b, kb) for a, b, ka, kb in zip(baseline, other, b_ok, o_ok, strict=True)
    ]


def flip_rate(baseline: Sequence[Any], other: Sequence[Any], *, as_set: bool = False) -> float:
    """Share of items whose parsed prediction differs from the baseline's
    (:func:`changed_items`)."""
    changed = changed_items(baseline, other, as_set=as_set)
    return sum(changed) / len(changed) if changed else 0.0


# The benchmark script's own metrics (BIDS-Xu-Lab/Biomedical-NLP-Benchmarks: run_eval.py for
# classification and QA; json2txt.ipynb then run_eval_ner.py for NER), so that a number here can
# be set beside the benchmark paper's. They differ from the project's on purpose: the script
# scores the answer strings it receives, so an unparsable answer is the empty string, a class of
# its own (it costs its gold class's recall, and enters the macro average as a class with F1 0),
# and its weighted F1 weighs each class by its gold support; its NER evaluation counts only the
# sentences whose gold holds an entity, so entities predicted elsewhere cost nothing. Under
# both, an unparsable answer costs less than a wrong one: they are never compared across
# methods. tests/data/benchmark_ner holds the NER evaluation's own output on a fixture.


def benchmark_label_scores(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1 and weighted F1 as scikit-learn's ``accuracy_score`` and
    ``f1_score(average="macro" | "weighted")`` compute them on answer strings (labels: the
    sorted union of gold and predicted strings; 0/0 counts as 0)."""
    labels = sorted({*gold, *pred})
    index = {lab: i for i, lab in enumerate(labels)}
    tp = np.zeros(len(labels))
    n_pred = np.zeros(len(labels))
    support = np.zeros(len(labels))
    for g, p in zip(gold, pred, strict=True):
        support[index[g]] += 1
        n_pred[index[p]] += 1
        tp[index[g]] += g == p
    f1 = np.divide(2 * tp, support + n_pred, out=np.zeros_like(tp), where=support + n_pred > 0)
    return {
        "accuracy": float(tp.sum() / len(gold)) if len(gold) else 0.0,
        "macro_f1": float(f1.mean()) if len(f1) else 0.0,
        "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else 0.0,
    }


def benchmark_multilabel_scores(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Macro- and weighted F1 over (document, label) decisions, as ``f1_score`` computes them
    on indicator matrices (``MultiLabelBinarizer`` over the labels in gold or predictions);
    an unparsable answer is the empty label set."""
    labels = sorted(set().union(*map(set, gold), *map(set, pred)))
    if not labels:
        return {"macro_f1": 0.0, "weighted_f1": 0.0}
    f1s, support = [], []
    for lab in labels:
        tp = sum(lab in g and lab in p for g, p in zip(gold, pred, strict=True))
        n_gold = sum(lab in g for g in gold)
        n_pred = sum(lab in p for p in pred)
        f1s.append(2 * tp / (n_gold + n_pred) if n_gold + n_pred else 0.0)
        support.append(n_gold)
    f, s = np.array(f1s), np.array(support, dtype=float)
    return {
        "macro_f1": float(f.mean()),
        "weighted_f1": float((f * s).sum() / s.sum()) if s.sum() else 0.0,
    }


def benchmark_ner_scores(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Precision, recall and F1 as the benchmark's NER evaluation computes them: the notebook
    ``GPT/extractive_tasks/ner_format_conversion/json2txt.ipynb`` (``evaluate``, ``load_spans``)
    turns each sentence's tags into gold and predicted spans, ``run_eval_ner.py``
    (``calculate_scores``, ``compute_score``) sums them (upstream commit e607a81).

    * Spans are exact ``(start, end)`` token spans from IOB2 tags: ``B`` and the ``I`` tags after
      it; a stray ``I`` starts none (``load_spans`` reads tags as :func:`iob2_spans` does).
    * Only sentences whose gold holds an entity count. ``evaluate`` returns the predicted spans
      of the entity types found in the gold, and nothing for a sentence without gold entities,
      so entities predicted there are no false positives (36% of BC5CDR's test sentences, 43%
      of NCBI's). This is why the benchmark's precision runs above the project's.
    * True positives (gold spans predicted exactly), predicted and gold spans are summed over the
      sentences; precision and recall are rounded to 4 decimals, and F1, taken from the rounded
      values, is rounded to 4 decimals as well; 0/0 is 0.

    ``tests/data/benchmark_ner`` holds the benchmark code's own output on a fixture, which the
    tests compare with this function."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred, strict=True):
        gs = iob2_spans(g)
        if not gs:  # evaluate() hands run_eval_ner.py two empty lists for this sentence
            continue
        ps = iob2_spans(p)
        tp += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    prec = round(tp / n_pred, 4) if n_pred else 0.0
    rec = round(tp / n_gold, 4) if n_gold else 0.0
    f1 = round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0
    return {"precision": prec, "recall": rec, "f1": f1}


def benchmark_metrics(
    task: str, gold: Sequence[Any], pred: Sequence[Any], ok: Sequence[bool]
) -> dict[str, float]:
    """The benchmark script's metrics of a task (``ner``, ``re``, ``mlc``, ``qa``), named
    ``benchmark_*``: QA accuracy and macro-F1; relation extraction and multi-label macro- and
    weighted F1; NER exact-span precision, recall and F1 (:func:`benchmark_ner_scores`).
    Unparsable answers (``ok`` false) are what the script would receive for them: an empty
    answer (NER: no entity, which costs the sentence's gold entities their recall only)."""
    if task == "ner":
        tags = [
            p if parsed else ["O"] * len(g) for g, p, parsed in zip(gold, pred, ok, strict=True)
        ]
        scores = benchmark_ner_scores(gold, tags)
    elif task == "mlc":
        sets = [list(p) if parsed else [] for p, parsed in zip(pred, ok, strict=True)]
        scores = benchmark_multilabel_scores(gold, sets)
    else:
        strings = [str(p) if parsed else "" for p, parsed in zip(pred, ok, strict=True)]
        scores = benchmark_label_scores([str(g) for g in gold], strings)
        if task == "qa":
            scores.pop("weighted_f1")
        else:
            scores.pop("accuracy")
    return {f"benchmark_{k}": v for k, v in scores.items()}
