#!/usr/bin/env python
"""Benchmark: where a workflow run's time went, per stage, from Snakemake's own log.

Reads the log of a run (what ``snakemake --cores 1 --resources gpu=1`` prints, or a file under
``.snakemake/log/``) and prints, per stage (fetch, quantize, infer, perplexity, evaluate,
figures, the rest), how many jobs ran and the seconds from each job's start to its end as
Snakemake stamped them (1 s resolution), then the run's wall time. With ``--cores 1`` jobs run
one at a time, so the stages add up to the wall time less Snakemake's own planning and
bookkeeping. A benchmark, not a test: it asserts nothing.

    python benchmarks/stage_times.py .snakemake/log/<run>.snakemake.log [more logs]
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
END = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
STAGES = (
    ("fetch", ("fetch_model",)),
    ("quantize", ("quantize_model",)),
    ("infer", ("infer", "infer_shard", "infer_noise_floor", "infer_noise_floor_shard")),
    ("perplexity", ("perplexity",)),
    ("evaluate", ("evaluate", "evaluate_baseline")),
)


def stage_of(rule: str) -> str:
    for stage, rules in STAGES:
        if rule in rules:
            return stage
    return "figures" if rule.startswith("figure_") else "rest"


def parse(text: str) -> tuple[dict[str, list[float]], float]:
    """Per stage, each job's seconds; and the wall time from the first stamp to the last."""
    stamp: datetime | None = None
    first: datetime | None = None
    pending_rule: str | None = None
    started: dict[str, tuple[str, datetime]] = {}
    seconds: dict[str, list[float]] = defaultdict(list)
    for line in text.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(" ".join(m[1].split()), "%a %b %d %H:%M:%S %Y")
            first = first or stamp
        elif m := START.match(line):
            pending_rule = m[1]
        elif (m := JOBID.match(line)) and pending_rule and stamp:
            started[m[1]] = (pending_rule, stamp)
            pending_rule = None
        elif (m := END.match(line)) and stamp and m[1] in started:
            rule, began = started.pop(m[1])
            seconds[stage_of(rule)].append((stamp - began).total_seconds())
    wall = (stamp - first).total_seconds() if stamp and first else 0.0
    return seconds, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args()
    order = [s for s, _ in STAGES] + ["figures", "rest"]
    for log in args.logs:
        seconds, wall = parse(log.read_text(errors="replace"))
        print(f"{log}")
        print(f"  {'stage':<11}{'jobs':>6}{'seconds':>10}")
        for stage in order:
            jobs = seconds.get(stage, [])
            print(f"  {stage:<11}{len(jobs):>6}{sum(jobs):>10.0f}")
        total = sum(len(v) for v in seconds.values())
        print(f"  {'all jobs':<11}{total:>6}{sum(map(sum, seconds.values())):>10.0f}")
        print(f"  {'wall':<11}{'':>6}{wall:>10.0f}")


if __name__ == "__main__":
    main()
