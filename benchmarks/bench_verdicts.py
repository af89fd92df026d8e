#!/usr/bin/env python
"""Benchmark: how often the verdict rule recommends a method, by simulation at the real test
sets' sizes and clusters.

For every dataset of the study, paired outcomes are drawn at the official test size, grouped in
the clusters the data come in (NER sentences in their abstracts: BC5CDR 4,797 in 500, NCBI 940 in
100; ChemProt pairs in 800 abstracts; DDI pairs in 192 documents; every other item on its own).
Each item's change is -1 (the method gets it wrong where the baseline was right), +1 (the
reverse) or 0; the flip rate (default 5%) varies from cluster to cluster (gamma, shape 2: a model
that misreads an abstract misreads its sentences together), and a true loss L shifts flips
towards -1 so that the mean change is -L. The change of a dataset's accuracy is resampled by
clusters (as the scoring resamples its units), the records go through the workflow's own rule
(:func:`biomedquant.evaluation.stats.verdicts.task_tests` and
:func:`biomedquant.analysis.recommendation.recommend`) at the default margins, and for 4 tasks x 5
prompting methods (independent draws each) it prints the probability of each verdict and of the
method being recommended, for a method with no true loss, one losing the margin on every task, and
one losing twice the margin on one task (each task in turn). A benchmark, not a test: it asserts
nothing.

    python benchmarks/bench_verdicts.py [--sims 100] [--resamples 2000] [--flip-rate 0.05]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import pandas as pd

from biomedquant.analysis.recommendation import recommend
from biomedquant.datasets.registry import DATASETS
from biomedquant.evaluation.stats.verdicts import DEFAULT_MARGINS, VERDICTS

PROMPTS = ("zero-shot", "one-shot", "five-shot", "cot", "sc-cot")
# Clusters of the full test sets (documents the items come from); None: every item alone.
CLUSTERS = {"bc5cdr_chem": 500, "ncbi_disease": 100, "chemprot": 800, "ddi": 192}


def dataset_record(
    name: str, loss: float, flip: float, resamples: int, rng: np.random.Generator, prompt: str
) -> dict:
    """One comparison record of ``name`` as `biomedquant compare` writes it (accuracy-like
    primary metric), from simulated paired outcomes with a true loss of ``loss`` (a share)."""
    n = DATASETS[name].test_size
    n_clusters = CLUSTERS.get(name, n)
    cluster = np.sort(rng.integers(0, n_clusters, n))
    rate = np.minimum(rng.gamma(2.0, flip / 2.0, n_clusters)[cluster], 1.0)
    rate = np.maximum(rate, loss)  # a loss needs flips to carry it
    u = rng.random(n)
    down = u < (rate + loss) / 2
    up = (~down) & (u < rate)
    d = up.astype(float) - down.astype(float)
    sums = np.bincount(cluster, weights=d, minlength=n_clusters)
    sizes = np.bincount(cluster, minlength=n_clusters).astype(float)
    changed = np.bincount(cluster, weights=(d != 0), minlength=n_clusters)
    idx = rng.integers(0, n_clusters, size=(resamples, n_clusters))
    draws = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    return {
        "model": "m",
        "method": "q",
        "baseline": "none",
        "dataset": name,
        "task": DATASETS[name].task,
        "prompt": prompt,
        "n": n,
        "primary_metric": "accuracy",
        "metrics": {"accuracy": {"baseline": 0.6, "value": 0.6 + d.mean(), "diff": d.mean()}},
        "primary_diff_draws": draws,
        "changed_units": int((changed > 0).sum()),
        "bootstrap": {"units": n_clusters},
    }


def simulate(losses: dict[str, float], args: argparse.Namespace, rng: np.random.Generator):
    """Verdict counts and the share of simulations in which the method is recommended."""
    verdicts: Counter[str] = Counter()
    detectable: dict[str, list[float]] = {}
    recommended = 0
    memory = pd.DataFrame(
        [
            {"model": "m", "method": "none", "est_total_gb": 16.0, "peak_gpu_allocated_gb": None},
            {"model": "m", "method": "q", "est_total_gb": 5.0, "peak_gpu_allocated_gb": None},
        ]
    )
    for _ in range(args.sims):
        records = [
            dataset_record(
                name, losses.get(spec.task, 0.0) / 100, args.flip_rate, args.resamples, rng, p
            )
            for name, spec in DATASETS.items()
            for p in PROMPTS
        ]
        rec, evidence = recommend(records, memory)
        verdicts.update(evidence["verdict"])
        for task, points in zip(evidence["task"], evidence["detectable_loss_points"], strict=True):
            detectable.setdefault(task, []).append(points)
        recommended += rec["recommended"].iloc[0] == "q"
    total = sum(verdicts.values())
    medians = {t: float(np.median(v)) for t, v in detectable.items()}
    return {v: verdicts[v] / total for v in VERDICTS}, recommended / args.sims, medians


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sims", type=int, default=100)
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--flip-rate", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    margins = ", ".join(f"{t} {m:g}" for t, m in DEFAULT_MARGINS.items())
    print(
        f"{args.sims} simulations x 4 tasks x {len(PROMPTS)} prompting methods, full test sets,"
        f" flip rate {args.flip_rate:g}, {args.resamples} resamples; margins (points): {margins}"
    )
    scenarios = [("no true loss", {})]
    scenarios.append(("loss = margin, every task", dict(DEFAULT_MARGINS)))
    for task, m in DEFAULT_MARGINS.items():
        scenarios.append((f"loss = 2 x margin on {task}", {task: 2 * m}))
    header = f"{'scenario':<30}" + "".join(f"{v:>22}" for v in VERDICTS) + f"{'recommended':>13}"
    print(header)
    for i, (label, losses) in enumerate(scenarios):
        start = time.perf_counter()
        shares, rec, detectable = simulate(losses, args, rng)
        cells = "".join(f"{shares[v]:>22.3f}" for v in VERDICTS)
        print(f"{label:<30}{cells}{rec:>13.3f}  ({time.perf_counter() - start:.0f} s)")
        if i == 0:
            # what the test sets resolve: the loss each task's test detects with 80% power
            resolved = ", ".join(f"{t} {v:.2f}" for t, v in sorted(detectable.items()))
            print(f"{'':<30}detectable loss (points, median): {resolved}")


if __name__ == "__main__":
    main()
