#!/usr/bin/env python
"""Benchmark: scoring and paired comparison, per-item loops against sufficient statistics.

For every dataset at its real test size (the real test file from ../shared/data when present;
otherwise synthetic items of the official size, with ChemProt's ~21 pairs per abstract), two
prediction files are made by corrupting a seeded 30% of the gold answers. Then:

* ``old``: the bootstrap as first written (kept here, and only here, to compare against): one
  Python loop per resample that re-runs the metric function on the resampled items. Timed at
  ``--old-resamples`` (it is linear in the resample count) and scaled to ``--resamples``.
* ``new``: ``biomedquant score`` + ``biomedquant compare`` as the workflow runs them
  (:func:`biomedquant.evaluation.scoring.score_predictions` and
  :func:`~biomedquant.evaluation.scoring.compare_to_baseline`: read the files, per-item statistics,
  resample-count matrix times statistics, cluster resampling, flips, per-label changes, JSON
  written), timed end to end at ``--resamples`` and at 10,000.

Prints seconds per dataset: wall time, and the CPU time of this process (on a shared machine
the wall time also counts the waits for a core; the CPU time is what the work costs). A
benchmark, not a test: it asserts nothing and its numbers depend on the machine.

    python benchmarks/bench_scoring.py [--datasets bc5cdr_chem ddi ...] [--resamples 1000]
        [--old-resamples 50] [--items N] [--synthetic]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biomedquant.common.files import write_jsonl
from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import DATASETS, get_dataset
from biomedquant.evaluation.scoring import compare_to_baseline, score_predictions
from biomedquant.tasks import get_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "bionlp-benchmarks"


# ------------------------------------------------------- the per-resample loops, as they were


def old_bootstrap_intervals(
    metric_fn: Callable[[list[Any], list[Any]], dict[str, float]],
    gold: Sequence[Any],
    pred: Sequence[Any],
    *,
    resamples: int,
    level: float,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric, resampling items with replacement."""
    rng = np.random.default_rng(seed)
    n = len(gold)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        values = metric_fn([gold[i] for i in idx], [pred[i] for i in idx])
        for k, v in values.items():
            draws.setdefault(k, []).append(v)
    alpha = (1 - level) / 2
    return {
        k: (float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha)))
        for k, v in draws.items()
    }


def old_paired_bootstrap(
    metric_fn: Callable[[list[Any], list[Any]], dict[str, float]],
    gold: Sequence[Any],
    baseline: Sequence[Any],
    other: Sequence[Any],
    *,
    resamples: int,
    level: float,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Difference ``other - baseline`` of every metric with a paired bootstrap."""
    observed_b = metric_fn(list(gold), list(baseline))
    observed_o = metric_fn(list(gold), list(other))
    out = {k: {"diff": observed_o[k] - observed_b[k]} for k in observed_o}
    rng = np.random.default_rng(seed)
    n = len(gold)
    diffs: dict[str, list[float]] = {k: [] for k in out}
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        g = [gold[i] for i in idx]
        mb = metric_fn(g, [baseline[i] for i in idx])
        mo = metric_fn(g, [other[i] for i in idx])
        for k in out:
            diffs[k].append(mo[k] - mb[k])
    alpha = (1 - level) / 2
    for k, d in diffs.items():
        arr = np.asarray(d)
        out[k]["ci_low"] = float(np.quantile(arr, alpha))
        out[k]["ci_high"] = float(np.quantile(arr, 1 - alpha))
    return out


# --------------------------------------------------------------------------- the test sets


# Synthetic relation ids in each dataset's own id form, so that its cluster pattern (the
# registry's) finds the resampling unit: ChemProt ~21 pairs per abstract, DDI ~7 per sentence.
RE_IDS: dict[str, Callable[[int], str]] = {
    "chemprot": lambda i: f"{1000 + i // 21}.T{i}.T{i + 1}",
    "ddi": lambda i: f"DDI-DrugBank.d{i // 30}.s{i // 7}.p{i % 7}",
}


def _synthetic(name: str, n: int, rnd: random.Random) -> list[dict[str, Any]]:
    """Items of the dataset's task and label set; RE ids carry the dataset's clusters."""
    spec = get_dataset(name)
    out: list[dict[str, Any]] = []
    for i in range(n):
        if spec.task == "ner":
            tags = [rnd.choice("BIOOOOO") for _ in range(25)]
            out.append({"id": f"s{i}", "tokens": ["w"] * 25, "tags": tags})
        elif spec.task == "re":
            out.append({"id": RE_IDS[name](i), "text": "t", "label": rnd.choice(spec.labels)})
        elif spec.task == "mlc":
            labels = rnd.sample(spec.labels, rnd.randint(1, 2))
            out.append({"id": str(i), "text": "t", "labels": labels})
        else:
            options = {lab: f"option {lab}" for lab in spec.labels}
            out.append(
                {
                    "id": str(i),
                    "question": "q",
                    "options": options,
                    "answer": rnd.choice(spec.labels),
                }
            )
    return out


def test_set(
    name: str, rnd: random.Random, items: int | None = None, synthetic: bool = False
) -> tuple[list[dict[str, Any]], str]:
    """The real test file where present (and not ``synthetic``), else synthetic items of the
    official size; ``items`` keeps the first that many."""
    spec = get_dataset(name)
    src = spec.files["test"]
    path = SHARED / src.path
    if path.exists() and not synthetic:
        return read_source(path, src.reader)[:items], "real"
    return _synthetic(name, items or spec.test_size, rnd), "synthetic"


def corrupt(spec: Any, gold: list[Any], rnd: random.Random) -> list[Any]:
    out = []
    for g in gold:
        if rnd.random() >= 0.3:
            out.append(g)
        elif spec.task == "ner":
            out.append([rnd.choice("BIOO") for _ in g])
        elif spec.task == "mlc":
            out.append(rnd.sample(spec.labels, rnd.randint(0, 2)))
        else:
            out.append(rnd.choice(spec.labels))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--old-resamples", type=int, default=50)
    ap.add_argument("--items", type=int, help="keep the first N items of each test set")
    ap.add_argument("--synthetic", action="store_true", help="synthetic items even where real")
    args = ap.parse_args()
    print(
        f"{'dataset':13} {'source':9} {'items':>6} {'units':>6} "
        f"{'old s':>7} {'new s':>6} {'@10k':>6} | {'old cpu s':>9} {'new cpu s':>9} {'@10k':>6}"
        f" {'speed-up':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            rnd = random.Random(0)
            spec = get_dataset(name)
            task = get_task(spec.task)
            records, source = test_set(name, rnd, args.items, args.synthetic)
            gold = [task.gold(r) for r in records]
            base, other = corrupt(spec, gold, rnd), corrupt(spec, gold, rnd)
            d = Path(tmp) / name
            write_jsonl(d / "gold.jsonl", records)
            for sys_name, pred in (("base", base), ("other", other)):
                rows = [
                    {"id": r["id"], "prediction": p} for r, p in zip(records, pred, strict=True)
                ]
                write_jsonl(d / f"{sys_name}.jsonl", rows)

            t, t_cpu = time.perf_counter(), time.process_time()
            kw = {"resamples": args.old_resamples, "level": 0.95, "seed": 0}
            old_bootstrap_intervals(task.metrics, gold, other, **kw)
            old_paired_bootstrap(task.metrics, gold, base, other, **kw)
            scale = args.resamples / args.old_resamples
            old = (time.perf_counter() - t) * scale
            old_cpu = (time.process_time() - t_cpu) * scale

            def new(resamples: int, d: Path = d, name: str = name) -> tuple[float, float, dict]:
                t, cpu = time.perf_counter(), time.process_time()
                score_predictions(
                    predictions_path=d / "other.jsonl",
                    gold_path=d / "gold.jsonl",
                    dataset=name,
                    out_path=d / "score.json",
                    resamples=resamples,
                )
                res = compare_to_baseline(
                    baseline_path=d / "base.jsonl",
                    predictions_path=d / "other.jsonl",
                    gold_path=d / "gold.jsonl",
                    dataset=name,
                    out_path=d / "compare.json",
                    model="m",
                    method="q",
                    baseline="b",
                    prompt="p",
                    resamples=resamples,
                )
                return time.perf_counter() - t, time.process_time() - cpu, res

            secs, cpu, res = new(args.resamples)
            secs_10k, cpu_10k, _ = new(10_000)
            units = res["bootstrap"]["units"]
            print(
                f"{name:13} {source:9} {len(gold):>6} {units:>6} {old:>7.1f} {secs:>6.2f} "
                f"{secs_10k:>6.2f} | {old_cpu:>9.1f} {cpu:>9.2f} {cpu_10k:>6.2f} "
                f"{old_cpu / cpu:>7.0f}x",
                flush=True,
            )
    print(
        f"seconds of score + compare together; old: per-resample loops timed at "
        f"{args.old_resamples} resamples, scaled to {args.resamples}; new: end to end (files "
        f"read, JSON written) at {args.resamples} and 10,000 resamples; wall | CPU time."
    )


if __name__ == "__main__":
    main()
