#!/usr/bin/env python
"""Benchmark: the project's metrics beside the benchmark script's (``benchmark_*``) on one
perturbed prediction set per dataset, so a reader sees the size of each convention's effect.

For every dataset with its real test file in ../shared/data (ChemProt: its dev file, as the
shared copy has no test file), a seeded 30% of the gold answers are replaced by wrong ones and
a further seeded 5% of the items are unparsable. The project scores an unparsable answer as the
worst answer its format allows (:mod:`biomedquant.tasks.metrics`); the benchmark's script
receives it as an empty answer (a class of its own for single-label tasks, no labels or entities
otherwise) and reports weighted rather than micro F1; its NER evaluation counts only the
sentences whose gold holds an entity. Prints one line per dataset; asserts nothing.

    python benchmarks/bench_metric_conventions.py [--wrong 0.3] [--unparsable 0.05]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import DATASETS, get_dataset
from biomedquant.evaluation.inputs import answer_choices
from biomedquant.evaluation.scoring import worst_answer_context
from biomedquant.evaluation.stats.sufficient import TASK_KIND, item_stats, observed_metrics
from biomedquant.tasks import get_task
from biomedquant.tasks.metrics import benchmark_label_scores, benchmark_metrics

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bionlp-benchmarks"


def wrong_answer(kind: str, gold, choices, rnd: random.Random):
    """A parsable answer that is not the gold one."""
    if kind == "single":
        return rnd.choice([c for c in choices if c != gold])
    if kind == "multi":
        while True:
            answer = sorted(rnd.sample(list(choices), rnd.randint(0, 3)))
            if set(answer) != set(gold):
                return answer
    while True:
        answer = [rnd.choice("BIOOOO") for _ in gold]
        if answer != list(gold):
            return answer


def multilabel_readings(gold, pred, ok) -> str:
    """Macro- and micro-F1 of a multi-label prediction set under the two inputs the benchmark's
    script could have received: label indicator vectors, or each document's sorted label set as
    one string (a class per combination). The benchmark's published HoC and LitCovid macro-F1
    sit near their micro-F1, which vectors give and set strings do not."""
    sets = [sorted(p) if o else [] for p, o in zip(pred, ok, strict=True)]
    gold = [sorted(g) for g in gold]
    tp = sum(len(set(g) & set(p)) for g, p in zip(gold, sets, strict=True))
    n = sum(map(len, gold)) + sum(map(len, sets))
    vectors = benchmark_metrics("mlc", gold, pred, ok)["benchmark_macro_f1"]
    strings = benchmark_label_scores([";".join(g) for g in gold], [";".join(p) for p in sets])
    return (
        f"{'':21}indicator vectors: macro {vectors:.3f}, micro {2 * tp / n:.3f}"
        f"  |  label-set strings: macro {strings['macro_f1']:.3f},"
        f" micro {strings['accuracy']:.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wrong", type=float, default=0.3)
    ap.add_argument("--unparsable", type=float, default=0.05)
    args = ap.parse_args()
    print(f"{'dataset':13} {'items':>6}  project (primary first)  |  benchmark script")
    for name in DATASETS.names():
        spec = get_dataset(name)
        split = "test" if (SHARED_DATA / spec.files["test"].path).exists() else "dev"
        if not (SHARED_DATA / spec.files[split].path).exists():
            print(f"{name:13} (no real file in {SHARED_DATA})")
            continue
        src = spec.files[split]
        records = read_source(SHARED_DATA / src.path, src.reader)
        task, kind = get_task(spec.task), TASK_KIND[spec.task]
        gold = [task.gold(r) for r in records]
        rnd = random.Random(f"conventions-{name}")
        pred, ok = [], []
        for rec, g in zip(records, gold, strict=True):
            choices = answer_choices(spec, rec) if kind != "ner" else None
            pred.append(wrong_answer(kind, g, choices, rnd) if rnd.random() < args.wrong else g)
            ok.append(rnd.random() >= args.unparsable)
        shown = [p if o or kind == "ner" else None for p, o in zip(pred, ok, strict=True)]
        ours = observed_metrics(
            item_stats(kind, gold, shown, ok=ok, **worst_answer_context(spec, records))
        )
        primary = task.primary_metric
        names = [primary, *(k for k in ours if k != primary)]
        project = ", ".join(f"{k} {ours[k]:.3f}" for k in names)
        bench = benchmark_metrics(spec.task, gold, pred, ok)
        theirs = ", ".join(f"{k.removeprefix('benchmark_')} {v:.3f}" for k, v in bench.items())
        print(f"{name:13} {len(gold):>6}  {project}  |  {theirs}", flush=True)
        if kind == "multi":
            print(multilabel_readings(gold, pred, ok), flush=True)
    print(
        f"{args.wrong:.0%} of answers wrong, {args.unparsable:.0%} unparsable (seeded);"
        " split: test (ChemProt: dev)."
    )


if __name__ == "__main__":
    main()
