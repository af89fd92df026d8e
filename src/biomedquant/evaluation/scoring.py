"""Score predictions against gold with the benchmark's metrics; compare each quantized method
with its unquantized baseline; gather both into tidy tables.

A prediction file is JSON Lines with one object per item: ``id`` plus either ``prediction``
(already parsed: tags for NER, a label, a label list, an option letter or decision word) or
``output`` (raw model text, parsed here with the task's parser). ``parse_ok`` is optional.
Predictions made outside biomedquant can be scored the same way.

The statistics (sufficient statistics per item, the bootstrap as a matrix product, cluster
resampling, flips, McNemar) live in :mod:`biomedquant.evaluation.stats.intervals`; this module reads
the files and writes the results. Each dataset's bootstrap draws from its own random stream of the
one configured seed (:func:`biomedquant.evaluation.stats.bootstrap.make_rng`), so the resampled
differences of a task's datasets are independent and can be pooled
(:mod:`biomedquant.evaluation.stats.verdicts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from biomedquant.common.files import JsonLines, read_json, read_jsonl, write_csv, write_json
from biomedquant.common.provenance import now, versions
from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec, get_dataset
from biomedquant.evaluation.defaults import BOOTSTRAP_RESAMPLES, CI_LEVEL
from biomedquant.evaluation.inputs import answer_choices
from biomedquant.evaluation.parsing import parse_fields
from biomedquant.evaluation.stats.bootstrap import cluster_index, make_rng
from biomedquant.evaluation.stats.intervals import compare_items, score_items
from biomedquant.evaluation.stats.paired_tests import FLIP_KEYS
from biomedquant.evaluation.stats.sufficient import TASK_KIND, item_stats, observed_metrics
from biomedquant.inference.prompting import PROMPT_METHODS
from biomedquant.tasks import get_task
from biomedquant.tasks.metrics import benchmark_metrics, changed_items

# Per-label changes where labels are classes a lab cares about (relation types, topics);
# QA options are answer positions, and NER has one entity type per dataset.
BY_LABEL_TASKS = ("re", "mlc")

TABLE_COLUMNS = (
    "model",
    "method",
    "dataset",
    "task",
    "prompt",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "parse_failure_rate",
    "value_on_parsed",
    "primary",
)
COMPARISON_COLUMNS = (
    "model",
    "method",
    "baseline",
    "dataset",
    "task",
    "prompt",
    "metric",
    "baseline_value",
    "value",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "mcnemar_p",
    "flip_rate",
    "decisions",
    *FLIP_KEYS,
    "n",
    "resampling_unit",
    "n_units",
    "noise_floor_flip_rate",
    "noise_floor_diff",
    "noise_floor_diff_ci_low",
    "noise_floor_diff_ci_high",
    "primary",
)
BY_LABEL_COLUMNS = (
    "model",
    "method",
    "baseline",
    "dataset",
    "task",
    "prompt",
    "label",
    "support",
    "baseline_f1",
    "f1",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
)


# Fewer clusters than this and a cluster bootstrap says nothing about the spread (one block of
# ten demo sentences would give every resample the same total): items are resampled instead,
# and the score's provenance says so.
MIN_CLUSTERS = 30


def resampling_units(spec: DatasetSpec, ids: list[str]) -> tuple[np.ndarray, str]:
    """The bootstrap's unit of each item (the registry's clusters, or the items themselves
    when there are fewer than :data:`MIN_CLUSTERS` clusters) and what a unit is."""
    clusters = cluster_index(ids, spec.cluster_pattern, spec.cluster_block)
    n = int(clusters.max()) + 1 if len(clusters) else 0
    if spec.cluster_pattern is not None and n < MIN_CLUSTERS:
        return np.arange(len(ids)), f"item (only {n} x {spec.cluster_unit}: too few to resample)"
    return clusters, spec.cluster_unit


def _provenance(
    resamples: int,
    level: float,
    seed: int,
    spec: DatasetSpec,
    clusters: np.ndarray,
    unit: str,
    **inputs: JsonLines,
) -> dict[str, Any]:
    """Bootstrap settings (the units resampled: ``clusters`` numbers each item's), input
    hashes (of the files as written) and versions recorded beside every score."""
    n_units = int(clusters.max()) + 1 if len(clusters) else 0
    return {
        "bootstrap": {
            "resamples": resamples,
            "level": level,
            "seed": seed,
            "stream": spec.name,
            "unit": unit,
            "units": n_units,
        },
        "inputs": {f"{name}_sha256": lines.sha256 for name, lines in inputs.items()},
        "versions": versions(("biomedquant", "numpy")),
        "written_at": now(),
    }


def align(
    predictions: list[dict[str, Any]],
    where: str | Path,
    gold: list[Record],
    spec: DatasetSpec,
    prompt: str = "zero-shot",
) -> tuple[list[Any], list[bool]]:
    """The predictions of ``gold``'s items in gold order, and whether each parsed; raw
    outputs are parsed here. ``where`` names the predictions' file in errors; ``prompt``: the
    prompting method of raw outputs (self-consistency votes over its samples)."""
    if prompt not in PROMPT_METHODS:  # a label of the user's own: read as one output
        prompt = "zero-shot"
    by_id: dict[str, dict[str, Any]] = {}
    for lineno, p in enumerate(predictions, 1):
        if "id" not in p or ("prediction" not in p and "output" not in p):
            raise ValueError(
                f"{where}:{lineno}: a prediction needs 'id' and 'prediction' or 'output'"
            )
        by_id[str(p["id"])] = p
    missing = [g["id"] for g in gold if g["id"] not in by_id]
    if missing:
        raise ValueError(
            f"{where}: {len(missing)} gold item(s) have no prediction, e.g. {missing[:3]}"
        )
    preds, oks = [], []
    for rec in gold:
        p = by_id[rec["id"]]
        if "prediction" in p:
            preds.append(p["prediction"])
            oks.append(bool(p.get("parse_ok", True)))
        else:
            # the workflow's own reading (biomedquant.evaluation.parsing): one rule, votes included
            fields = parse_fields(spec, p["output"], rec, prompt)
            preds.append(fields["prediction"])
            oks.append(fields["parse_ok"])
    return preds, oks


def aligned_predictions(
    predictions_path: str | Path,
    gold_path: str | Path,
    dataset: str,
    gold_records: list[Record] | None = None,
    prompt: str = "zero-shot",
) -> tuple[list[Record], list[Any], list[bool]]:
    """Gold records and a prediction file's predictions in gold order (:func:`align`).

    ``gold_records``: the gold file already read."""
    gold = gold_records if gold_records is not None else read_jsonl(gold_path)
    # read without hashing: nothing here records the file's hash
    preds, oks = align(
        read_jsonl(predictions_path), predictions_path, gold, get_dataset(dataset), prompt
    )
    return gold, preds, oks


def worst_answer_context(spec: DatasetSpec, gold_records: list[Record]) -> dict[str, Any]:
    """What scoring an unparsable answer needs, per item: the labels it could be answered
    with (``choices``; a QA item's options; none for NER, where it is one false entity). See
    :mod:`biomedquant.tasks.metrics`."""
    if spec.task == "ner":
        return {"choices": None}
    return {"choices": [answer_choices(spec, r) for r in gold_records]}


def _unparsable_as_none(task: str, pred: list[Any], oks: list[bool]) -> list[Any]:
    """Label predictions with the unparsable ones as ``None`` (a failed multi-label parse
    reads as ``[]``, which would look like the answer "no label"); NER tags stay as read
    (their flags travel beside them)."""
    if task == "ner":
        return pred
    return [p if ok else None for p, ok in zip(pred, oks, strict=True)]


def score_run(
    *,
    gold: JsonLines,
    predictions: JsonLines,
    dataset: str,
    model: str = "",
    method: str = "",
    prompt: str = "",
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics with bootstrap intervals for one run's predictions (nothing is written)."""
    spec = get_dataset(dataset)
    task = get_task(spec.task)
    pred, oks = align(
        predictions.records, predictions.where, gold.records, spec, prompt or "zero-shot"
    )
    gold_labels = [task.gold(r) for r in gold.records]
    clusters, unit = resampling_units(spec, [r["id"] for r in gold.records])
    metrics = score_items(
        TASK_KIND[spec.task],
        gold_labels,
        _unparsable_as_none(spec.task, pred, oks),
        clusters=clusters,
        resamples=resamples,
        level=level,
        rng=make_rng(seed, spec.name),
        ok=oks,
        **worst_answer_context(spec, gold.records),
    )
    # the score on the parsed answers alone, beside the parse-failure rate: a reader sees
    # whether the answers or their format moved the primary score
    parsed = [i for i, ok in enumerate(oks) if ok]
    on_parsed = (
        observed_metrics(
            item_stats(
                TASK_KIND[spec.task],
                [gold_labels[i] for i in parsed],
                [pred[i] for i in parsed],
                choices=None,
            )
        )
        if parsed
        else {}
    )
    for name, m in metrics.items():
        m["value_on_parsed"] = on_parsed.get(name)
    # the benchmark script's own metrics beside them, without intervals
    # (biomedquant.tasks.metrics)
    for name, value in benchmark_metrics(spec.task, gold_labels, pred, oks).items():
        metrics[name] = {"value": value, "ci_low": None, "ci_high": None}
    return {
        "model": model,
        "method": method,
        "dataset": dataset,
        "task": spec.task,
        "prompt": prompt,
        "n": len(gold_labels),
        "parse_failure_rate": sum(not ok for ok in oks) / len(gold_labels),
        "primary_metric": task.primary_metric,
        "metrics": metrics,
        **_provenance(
            resamples, level, seed, spec, clusters, unit, predictions=predictions, gold=gold
        ),
    }


def score_predictions(
    *,
    predictions_path: str | Path,
    gold_path: str | Path,
    out_path: str | Path,
    **settings: Any,
) -> dict[str, Any]:
    """:func:`score_run` on a prediction file and a gold file, written as JSON to
    ``out_path``; ``settings`` are :func:`score_run`'s (dataset, names, bootstrap)."""
    result = score_run(
        gold=JsonLines.read(gold_path), predictions=JsonLines.read(predictions_path), **settings
    )
    write_json(out_path, result)
    return result


def compare_runs(
    *,
    gold: JsonLines,
    baseline_predictions: JsonLines,
    predictions: JsonLines,
    dataset: str,
    model: str,
    method: str,
    baseline: str,
    prompt: str,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = CI_LEVEL,
    seed: int = 0,
    noise_floor: bool = False,
) -> dict[str, Any]:
    """Paired comparison of a quantized method with the unquantized baseline on the same
    items (nothing is written): metric differences with paired (cluster) bootstrap intervals
    and p-values, the flip rate and flip directions, McNemar's exact test (single-label
    tasks), per-label F1 changes (relation extraction, multi-label), and the primary metric's
    resampled differences.

    ``noise_floor``: the "method" is the baseline itself rerun under another batch shape; the
    record is marked so the comparison table reports it beside every method, not as one."""
    spec = get_dataset(dataset)
    task = get_task(spec.task)
    pm = prompt or "zero-shot"
    base = baseline_predictions
    base_pred, base_ok = align(base.records, base.where, gold.records, spec, pm)
    other_pred, other_ok = align(predictions.records, predictions.where, gold.records, spec, pm)
    base_pred = _unparsable_as_none(spec.task, base_pred, base_ok)
    other_pred = _unparsable_as_none(spec.task, other_pred, other_ok)
    gold_labels = [task.gold(r) for r in gold.records]
    clusters, unit = resampling_units(spec, [r["id"] for r in gold.records])
    stats = compare_items(
        TASK_KIND[spec.task],
        gold_labels,
        base_pred,
        other_pred,
        clusters=clusters,
        resamples=resamples,
        level=level,
        rng=make_rng(seed, spec.name),
        primary=task.primary_metric,
        by_label=spec.task in BY_LABEL_TASKS,
        baseline_ok=base_ok,
        other_ok=other_ok,
        **worst_answer_context(spec, gold.records),
    )
    changed = changed_items(
        base_pred,
        other_pred,
        as_set=spec.task == "mlc",
        baseline_ok=base_ok,
        other_ok=other_ok,
    )
    return {
        "model": model,
        "method": method,
        "baseline": baseline,
        "dataset": dataset,
        "task": spec.task,
        "prompt": prompt,
        "n": len(gold_labels),
        "primary_metric": task.primary_metric,
        "flip_rate": sum(changed) / len(changed) if changed else 0.0,
        # resampling units holding a changed prediction: the verdicts' minimum of evidence
        "changed_units": len({int(c) for c, x in zip(clusters, changed, strict=True) if x}),
        "noise_floor": noise_floor,
        **stats,
        **_provenance(
            resamples,
            level,
            seed,
            spec,
            clusters,
            unit,
            baseline=baseline_predictions,
            predictions=predictions,
            gold=gold,
        ),
    }


def compare_to_baseline(
    *,
    baseline_path: str | Path,
    predictions_path: str | Path,
    gold_path: str | Path,
    out_path: str | Path,
    **settings: Any,
) -> dict[str, Any]:
    """:func:`compare_runs` on the baseline's and a method's prediction files, written as
    JSON to ``out_path``; ``settings`` are :func:`compare_runs`'s (dataset, names,
    bootstrap, ``noise_floor``)."""
    result = compare_runs(
        gold=JsonLines.read(gold_path),
        baseline_predictions=JsonLines.read(baseline_path),
        predictions=JsonLines.read(predictions_path),
        **settings,
    )
    write_json(out_path, result)
    return result


def _write_csv(out_path: str | Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> int:
    """Rows sorted by run and metric (or label), so a table does not depend on the order its
    inputs came in; written by the one CSV writer (:func:`biomedquant.common.files.write_csv`)."""
    rows.sort(
        key=lambda r: tuple(str(r[c]) for c in ("model", "method", "dataset", "prompt", "metric"))
    )
    return write_csv(out_path, columns, rows)


def aggregate_scores(score_paths: list[str | Path], out_path: str | Path) -> int:
    """Write the tidy table: one row per model x method x dataset x prompt x metric."""
    rows = []
    for path in score_paths:
        s = read_json(path)
        for metric, m in s["metrics"].items():
            rows.append(
                {
                    **{k: s[k] for k in ("model", "method", "dataset", "task", "prompt", "n")},
                    "metric": metric,
                    "value": m["value"],
                    "ci_low": m["ci_low"],
                    "ci_high": m["ci_high"],
                    "parse_failure_rate": s["parse_failure_rate"],
                    "value_on_parsed": m.get("value_on_parsed"),
                    "primary": metric == s["primary_metric"],
                }
            )
    return _write_csv(out_path, TABLE_COLUMNS, rows)


def aggregate_comparisons(paths: list[str | Path], out_path: str | Path) -> int:
    """Write the comparison table: one row per quantized run x metric.

    Noise-floor records (the baseline rerun at another batch shape) are not rows of their
    own: their flip rate and change fill the ``noise_floor_*`` columns of every method's row
    of the same model, dataset, prompt and metric."""
    records = [read_json(path) for path in paths]
    noise = {
        (c["model"], c["dataset"], c["prompt"], metric): (c["flip_rate"], m)
        for c in records
        if c.get("noise_floor")
        for metric, m in c["metrics"].items()
    }
    rows = []
    for c in records:
        if c.get("noise_floor"):
            continue
        flips, boot = c.get("flips") or {}, c.get("bootstrap") or {}
        for metric, m in c["metrics"].items():
            nf_flip, nf = noise.get((c["model"], c["dataset"], c["prompt"], metric), (None, {}))
            rows.append(
                {
                    **{
                        k: c[k]
                        for k in ("model", "method", "baseline", "dataset", "task", "prompt", "n")
                    },
                    "metric": metric,
                    "baseline_value": m["baseline"],
                    "value": m["value"],
                    "diff": m["diff"],
                    "diff_ci_low": m.get("ci_low"),
                    "diff_ci_high": m.get("ci_high"),
                    "p_value": m.get("p_value"),
                    "mcnemar_p": c.get("mcnemar_p"),
                    "flip_rate": c["flip_rate"],
                    "decisions": flips.get("decisions"),
                    **{k: flips.get(k) for k in FLIP_KEYS},
                    "resampling_unit": boot.get("unit", "item"),
                    "n_units": boot.get("units", c["n"]),
                    "noise_floor_flip_rate": nf_flip,
                    "noise_floor_diff": nf.get("diff"),
                    "noise_floor_diff_ci_low": nf.get("ci_low"),
                    "noise_floor_diff_ci_high": nf.get("ci_high"),
                    "primary": metric == c["primary_metric"],
                }
            )
    return _write_csv(out_path, COMPARISON_COLUMNS, rows)


def aggregate_comparisons_by_label(paths: list[str | Path], out_path: str | Path) -> int:
    """Write the per-label table: one row per quantized run x label (relation extraction and
    multi-label datasets), F1 of both systems and the paired change with its interval."""
    rows = []
    for path in paths:
        c = read_json(path)
        if c.get("noise_floor"):
            continue
        for label, m in (c.get("by_label") or {}).items():
            rows.append(
                {
                    **{k: c[k] for k in ("model", "method", "baseline", "dataset", "task")},
                    "prompt": c["prompt"],
                    "label": label,
                    "support": m["support"],
                    "baseline_f1": m["baseline"],
                    "f1": m["value"],
                    "diff": m["diff"],
                    "diff_ci_low": m["ci_low"],
                    "diff_ci_high": m["ci_high"],
                    "p_value": m["p_value"],
                    "metric": label,
                }
            )
    return _write_csv(out_path, BY_LABEL_COLUMNS, rows)
