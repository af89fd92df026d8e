"""Metrics with bootstrap intervals, and paired differences between two systems, from items.

These functions hold no file handling: :mod:`biomedquant.evaluation.scoring` reads the files and
writes the results, the benchmark script times these directly. Both systems of a comparison share
one resample count matrix (the same items, or clusters, in every resample), so each
resampled difference is paired.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from biomedquant.evaluation.stats.bootstrap import (
    check_resample_memory,
    cluster_sums,
    percentile_interval,
    resampled_totals,
    two_sided_p,
)
from biomedquant.evaluation.stats.paired_tests import flip_directions, mcnemar_exact
from biomedquant.evaluation.stats.sufficient import (
    ItemStats,
    as_spans,
    item_stats,
    label_f1,
    labels_of,
    metrics_from_totals,
    observed_metrics,
)


def score_items(
    kind: str,
    gold: Sequence[Any],
    pred: Sequence[Any],
    *,
    clusters: np.ndarray,
    resamples: int,
    level: float,
    rng: np.random.Generator,
    ok: Sequence[bool] | None = None,
    choices: Sequence[Sequence[str]] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Every metric with its percentile interval (``None`` without resamples).

    ``ok``, ``choices``: what scoring an unparsable answer needs
    (:func:`biomedquant.evaluation.stats.sufficient.item_stats`)."""
    stats = item_stats(kind, gold, pred, ok=ok, choices=choices)
    values = observed_metrics(stats)
    out: dict[str, dict[str, float | None]] = {
        k: {"value": v, "ci_low": None, "ci_high": None} for k, v in values.items()
    }
    check_resample_memory(resamples, stats.matrix.shape[1], f"{len(gold)} items")
    totals = resampled_totals(cluster_sums(stats.matrix, clusters), resamples, rng)
    if len(totals):
        draws = metrics_from_totals(kind, totals, stats.n_labels)
        for k, d in draws.items():
            lo, hi = percentile_interval(d, level)
            out[k]["ci_low"], out[k]["ci_high"] = float(lo), float(hi)
    return out


def _label_rows(
    base: ItemStats,
    other: ItemStats,
    totals: np.ndarray,
    level: float,
) -> dict[str, dict[str, float | int | None]]:
    """Per-label F1 of both systems and its paired change, with interval and p-value."""
    k = base.matrix.shape[1]
    n_lab = base.n_labels
    f1_b = label_f1(base.kind, base.matrix.sum(axis=0), n_lab)
    f1_o = label_f1(other.kind, other.matrix.sum(axis=0), n_lab)
    start = 2 if base.kind == "single" else 0
    support = base.matrix.sum(axis=0)
    gold_count = support[start : start + n_lab] + support[start + 2 * n_lab : start + 3 * n_lab]
    rows: dict[str, dict[str, float | int | None]] = {}
    if len(totals):
        d = label_f1(other.kind, totals[:, k:], n_lab) - label_f1(base.kind, totals[:, :k], n_lab)
        lo, hi = percentile_interval(d, level)
        p = two_sided_p(d)
    for j, lab in enumerate(base.labels):
        rows[lab] = {
            "support": int(gold_count[j]),
            "baseline": float(f1_b[j]),
            "value": float(f1_o[j]),
            "diff": float(f1_o[j] - f1_b[j]),
            "ci_low": float(lo[j]) if len(totals) else None,
            "ci_high": float(hi[j]) if len(totals) else None,
            "p_value": float(p[j]) if len(totals) else None,
        }
    return rows


def compare_items(
    kind: str,
    gold: Sequence[Any],
    baseline: Sequence[Any],
    other: Sequence[Any],
    *,
    clusters: np.ndarray,
    resamples: int,
    level: float,
    rng: np.random.Generator,
    primary: str,
    by_label: bool = False,
    baseline_ok: Sequence[bool] | None = None,
    other_ok: Sequence[bool] | None = None,
    choices: Sequence[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Paired comparison ``other - baseline``: every metric's difference with its interval and
    p-value, the primary metric's resampled differences (for verdicts pooled over datasets),
    flip directions, McNemar's test (single-label tasks) and, if asked, per-label F1 changes.
    """
    if kind == "ner":
        gold, baseline, other = ([as_spans(s) for s in seqs] for seqs in (gold, baseline, other))
    labels = labels_of(kind, gold, baseline, other, oks=[baseline_ok, other_ok], choices=choices)
    sb = item_stats(kind, gold, baseline, labels, ok=baseline_ok, choices=choices)
    so = item_stats(kind, gold, other, labels, ok=other_ok, choices=choices)
    vb, vo = observed_metrics(sb), observed_metrics(so)
    metrics: dict[str, dict[str, float]] = {
        k: {"baseline": vb[k], "value": vo[k], "diff": vo[k] - vb[k]} for k in vo
    }
    k = sb.matrix.shape[1]
    joint = cluster_sums(np.concatenate([sb.matrix, so.matrix], axis=1), clusters)
    check_resample_memory(resamples, joint.shape[1], f"a comparison of {len(gold)} items")
    totals = resampled_totals(joint, resamples, rng)
    primary_draws: list[float] = []
    if len(totals):
        mb = metrics_from_totals(kind, totals[:, :k], sb.n_labels)
        mo = metrics_from_totals(kind, totals[:, k:], so.n_labels)
        for name in metrics:
            d = mo[name] - mb[name]
            lo, hi = percentile_interval(d, level)
            metrics[name]["ci_low"], metrics[name]["ci_high"] = float(lo), float(hi)
            metrics[name]["p_value"] = float(two_sided_p(d))
        primary_draws = [round(float(x), 7) for x in mo[primary] - mb[primary]]
    flips = flip_directions(kind, gold, baseline, other)
    result: dict[str, Any] = {
        "metrics": metrics,
        "flips": flips,
        "mcnemar_p": mcnemar_exact(flips["correct_to_wrong"], flips["wrong_to_correct"])
        if kind == "single"
        else None,
        "primary_diff_draws": primary_draws,
    }
    if by_label:
        result["by_label"] = _label_rows(sb, so, totals, level)
    return result
