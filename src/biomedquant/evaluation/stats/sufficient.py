"""Per-item sufficient statistics: every benchmark metric as a function of column sums.

Each metric in :mod:`biomedquant.tasks.metrics` is a function of counts summed over the items
of a test set (true positives, false positives, false negatives per label; exact matches; items).
Writing those counts per item, as one row of a matrix, turns any bootstrap resample into a
vector of resample counts (how often each item was drawn) and its metrics into a function of
``counts @ matrix``: B resamples are one matrix product instead of B Python loops over items.

Layouts (columns of :attr:`ItemStats.matrix`):

* ``ner``: ``tp, fp, fn`` of exact entity spans in the sentence.
* ``single`` (relation extraction, QA): ``items, correct``, then per label ``tp``, ``fp``,
  ``fn`` (one-hot of the gold label and of the prediction).
* ``multi`` (multi-label): per label ``tp``, ``fp``, ``fn`` of the document's decision.

An unparsable output scores as the least-wrong answer that gets nothing right (the convention
of :mod:`biomedquant.tasks.metrics`): every gold label or entity missed and one false positive;
for single- and multi-label items, of the label among its ``choices`` that
:func:`biomedquant.tasks.metrics.worst_false_labels` picks on the whole test set, kept with
the item in every resample.

A label whose ``tp + fp + fn`` is 0 in a resample does not occur in that resample's gold or
predictions, so it leaves the macro average, exactly as the pure functions decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from biomedquant.tasks.metrics import iob2_spans, worst_false_labels

Spans = set[tuple[int, int]] | frozenset[tuple[int, int]]


def as_spans(seq: Sequence[str] | Spans) -> Spans:
    """Entity spans of a tag sequence; spans computed before pass through (a comparison
    needs each sequence's spans three times, and span finding dominates NER scoring)."""
    return seq if isinstance(seq, set | frozenset) else iob2_spans(seq)


TASK_KIND = {"ner": "ner", "re": "single", "qa": "single", "mlc": "multi"}


@dataclass(frozen=True)
class ItemStats:
    """Sufficient statistics of one system's predictions, one row per item."""

    kind: str  # "ner" | "single" | "multi"
    labels: tuple[str, ...]  # label order of the per-label column blocks (empty for NER)
    matrix: np.ndarray  # (n_items, n_columns), float64

    @property
    def n_labels(self) -> int:
        return len(self.labels)


def unparsable_flags(kind: str, pred: Sequence[Any], ok: Sequence[bool] | None) -> list[bool]:
    """Which items are unparsable: ``ok`` false, or (without ``ok``) a ``None`` prediction."""
    if ok is not None:
        if len(ok) != len(pred):
            raise ValueError(f"{len(pred)} predictions but {len(ok)} parse flags")
        return [not o for o in ok]
    return [p is None for p in pred] if kind != "ner" else [False] * len(pred)


def labels_of(
    kind: str,
    gold: Sequence[Any],
    *preds: Sequence[Any],
    oks: Sequence[Sequence[bool] | None] | None = None,
    choices: Sequence[Sequence[str]] | None = None,
) -> tuple[str, ...]:
    """The label set the metrics range over: every label in the gold or any prediction, and
    the ``choices`` of every item some system left unparsable (its false positive goes to one
    of them; a label nothing counts stays out of every macro average).

    Paired comparisons pass both systems' predictions (and parse flags, ``oks``) so that
    their columns line up."""
    if kind == "ner":
        return ()
    found: set[str] = set()
    given = oks if oks is not None else [None] * len(preds)
    flags = [unparsable_flags(kind, p, ok) for p, ok in zip(preds, given, strict=True)]
    if kind == "single":
        found.update(gold)
    else:
        for g in gold:
            found.update(g)
    for pred, bad in zip(preds, flags, strict=True):
        for i, p in enumerate(pred):
            if bad[i]:
                if choices is not None:
                    found.update(choices[i])
            elif kind == "single":
                found.add(p)
            else:
                found.update(p or ())
    return tuple(sorted(found))


def item_stats(
    kind: str,
    gold: Sequence[Any],
    pred: Sequence[Any],
    labels: Sequence[str] | None = None,
    *,
    ok: Sequence[bool] | None = None,
    choices: Sequence[Sequence[str]] | None = None,
) -> ItemStats:
    """The per-item statistics of ``pred`` against ``gold`` (see the module docstring).

    ``ok``: parse flags (default: ``None`` predictions are the unparsable ones); ``choices``:
    per item, the labels it could be answered with (default: every label of the label set)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold items but {len(pred)} predictions")
    bad = unparsable_flags(kind, pred, ok)
    if labels is None:
        labels = labels_of(kind, gold, pred, oks=[ok], choices=choices)
    labels = tuple(labels)
    n, n_lab = len(gold), len(labels)
    if kind == "ner":
        m = np.zeros((n, 3))
        for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
            gs = as_spans(g)
            if bad[i]:
                m[i] = (0, 1, len(gs))  # every entity missed, one false entity
                continue
            ps = as_spans(p)
            tp = len(gs & ps)
            m[i] = (tp, len(ps) - tp, len(gs) - tp)
        return ItemStats(kind, labels, m)
    index = {lab: j for j, lab in enumerate(labels)}
    gold_lists = [[g] for g in gold] if kind == "single" else [list(g) for g in gold]
    shown = [
        None if bad[i] else ([p] if kind == "single" else list(p or ())) for i, p in enumerate(pred)
    ]
    options = [choices[i] if choices is not None else labels for i in range(n)]
    false = worst_false_labels(gold_lists, shown, options)
    if kind == "single":
        g_idx = np.fromiter((index[g] for g in gold), dtype=np.int64, count=n)
        answered = [p if not bad[i] else false[i] for i, p in enumerate(pred)]
        p_idx = np.fromiter(
            (-1 if a is None else index[a] for a in answered), dtype=np.int64, count=n
        )
        correct = (g_idx == p_idx) & ~np.asarray(bad, dtype=bool)
        m = np.zeros((n, 2 + 3 * n_lab))
        rows = np.arange(n)
        m[:, 0] = 1.0
        m[:, 1] = correct
        m[rows[correct], 2 + g_idx[correct]] = 1.0
        wrong = ~correct
        m[rows[wrong], 2 + 2 * n_lab + g_idx[wrong]] = 1.0
        fp = wrong & (p_idx >= 0)
        m[rows[fp], 2 + n_lab + p_idx[fp]] = 1.0
        return ItemStats(kind, labels, m)
    if kind == "multi":
        g_hot = np.zeros((n, n_lab), dtype=bool)
        p_hot = np.zeros((n, n_lab), dtype=bool)
        for i, g in enumerate(gold):
            g_hot[i, [index[lab] for lab in set(g)]] = True
            answer = shown[i] if not bad[i] else ([false[i]] if false[i] is not None else [])
            p_hot[i, [index[lab] for lab in set(answer)]] = True
        m = np.concatenate([g_hot & p_hot, ~g_hot & p_hot, g_hot & ~p_hot], axis=1)
        return ItemStats(kind, labels, m.astype(np.float64))
    raise ValueError(f"unknown metric kind {kind!r}; known: ner, single, multi")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return p, r, _ratio(2 * p * r, p + r)


def _label_blocks(kind: str, totals: np.ndarray, n_labels: int) -> tuple[np.ndarray, ...]:
    start = 2 if kind == "single" else 0
    return tuple(totals[..., start + k * n_labels : start + (k + 1) * n_labels] for k in range(3))


def label_f1(kind: str, totals: np.ndarray, n_labels: int) -> np.ndarray:
    """Per-label (one-vs-rest) F1 from summed statistics: shape ``totals.shape[:-1] + (L,)``."""
    return _f1(*_label_blocks(kind, totals, n_labels))[2]


def metrics_from_totals(kind: str, totals: np.ndarray, n_labels: int) -> dict[str, np.ndarray]:
    """The task's metrics from statistics summed over (resampled) items.

    ``totals`` has the statistics in its last axis; any leading axes (resamples) are kept."""
    if kind == "ner":
        p, r, f = _f1(totals[..., 0], totals[..., 1], totals[..., 2])
        return {"precision": p, "recall": r, "f1": f}
    tp, fp, fn = _label_blocks(kind, totals, n_labels)
    f1 = _f1(tp, fp, fn)[2]
    present = (tp + fp + fn) > 0
    n_present = present.sum(axis=-1)
    macro = _ratio((f1 * present).sum(axis=-1), n_present)
    micro = _f1(tp.sum(axis=-1), fp.sum(axis=-1), fn.sum(axis=-1))[2]
    if kind == "single":
        accuracy = _ratio(totals[..., 1], totals[..., 0])
        return {"accuracy": accuracy, "macro_f1": macro, "micro_f1": micro}
    return {"macro_f1": macro, "micro_f1": micro}


def observed_metrics(stats: ItemStats) -> dict[str, float]:
    """The metrics of the whole test set (every item once)."""
    totals = stats.matrix.sum(axis=0)
    return {k: float(v) for k, v in metrics_from_totals(stats.kind, totals, stats.n_labels).items()}
