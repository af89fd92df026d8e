#!/usr/bin/env python
"""Audit: how the answer reader misreads the parser corpus, silent misreads apart.

Every case of ``tests/parser_corpus/`` (realistic model outputs, each with what a careful
annotator reads from it and the reading rule that should fire) is read with
:func:`biomedquant.evaluation.parsing.parse_output` and counted as

- ``right``: the annotator's reading (or unparsable where the annotator reads none);
- ``silent``: a wrong reading with status ``ok``, the misread no parse-failure rate reveals
  (it biases a score and can flip between methods without a trace);
- ``unparsable``: an answer the annotator reads, reported unparsable (counted, so visible);
- ``rule``: the right reading (or the right refusal to read) by another rule than the corpus
  names: a reading that holds by accident.

Printed per dataset and per rule that fired (``-``: none), with the parse-failure rate (the
share of cases read unparsable, rightly or not), so a change that trades silent misreads for
unparsable ones, or the reverse, shows. The corpus is the only store of raw model outputs the
repository keeps, so ``--corpus`` also serves to compare two versions of the reader on it.
Prints; asserts nothing (the corpus test asserts that there is no silent misread).

    python benchmarks/audit_answer_reading.py [--corpus tests/parser_corpus] [--cases]
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from biomedquant.evaluation.parsing import parse_output
from biomedquant.tasks import OK
from biomedquant.tasks.metrics import iob2_spans

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "parser_corpus"
UNPARSABLE = "unparsable"
OUTCOMES = ("right", "silent", "unparsable", "rule")


@dataclass(frozen=True)
class Case:
    """One corpus case: where it is, what it answers and what an annotator reads from it."""

    name: str  # <file stem>-<number>
    dataset: str
    item: dict[str, Any]
    style: str
    output: str
    expect: Any  # the reading, or "unparsable"
    rule: str | None  # the rule that fires (None: none does)


def load_cases(corpus: Path = CORPUS) -> list[Case]:
    """Every case of every ``*.yaml`` file of ``corpus``, in file order."""
    cases = []
    for path in sorted(corpus.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text("utf-8"))
        for n, case in enumerate(spec["cases"], 1):
            name = f"{path.stem}-{n}"
            if "rule" not in case:
                raise ValueError(f"{path}: case {n} names no rule (write rule: null for none)")
            cases.append(
                Case(
                    name=name,
                    dataset=spec["dataset"],
                    item={"id": name, **spec["items"][case["item"]]},
                    style=case["style"],
                    output=case["output"],
                    expect=case["expect"],
                    rule=case["rule"],
                )
            )
    return cases


def readable(prediction: Any, item: dict[str, Any]) -> Any:
    """A prediction as the corpus writes it: NER tags as the sorted entity strings they cover,
    a label list sorted, anything else as is."""
    if "tokens" in item:
        prediction = [" ".join(item["tokens"][s:e]) for s, e in iob2_spans(prediction)]
    return sorted(prediction) if isinstance(prediction, list) else prediction


@dataclass(frozen=True)
class Judged:
    """A case read: what came out, and how it compares with the annotator's reading."""

    case: Case
    reading: Any
    status: str
    rule: str | None
    outcome: str  # one of OUTCOMES


def judge(case: Case) -> Judged:
    """Read one case and compare it with the annotator's reading (see the module docstring)."""
    prediction, status, rule = parse_output(case.dataset, case.output, case.item, "zero-shot")
    reading = readable(prediction, case.item)
    if case.expect == UNPARSABLE:
        outcome = "silent" if status == OK else "right"
    elif status != OK:
        outcome = "unparsable"
    else:
        outcome = "right" if reading == readable(case.expect, {}) else "silent"
    if outcome == "right" and rule != case.rule:
        outcome = "rule"
    return Judged(case, reading, status, rule, outcome)


def _table(title: str, rows: dict[str, list[Judged]]) -> list[str]:
    """One line per key: case count, count per outcome, and the parse-failure rate (the share
    of cases read unparsable, rightly or not: what a run's ``parse_failure_rate`` reports)."""
    lines = [f"{title:<14}{'cases':>7}" + "".join(f"{o:>12}" for o in OUTCOMES) + "  failure rate"]
    for key, group in rows.items():
        counts = Counter(j.outcome for j in group)
        cells = "".join(f"{counts[o]:>12}" for o in OUTCOMES)
        failures = sum(j.status != OK for j in group) / len(group)
        lines.append(f"{key:<14}{len(group):>7}{cells}{failures:>14.3f}")
    return lines


def report(judged: list[Judged]) -> list[str]:
    """The audit's lines: a table per dataset and one per rule that fired."""
    by_dataset: dict[str, list[Judged]] = {}
    by_rule: dict[str, list[Judged]] = {}
    for j in judged:
        by_dataset.setdefault(j.case.dataset, []).append(j)
        by_rule.setdefault(j.rule or "-", []).append(j)
    by_dataset["all"] = judged
    rules = dict(sorted(by_rule.items()))
    return [*_table("dataset", by_dataset), "", *_table("rule fired", rules)]


# Outputs a quantized model loops in until its token cap: the reader must stay fast on them.
DEGENERATE_OUTPUTS = ("so yes, " * 3000, "The chemical inhibits the gene. " * 400, "[" * 5000)


def degenerate_timings() -> list[str]:
    """Per dataset, the slowest read of :data:`DEGENERATE_OUTPUTS` (seconds)."""
    import time

    from biomedquant.datasets.registry import DATASETS
    from biomedquant.evaluation.parsing import parse_output

    rec = {
        "id": "x",
        "question": "q",
        "options": {"A": "a", "B": "b", "C": "c", "D": "d"},
        "context": "",
        "tokens": ["Aspirin", "helps", "."],
        "text": "",
        "label": "",
        "labels": [],
    }
    lines = []
    for dataset in DATASETS.names():
        slowest = 0.0
        for output in DEGENERATE_OUTPUTS:
            start = time.perf_counter()
            parse_output(dataset, output, rec)
            slowest = max(slowest, time.perf_counter() - start)
        lines.append(f"{dataset:<14}{slowest:.3f} s")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--cases", action="store_true", help="also list every case not right")
    args = parser.parse_args(argv)
    judged = [judge(case) for case in load_cases(args.corpus)]
    print("\n".join(report(judged)))
    silent = sum(j.outcome == "silent" for j in judged)
    print(f"\nsilent misreads: {silent} of {len(judged)} cases")
    print("\nslowest read of an output looped to the token cap, per dataset:")
    print("\n".join(degenerate_timings()))
    if args.cases:
        for j in judged:
            if j.outcome != "right":
                print(
                    f"{j.outcome:<11}{j.case.name:<16}read {j.reading!r} ({j.status}, rule "
                    f"{j.rule}); expected {j.case.expect!r} (rule {j.case.rule}): "
                    f"{j.case.output!r}"
                )


if __name__ == "__main__":
    main()
