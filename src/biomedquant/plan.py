"""Plan a study before running it, and set its measurements beside the plan afterwards.

* :func:`fit_rows`: the fit estimator over a config (every model x method): parameters, weight,
  KV-cache and total bytes, and which common GPUs each combination fits. Reads model shapes
  only (see :func:`biomedquant.memory.shape_for_model`), never weights.
* :func:`memory_rows`: the same estimates joined with what the inference runs measured (run
  records), with each method's ratio to the 16-bit baseline.

GPU sizes are marketed in GiB ("40 GB" A100 = 40 GiB = 42.9 GB) while the tables speak in GB
(10^9 bytes), so capacities are converted before comparing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from biomedquant import gguf_layout
from biomedquant.decoding import BATCH_TOKENS
from biomedquant.io import atomic_path, read_json
from biomedquant.io import write_csv as io_write_csv
from biomedquant.memory import GIB, estimate, shape_for_model, weight_bytes

GPU_SIZES_GIB = (24, 40, 48, 80)

FIT_COLUMNS = (
    "model",
    "model_id",
    "method",
    "kind",
    "bits",
    "params_b",
    "weights_gb",
    "kv_cache_gb",
    "overhead_gb",
    "total_gb",
    "tokens_in_flight",
    "smallest_gpu_gb",
    *(f"fits_{g}gb" for g in GPU_SIZES_GIB),
)
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


def method_bits(method: dict[str, Any]) -> int:
    """Bits per quantized weight (16 for the baseline)."""
    if method["kind"] == "gguf":
        return gguf_layout.method_bits(method)
    return {"none": 16, "bnb-int8": 8, "bnb-nf4": 4, "fp8": 8}.get(method["kind"]) or int(
        method["bits"]
    )


def smallest_gpu(total_gb: float) -> int | None:
    """The smallest common GPU (its marketed GiB) that holds ``total_gb``, or None."""
    return next((g for g in GPU_SIZES_GIB if total_gb * 1e9 <= g * GIB), None)


def batch_tokens(config: dict[str, Any]) -> int:
    return int(config.get("inference", {}).get("batch_tokens", BATCH_TOKENS))


def fit_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (model, method) of ``config``; models of unknown shape are skipped with a
    row that says so (``params_b`` empty), so a table never hides a model."""
    tokens = batch_tokens(config)
    rows = []
    for name, spec in config["models"].items():
        shape = shape_for_model(spec)
        for method_name, method in config["methods"].items():
            row: dict[str, Any] = {
                "model": name,
                "model_id": spec.get("id") or spec.get("package") or spec.get("path"),
                "method": method_name,
                "kind": method["kind"],
                "bits": method_bits(method),
                "tokens_in_flight": tokens,
            }
            if shape is not None:
                est = estimate(shape, method, tokens=tokens)
                gpu = smallest_gpu(est["total_gb"])
                row.update({k: _sig(v) for k, v in est.items()})
                row["_weights_bytes"] = weight_bytes(shape, method)
                row["smallest_gpu_gb"] = gpu
                for g in GPU_SIZES_GIB:
                    row[f"fits_{g}gb"] = est["total_gb"] * 1e9 <= g * GIB
            rows.append(row)
    return rows


def write_csv(path: str | Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """The package's one CSV writer (:func:`biomedquant.io.write_csv`), kept under this name
    for the callers that import it from here."""
    io_write_csv(path, columns, rows)


RUN_PATH = re.compile(r"(?P<model>[^/]+)/(?P<method>[^/]+)/(?P<dataset>[^/]+)/[^/]+\.run\.json$")


def _sig(value: float, digits: int = 4) -> float:
    """Four significant digits: readable for a 70B model and still non-zero for a tiny one."""
    return float(f"{value:.{digits}g}")


def _gb(value: float | None) -> float | None:
    return None if value is None else _sig(value / 1e9)


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


def plot_fit(rows: list[dict[str, Any]], out_paths: list[str | Path]) -> None:
    """Estimated GPU memory per model and method, against the common GPU sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("total_gb") is not None]
    if not rows:
        raise ValueError("no model of known shape to plot")
    models = list(dict.fromkeys(r["model"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    # Okabe-Ito: distinguishable with the common colour-vision deficiencies.
    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]
    height = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(models) * max(1, len(methods) / 2)))
    by = {(r["model"], r["method"]): r for r in rows}
    for j, method in enumerate(methods):
        ys = [i + j * height for i in range(len(models))]
        xs = [by[(m, method)]["total_gb"] if (m, method) in by else 0 for m in models]
        ax.barh(ys, xs, height=height, color=palette[j % len(palette)], label=method)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(models))], models)
    ax.invert_yaxis()
    # Linear axis: bar length is memory. GPU lines only where they are in range of the data.
    top = max(r["total_gb"] for r in rows)
    for g in GPU_SIZES_GIB:
        x = g * GIB / 1e9
        if x <= top * 1.15:
            ax.axvline(x, color="0.3", linestyle="--", linewidth=0.8)
            ax.text(
                x,
                0.99,
                f" {g} GB GPU",
                rotation=90,
                ha="right",
                va="top",
                fontsize=8,
                transform=ax.get_xaxis_transform(),
            )
    ax.set_xlabel("estimated GPU memory (GB): weights + KV cache + runtime overhead")
    ax.legend(title="method", fontsize=8, loc="lower right")
    ax.set_title("Which GPU does each model fit, per quantization method (estimate)")
    fig.tight_layout()
    for out in out_paths:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=150, format=Path(out).suffix.lstrip("."))
    plt.close(fig)
