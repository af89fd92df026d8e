"""The memory table (``results/tables/memory.csv``): fit estimates beside what runs measured.

Every (model, method) of the study gets its estimate from the fit estimator
(:func:`biomedquant.planning.fit_table.fit_rows`) and, where inference ran, the measurements of its
run records (weights as loaded, peak GPU and host memory, size on disk), with each method's ratio
to the 16-bit baseline and the estimate's error against the measured weights: the check that
the estimator deserves the trust a plan puts in it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from biomedquant.common.files import read_json
from biomedquant.planning.fit_table import fit_rows, round_sig

# Run records are named by the study's wildcards: .../{model}/{method}/{dataset}/{prompt}.run.json
RUN_PATH = re.compile(r"(?P<model>[^/]+)/(?P<method>[^/]+)/(?P<dataset>[^/]+)/[^/]+\.run\.json$")

MEMORY_COLUMNS = (
    "model",
    "method",
    "kind",
    "bits",
    "params_b",
    "est_weights_gb",
    "est_total_gb",
    "measured",
    "device",
    "n_runs",
    "weights_gb",
    "peak_gpu_allocated_gb",
    "peak_gpu_reserved_gb",
    "peak_host_rss_gb",
    "size_on_disk_gb",
    "weights_ratio_to_baseline",
    "disk_ratio_to_baseline",
    "est_weights_error",
    "smallest_gpu_gb",
)


def _gb(value: float | None) -> float | None:
    return None if value is None else round_sig(value / 1e9)


def memory_rows(config: dict[str, Any], run_paths: list[str | Path]) -> list[dict[str, Any]]:
    """Estimates for every (model, method) with the measurements of its run records.

    Run records are found by their path (``.../{model}/{method}/{dataset}/{prompt}.run.json``);
    weights and disk size are the same in every run of a pair, peaks are the maximum.
    """
    measured: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path in run_paths:
        m = RUN_PATH.search(Path(path).as_posix())
        if not m:
            raise ValueError(f"{path}: not a run record path (.../model/method/dataset/x.run.json)")
        measured.setdefault((m["model"], m["method"]), []).append(read_json(path))

    rows = []
    for fit in fit_rows(config):
        runs = measured.get((fit["model"], fit["method"]), [])

        def peak(key: str, runs: list[dict[str, Any]] = runs) -> float | None:
            values = [r[key] for r in runs if r.get(key) is not None]
            return max(values) if values else None

        row = {
            "model": fit["model"],
            "method": fit["method"],
            "kind": fit["kind"],
            "bits": fit["bits"],
            "params_b": fit.get("params_b"),
            "est_weights_gb": fit.get("weights_gb"),
            "est_total_gb": fit.get("total_gb"),
            "smallest_gpu_gb": fit.get("smallest_gpu_gb"),
            "measured": bool(runs),
            "n_runs": len(runs),
            "device": runs[0].get("device") if runs else None,
            "weights_gb": _gb(peak("weights_bytes")),
            "peak_gpu_allocated_gb": _gb(peak("peak_gpu_allocated_bytes")),
            "peak_gpu_reserved_gb": _gb(peak("peak_gpu_reserved_bytes")),
            "peak_host_rss_gb": _gb(peak("peak_host_rss_bytes")),
            "size_on_disk_gb": _gb(peak("size_on_disk_bytes")),
            "weights_ratio_to_baseline": None,
            "disk_ratio_to_baseline": None,
            "est_weights_error": None,
        }
        measured_weights = peak("weights_bytes")
        if measured_weights and fit.get("_weights_bytes"):
            row["est_weights_error"] = round(fit["_weights_bytes"] / measured_weights - 1, 4)
        rows.append(row)

    baselines = {r["model"]: r for r in rows if r["kind"] == "none"}
    for row in rows:
        base = baselines.get(row["model"])
        for col, key in (
            ("weights_ratio_to_baseline", "weights_gb"),
            ("disk_ratio_to_baseline", "size_on_disk_gb"),
        ):
            if base and row.get(key) and base.get(key):
                row[col] = round(row[key] / base[key], 4)
    return rows
