"""The CPU deployment table: what a lab without a GPU can serve, and what it costs.

One row per (model, method) whose runs ran on a CPU: prompt-processing and generation speed
(tokens/s) on this machine, peak resident memory, file size, and beside them the accuracy
change against the 16-bit baseline (the mean over datasets and prompts of the paired
difference in each benchmark's primary metric, with the worst case) and the perplexity ratio.

Speeds come from the run records. The llama.cpp engine reports its two phases separately
(llama.cpp's own counters: prompt tokens processed per second, generated tokens per second);
the transformers engine reports generated tokens over the whole generation time, prompt
processing included, so its generation figure is a lower bound and its prompt figure empty.
Speeds add up tokens and seconds over a method's runs (a token-weighted mean). The figure is
:mod:`biomedquant.report.figures.cpu_deployment`'s, drawn from this table.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from biomedquant.analysis.memory_table import RUN_PATH
from biomedquant.common.files import read_json, write_csv

CPU_DEPLOYMENT_COLUMNS = (
    "model",
    "method",
    "kind",
    "engine",
    "cpu_threads",
    "n_runs",
    "prompt_tokens_per_second",
    "generation_tokens_per_second",
    "generation_includes_prompt",
    "peak_host_rss_gb",
    "size_on_disk_gb",
    "load_seconds",
    "mean_primary_change",
    "worst_primary_change",
    "n_comparisons",
    "perplexity_ratio",
)


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 2) if den else None


def speed_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed and memory of one (model, method) from its run records (CPU runs only)."""
    llama = [r for r in runs if r.get("prompt_seconds") is not None]
    row: dict[str, Any] = {
        "engine": runs[0].get("backend", "transformers"),
        "cpu_threads": runs[0].get("cpu_threads"),
        "n_runs": len(runs),
        "peak_host_rss_gb": max(r.get("peak_host_rss_bytes") or 0 for r in runs) / 1e9 or None,
        "size_on_disk_gb": (runs[0].get("size_on_disk_bytes") or 0) / 1e9 or None,
        "load_seconds": max(r.get("load_seconds") or 0 for r in runs) or None,
    }
    if llama:
        row["prompt_tokens_per_second"] = _ratio(
            sum(r["prompt_tokens_processed"] for r in llama),
            sum(r["prompt_seconds"] for r in llama),
        )
        row["generation_tokens_per_second"] = _ratio(
            sum(r["generation_tokens"] for r in llama),
            sum(r["generation_seconds"] for r in llama),
        )
        row["generation_includes_prompt"] = False
    else:
        timed = [r for r in runs if r.get("generate_seconds")]
        row["generation_tokens_per_second"] = _ratio(
            sum(r.get("new_tokens") or 0 for r in timed),
            sum(r["generate_seconds"] for r in timed),
        )
        row["prompt_tokens_per_second"] = None
        row["generation_includes_prompt"] = True
    for key in ("peak_host_rss_gb", "size_on_disk_gb"):
        if row[key] is not None:
            row[key] = float(f"{row[key]:.4g}")
    return row


def accuracy_change(comparisons: str | Path | None) -> dict[tuple[str, str], dict[str, Any]]:
    """Mean and worst paired change of the primary metrics per (model, method)."""
    out: dict[tuple[str, str], list[float]] = {}
    if comparisons and Path(comparisons).is_file():
        with open(comparisons, newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                if str(rec.get("primary")).lower() not in ("true", "1"):
                    continue
                if rec.get("diff") not in (None, ""):
                    out.setdefault((rec["model"], rec["method"]), []).append(float(rec["diff"]))
    return {
        key: {
            "mean_primary_change": round(sum(v) / len(v), 4),
            "worst_primary_change": round(min(v), 4),
            "n_comparisons": len(v),
        }
        for key, v in out.items()
    }


def perplexity_ratios(perplexity: str | Path | None) -> dict[tuple[str, str], float]:
    if not perplexity or not Path(perplexity).is_file():
        return {}
    with open(perplexity, newline="", encoding="utf-8") as fh:
        return {
            (r["model"], r["method"]): float(r["ratio_to_baseline"])
            for r in csv.DictReader(fh)
            if r.get("ratio_to_baseline") not in (None, "")
        }


def cpu_deployment_rows(
    run_paths: list[str | Path],
    comparisons: str | Path | None = None,
    perplexity: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Rows of the table for every (model, method) with CPU runs, in the order first seen."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path in run_paths:
        m = RUN_PATH.search(Path(path).as_posix())
        if not m:
            raise ValueError(f"{path}: not a run record path (.../model/method/dataset/x.run.json)")
        rec = read_json(path)
        if rec.get("device") == "cpu" and rec.get("n_generated"):
            groups.setdefault((m["model"], m["method"]), []).append(rec)
    change = accuracy_change(comparisons)
    ppl = perplexity_ratios(perplexity)
    rows = []
    for (model, method), runs in groups.items():
        row = {"model": model, "method": method, "kind": runs[0]["method"]["kind"]}
        row.update(speed_row(runs))
        row.update(change.get((model, method), {}))
        row["perplexity_ratio"] = ppl.get((model, method))
        rows.append(row)
    return rows


def write_cpu_deployment(rows: list[dict[str, Any]], out: str | Path) -> None:
    write_csv(out, CPU_DEPLOYMENT_COLUMNS, rows)
