"""Plan a study before running it: the fit table (``results/tables/fit.csv``).

:func:`fit_rows` runs the fit estimator over a config (every model x method): parameters,
weight, KV-cache and total bytes, and which common GPUs each combination fits. It reads model
shapes only (see :func:`biomedquant.memory.shape_for_model`), never weights; the memory table
(:mod:`biomedquant.memory_table`) later sets what the runs measured beside it.

The common GPU sizes and their GiB-to-GB conversion are :mod:`biomedquant.gpus`'s; the fit
figure is :mod:`biomedquant.figures.fit`'s, drawn from the table this module writes.
"""

from __future__ import annotations

from typing import Any

from biomedquant.decoding import Decoding
from biomedquant.gpus import GPU_SIZES_GIB, smallest_gpu
from biomedquant.memory import GIB, estimate, shape_for_model, weight_bytes
from biomedquant.methods import bits

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


def fit_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (model, method) of ``config``; models of unknown shape are skipped with a
    row that says so (``params_b`` empty), so a table never hides a model."""
    tokens = Decoding.from_config(config).batch_tokens
    rows = []
    for name, spec in config["models"].items():
        shape = shape_for_model(spec)
        for method_name, method in config["methods"].items():
            row: dict[str, Any] = {
                "model": name,
                "model_id": spec.get("id") or spec.get("package") or spec.get("path"),
                "method": method_name,
                "kind": method["kind"],
                "bits": bits(method),
                "tokens_in_flight": tokens,
            }
            if shape is not None:
                est = estimate(shape, method, tokens=tokens)
                gpu = smallest_gpu(est["total_gb"])
                row.update({k: round_sig(v) for k, v in est.items()})
                row["_weights_bytes"] = weight_bytes(shape, method)
                row["smallest_gpu_gb"] = gpu
                for g in GPU_SIZES_GIB:
                    row[f"fits_{g}gb"] = est["total_gb"] * 1e9 <= g * GIB
            rows.append(row)
    return rows


def round_sig(value: float, digits: int = 4) -> float:
    """Four significant digits: readable for a 70B model and still non-zero for a tiny one."""
    return float(f"{value:.{digits}g}")


def fit_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The fit table as text for a terminal: one line per model x method, yes/no per GPU."""
    gpus = " ".join(f"{g:>4}" for g in GPU_SIZES_GIB)
    header = f"{'model':<16}{'method':<14}{'params':>8}{'weights':>10}{'total':>9}"
    lines = [f"{header}  fits: {gpus} GB"]
    for r in rows:
        if r.get("total_gb") is None:
            lines.append(
                f"{r['model']:<16}{r['method']:<14}(shape unknown: see biomedquant/model_configs)"
            )
            continue
        fits = " ".join(f"{'yes' if r[f'fits_{g}gb'] else 'no':>4}" for g in GPU_SIZES_GIB)
        lines.append(
            f"{r['model']:<16}{r['method']:<14}{r['params_b']:>7.1f}B{r['weights_gb']:>9.1f}G"
            f"{r['total_gb']:>8.1f}G        {fits}"
        )
    return lines
