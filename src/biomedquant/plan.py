"""Plan a study before running it: the fit table (``results/tables/fit.csv``).

:func:`fit_rows` runs the fit estimator over a config (every model x method): parameters,
weight, KV-cache and total bytes, and which common GPUs each combination fits. It reads model
shapes only (see :func:`biomedquant.memory.shape_for_model`), never weights; the memory table
(:mod:`biomedquant.memory_table`) later sets what the runs measured beside it.

GPU sizes are marketed in GiB ("40 GB" A100 = 40 GiB = 42.9 GB) while the tables speak in GB
(10^9 bytes), so capacities are converted before comparing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biomedquant.io import atomic_path
from biomedquant.memory import GIB, estimate, shape_for_model, weight_bytes
from biomedquant.methods import bits

GPU_SIZES_GIB = (24, 40, 48, 80)
DEFAULT_BATCH_TOKENS = 8192

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


def smallest_gpu(total_gb: float) -> int | None:
    """The smallest common GPU (its marketed GiB) that holds ``total_gb``, or None."""
    return next((g for g in GPU_SIZES_GIB if total_gb * 1e9 <= g * GIB), None)


def batch_tokens(config: dict[str, Any]) -> int:
    return int(config.get("inference", {}).get("batch_tokens", DEFAULT_BATCH_TOKENS))


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
