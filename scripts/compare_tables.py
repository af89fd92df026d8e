#!/usr/bin/env python
"""Compare the result tables of two finished runs of the workflow, cell by cell.

A change that should not move any number (a refactoring, a faster plan, a new engine that must
agree with the old one) is checked by running the workflow before and after it and comparing
``results/tables`` of both. Tables are compared as text, row by row, so a changed digit, a
reordered row or a new column is reported; columns that measure the machine rather than the
method (a process's peak host memory, wall times) differ between any two runs and are left out.

    python scripts/compare_tables.py BEFORE/results/tables AFTER/results/tables
        [--tables scores.csv comparisons.csv memory.csv recommendation.csv]

Exit status 0 when every table is identical, 1 otherwise (with the first differences printed).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

DEFAULT_TABLES = ("scores.csv", "comparisons.csv", "memory.csv", "recommendation.csv")

# Columns that measure one run on one machine: two runs of the same code differ in them.
# (memory.csv and cpu_deployment.csv; the other tables hold none)
MACHINE_COLUMNS = {
    "peak_host_rss_gb",
    "prompt_tokens_per_second",
    "generation_tokens_per_second",
    "load_seconds",
}


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, without the machine-dependent columns."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    keep = [i for i, name in enumerate(rows[0]) if name not in MACHINE_COLUMNS]
    return [rows[0][i] for i in keep], [[r[i] for i in keep if i < len(r)] for r in rows[1:]]


def differences(before: Path, after: Path, limit: int = 10) -> list[str]:
    """Human-readable differences between two tables ([] when identical)."""
    if not before.exists() or not after.exists():
        missing = [str(p) for p in (before, after) if not p.exists()]
        return [f"missing: {', '.join(missing)}"]
    head_b, rows_b = read_table(before)
    head_a, rows_a = read_table(after)
    out = []
    if head_b != head_a:
        out.append(f"columns differ: {head_b} != {head_a}")
        return out
    if len(rows_b) != len(rows_a):
        out.append(f"row count differs: {len(rows_b)} != {len(rows_a)}")
    for n, (rb, ra) in enumerate(zip(rows_b, rows_a, strict=False), start=2):
        if rb != ra:
            cells = [
                f"{h}: {b!r} -> {a!r}" for h, b, a in zip(head_b, rb, ra, strict=True) if b != a
            ]
            out.append(f"line {n}: " + "; ".join(cells))
            if len(out) >= limit:
                break
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--tables", nargs="+", default=list(DEFAULT_TABLES))
    args = p.parse_args(argv)
    status = 0
    for name in args.tables:
        diff = differences(args.before / name, args.after / name)
        if diff:
            status = 1
            print(f"{name}: DIFFERENT")
            for line in diff:
                print(f"  {line}")
        else:
            _, rows = read_table(args.after / name)
            print(f"{name}: identical ({len(rows)} rows)")
    return status


if __name__ == "__main__":
    sys.exit(main())
