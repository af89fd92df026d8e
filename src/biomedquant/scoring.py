"""Score predictions against gold with the benchmark's metrics; gather scores into a table."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from biomedquant.datasets.registry import get_dataset
from biomedquant.io import atomic_path, read_json, read_jsonl, sha256_file, write_json
from biomedquant.metrics import bootstrap_intervals
from biomedquant.provenance import now, versions
from biomedquant.tasks import get_task

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
    "primary",
)


def score_predictions(
    *,
    predictions_path: str | Path,
    gold_path: str | Path,
    dataset: str,
    model: str,
    method: str,
    prompt: str,
    out_path: str | Path,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics with bootstrap intervals for one prediction file; written as JSON."""
    spec = get_dataset(dataset)
    task = get_task(spec.task)
    gold_records = {r["id"]: r for r in read_jsonl(gold_path)}
    preds = read_jsonl(predictions_path)
    missing = set(gold_records) - {p["id"] for p in preds}
    if missing:
        raise ValueError(
            f"{predictions_path}: {len(missing)} gold item(s) have no prediction, "
            f"e.g. {sorted(missing)[:3]}"
        )
    by_id = {p["id"]: p for p in preds}
    ids = list(gold_records)
    gold = [task.gold(gold_records[i]) for i in ids]
    pred = [by_id[i]["prediction"] for i in ids]
    values = task.metrics(gold, pred)
    cis = bootstrap_intervals(task.metrics, gold, pred, resamples=resamples, level=level, seed=seed)
    result = {
        "model": model,
        "method": method,
        "dataset": dataset,
        "task": spec.task,
        "prompt": prompt,
        "n": len(ids),
        "parse_failure_rate": sum(not by_id[i]["parse_ok"] for i in ids) / len(ids),
        "primary_metric": task.primary_metric,
        "metrics": {
            k: {
                "value": v,
                "ci_low": cis.get(k, (None, None))[0],
                "ci_high": cis.get(k, (None, None))[1],
            }
            for k, v in values.items()
        },
        "bootstrap": {"resamples": resamples, "level": level, "seed": seed},
        "inputs": {
            "predictions_sha256": sha256_file(predictions_path),
            "gold_sha256": sha256_file(gold_path),
        },
        "versions": versions(("biomedquant", "numpy")),
        "written_at": now(),
    }
    write_json(out_path, result)
    return result


def aggregate_scores(score_paths: list[str | Path], out_path: str | Path) -> int:
    """Write the tidy table: one row per model x method x dataset x prompt x metric."""
    rows = []
    for path in score_paths:
        s = read_json(path)
        for metric, m in s["metrics"].items():
            rows.append(
                {
                    "model": s["model"],
                    "method": s["method"],
                    "dataset": s["dataset"],
                    "task": s["task"],
                    "prompt": s["prompt"],
                    "metric": metric,
                    "value": m["value"],
                    "ci_low": m["ci_low"],
                    "ci_high": m["ci_high"],
                    "n": s["n"],
                    "parse_failure_rate": s["parse_failure_rate"],
                    "primary": metric == s["primary_metric"],
                }
            )
    rows.sort(
        key=lambda r: tuple(str(r[c]) for c in ("model", "method", "dataset", "prompt", "metric"))
    )
    with atomic_path(out_path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
