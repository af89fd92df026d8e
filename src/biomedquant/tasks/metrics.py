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

Unparsable outputs score as the worst answer their format allows, so that breaking format
never pays: turning any wrong answer into an unparsable one can only lower every metric (a
property test checks it on the real test sets). Scoring them as "no prediction" would not do:
a missed gold label costs recall only, while a wrong answer also costs another label's
precision, so a model that breaks format on hard items would gain macro-F1.

* single-label: a false negative of its gold label and a false positive of every other label
  the item could have been answered with (``choices``: the dataset's labels, a QA item's
  options); those labels then enter the label set.
* multi-label: every label decided wrongly (the complement of the gold set, over ``labels``).
* NER: every gold entity missed, and one false entity per token (the most entities a tagging
  of the sentence can hold).

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
    unparsable sentence (scored as the worst tagging: see the module docstring)."""
    tp = fp = fn = 0
    oks = ok if ok is not None else [True] * len(gold)
    for g, p, parsed in zip(gold, pred, oks, strict=True):
        gs = iob2_spans(g)
        if not parsed:
            fp += len(g)
            fn += len(gs)
            continue
        ps = iob2_spans(p)
        tp += len(gs & ps)
        fp += len(ps - gs)
        fn += len(gs - ps)
    prec, rec, f1 = _prf(tp, fp, fn)
    return {"precision": prec, "recall": rec, "f1": f1}


def single_label_scores(
    gold: Sequence[str],
    pred: Sequence[str | None],
    choices: Sequence[Sequence[str]] | None = None,
) -> dict[str, float]:
    """Accuracy, macro-F1 and micro-F1 for one label per item (``None`` = unparsable: a false
    positive of every label in ``choices[i]`` but the gold; default: every label in the gold
    or the predictions)."""
    found = {*gold, *(p for p in pred if p is not None)}
    options = [choices[i] if choices is not None else None for i in range(len(gold))]
    for i, p in enumerate(pred):
        if p is None and options[i] is not None:
            found.update(options[i])
    labels = sorted(found)
    counts = {lab: [0, 0, 0] for lab in labels}  # tp, fp, fn
    for g, p, opts in zip(gold, pred, options, strict=True):
        if p == g:
            counts[g][0] += 1
            continue
        counts[g][2] += 1
        for wrong in [p] if p is not None else (opts if opts is not None else labels):
            if wrong != g:
                counts[wrong][1] += 1
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
) -> dict[str, float]:
    """Macro- and micro-F1 over (document, label) decisions; ``None`` = unparsable, every
    label of ``labels`` (default: those in the gold or the predictions) decided wrongly."""
    gold_sets = [set(g) for g in gold]
    universe = set().union(*gold_sets, *(set(p) for p in pred if p is not None))
    if labels is not None and any(p is None for p in pred):
        universe |= set(labels)
    pred_sets = [
        set(p) if p is not None else universe - g for g, p in zip(gold_sets, pred, strict=True)
    ]
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
    baseline: Sequence[Any], other: Sequence[Any], *, as_set: bool = False
) -> list[bool]:
    """Per item, whether its parsed prediction differs from the baseline's.

    ``as_set``: predictions are label lists compared as sets (multi-label). An unparsable
    output (``None``) is a prediction of its own, so label <-> unparsable is a change.
    """

    def norm(p: Any) -> Any:
        if isinstance(p, list):
            return frozenset(p) if as_set else tuple(p)
        return p

    if len(baseline) != len(other):
        raise ValueError("flip rate needs predictions for the same items")
    return [norm(a) != norm(b) for a, b in zip(baseline, other, strict=True)]


def flip_rate(baseline: Sequence[Any], other: Sequence[Any], *, as_set: bool = False) -> float:
    """Share of items whose parsed prediction differs from the baseline's
    (:func:`changed_items`)."""
    changed = changed_items(baseline, other, as_set=as_set)
    return sum(changed) / len(changed) if changed else 0.0


# The benchmark script's own metrics (BIDS-Xu-Lab/Biomedical-NLP-Benchmarks, run_eval.py), so
# that a number here can be set beside the benchmark paper's. They differ from the project's
# on purpose: the script scores the answer strings it receives, so an unparsable answer is the
# empty string, a class of its own (it costs its gold class's recall, and enters the macro
# average as a class with F1 0), and its weighted F1 weighs each class by its gold support.


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
    """Exact-span precision, recall and F1 summed over sentences, with precision and recall
    rounded to 4 decimals before F1 is taken from them (as the script does); an unparsable
    sentence predicts no entity."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred, strict=True):
        gs, ps = iob2_spans(g), iob2_spans(p)
        tp += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    prec = round(tp / n_pred, 4) if n_pred else 0.0
    rec = round(tp / n_gold, 4) if n_gold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"precision": prec, "recall": rec, "f1": f1}


def benchmark_metrics(
    task: str, gold: Sequence[Any], pred: Sequence[Any], ok: Sequence[bool]
) -> dict[str, float]:
    """The benchmark script's metrics of a task (``ner``, ``re``, ``mlc``, ``qa``), named
    ``benchmark_*``: QA accuracy and macro-F1; relation extraction and multi-label macro- and
    weighted F1; NER exact-span precision, recall and F1. Unparsable answers (``ok`` false)
    are what the script would receive for them: an empty answer."""
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
