"""Seeded wrong answers and the evaluated split of the shared benchmark files, for the tests
of the scoring conventions."""

from __future__ import annotations

from biomedquant.datasets.registry import get_dataset

from conftest import SHARED_DATA, load_benchmark

# a parsable answer that is not the gold one, of the kinds a model gives
wrong_answer = load_benchmark("bench_metric_conventions").wrong_answer


def evaluated_split(dataset: str) -> str:
    """The test split, or the dev split where the shared copy lacks the test file (ChemProt)."""
    spec = get_dataset(dataset)
    return "test" if (SHARED_DATA / spec.files["test"].path).exists() else "dev"
