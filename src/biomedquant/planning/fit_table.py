"""Plan a study before running it: the fit table (``results/tables/fit.csv``).

:func:`fit_rows` runs the fit estimator over a config (every model x method): parameters,
weight, KV-cache and total bytes, and which common GPUs each combination fits. It reads model
shapes only (see :func:`biomedquant.models.shapes.shape_for_model`), never weights; the memory
table (:mod:`biomedquant.analysis.memory_table`) later sets what the runs measured beside it.

The common GPU sizes and their GiB-to-GB conversion are :mod:`biomedquant.common.gpus`'s; the fit
figure is :mod:`biomedquant.report.figures.fit`'s, drawn from the table this module writes.
"""

from __future__ import annotations

from typing import Any

from biomedquant.common.gpus import (
    GPU_SIZES_GIB,
    capability_text,
    fit_text,
    gpus_needed,
    smallest_gpu,
)
from biomedquant.inference.decoding import Decoding
from biomedquant.methods.kinds import bits, method_kind
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.estimator import estimate, weight_bytes

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
    "min_compute_capability",
    "runs_on_cpu",
    *(f"fits_{g}gb" for g in GPU_SIZES_GIB),
    *(f"gpus_{g}gb" for g in GPU_SIZES_GIB),
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
                "min_compute_capability": capability_text(
                    method_kind(method).min_compute_capability
                ),
                "runs_on_cpu": method_kind(method).runs_on_cpu,
            }
            if shape is not None:
                est = estimate(shape, method, tokens=tokens)
                gpu = smallest_gpu(est["total_gb"])
                row.update({k: round_sig(v) for k, v in est.items()})
                row["_weights_bytes"] = weight_bytes(shape, method)
                row["smallest_gpu_gb"] = gpu
                for g in GPU_SIZES_GIB:
                    n = gpus_needed(est["total_gb"], g)
                    row[f"fits_{g}gb"] = n == 1
                    row[f"gpus_{g}gb"] = n
            rows.append(row)
    return rows


def round_sig(value: float, digits: int = 4) -> float:
    """Four significant digits: readable for a 70B model and still non-zero for a tiny one."""
    return float(f"{value:.{digits}g}")


def fit_lines(
    rows: list[dict[str, Any]], compute_capability: tuple[int, int] | None = None
) -> list[str]:
    """The fit table as text for a terminal: one line per model x method and, per GPU size,
    "yes" (one GPU), "2 x" (the fewest GPUs that hold it) or "no" (not even 8). With the
    deployment GPU's ``compute_capability``, a method that cannot run on it says so instead
    (FP8 below 8.9); without, a footnote names what such methods need."""
    from biomedquant.common.gpus import parse_capability

    gpus = " ".join(f"{g:>5}" for g in GPU_SIZES_GIB)
    header = f"{'model':<16}{'method':<14}{'params':>8}{'weights':>10}{'total':>9}"
    lines = [f"{header}  fits: {gpus} GB"]
    needs: dict[str, str] = {}
    for r in rows:
        name = f"{r['model']:<16}{r['method']:<14}"
        if r.get("total_gb") is None:
            lines.append(f"{name}(shape unknown: see biomedquant/models/configs)")
            continue
        sizes = f"{r['params_b']:>7.1f}B{r['weights_gb']:>9.1f}G{r['total_gb']:>8.1f}G"
        need = r.get("min_compute_capability") or ""
        if need and compute_capability is not None and compute_capability < parse_capability(need):
            have = capability_text(compute_capability)
            lines.append(f"{name}{sizes}        not runnable: needs compute {need}+ (GPU: {have})")
            continue
        fits = " ".join(f"{fit_text(r['total_gb'], g):>5}" for g in GPU_SIZES_GIB)
        mark = "*" if need and compute_capability is None else ""
        if mark:
            needs[r["kind"]] = need
        lines.append(f"{name}{sizes}       {fits}{mark}")
    lines.append("(each GPU filled to 90%; 'N x': the fewest GPUs of that size, tensor parallel)")
    for kind, need in needs.items():
        lines.append(
            f"* {kind}: needs compute capability {need}+ (L4, L40S, H100, H200; not an A100);"
            " --compute-capability says which rows run on your GPU"
        )
    return lines
