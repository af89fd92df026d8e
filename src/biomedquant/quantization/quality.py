"""Per-layer quality check of a quantized artifact, against round-to-nearest on held-out text.

For every quantized linear layer, the relative output error ``||X Wq^T - X W^T|| / ||X W^T||``
on held-out text (never calibration text), beside the same error of round-to-nearest (RTN)
on the same grid. GPTQ minimises exactly this error on its calibration tokens; on held-out
tokens it should stay below RTN's. A GPTQ layer worse than RTN means its compensation was
fitted to the calibration text (too few tokens, or text unlike the inputs it will see).

``X`` is what each layer receives when the quantized model reads the held-out text (hooks
on the loaded artifact); ``W`` is read tensor by tensor from the 16-bit source's safetensors,
so the check never holds a second copy of the model, whatever its size.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from biomedquant.common.files import read_json
from biomedquant.quantization.rtn import rtn_grid

log = logging.getLogger(__name__)

# "More than a few layers": GPTQ may lose to RTN on a handful of layers by noise alone.
WORSE_FRACTION = 0.05
WORSE_MIN_LAYERS = 3
# A quantized layer counts as worse than RTN above this relative margin: the artifact stores
# its scales in 16 bits, which moves an RTN artifact's own error by up to about 1.5%.
TOLERANCE = 0.02
# Held-out tokens the check reads at least, and per sequence of its batch. It reads at least as
# many tokens as the widest checked layer has inputs (heldout_tokens): with fewer, the inputs X
# of that layer span fewer directions than its columns, and the error measured is the error on
# that subspace only (GPTQ's compensation lives in the rest).
HELDOUT_TOKENS = 1024
WINDOW = 512


def heldout_tokens(widest_in_features: int) -> int:
    """Tokens the check reads for a model whose widest quantized layer has this many inputs
    (Llama 3.1 8B: 14,336, the 70B: 28,672; the demo model: 1,536)."""
    return max(HELDOUT_TOKENS, widest_in_features)


def heldout_texts(paths: list[str | Path]) -> list[str]:
    """The evaluated test items' distinct input texts (the study's held-out text), one dataset
    after another in turn, so the tokens the check reads sample every dataset rather than the
    first in config order."""
    from biomedquant.datasets.texts import distinct_texts, interleaved

    return interleaved(list(distinct_texts(paths).values()))


def _weight_files(source_dir: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file of a (possibly sharded) 16-bit folder."""
    index = source_dir / "model.safetensors.index.json"
    if index.exists():
        return {k: source_dir / v for k, v in read_json(index)["weight_map"].items()}
    from safetensors import safe_open

    out = {}
    for f in sorted(source_dir.glob("*.safetensors")):
        with safe_open(f, framework="pt") as st:
            out.update({k: f for k in st.keys()})  # noqa: SIM118 - safe_open has no __iter__
    return out


def widest_inputs(model: Any) -> int:
    """The most input features of any packed (quantized) linear layer of ``model``."""
    return max(
        (
            int(getattr(m, "in_features", 0))
            for _, m in model.named_modules()
            if hasattr(m, "qweight")
        ),
        default=0,
    )


def layer_errors(
    model: Any,
    tokenizer: Any,
    source_dir: str | Path,
    texts: list[str],
    grid: dict[str, Any],
    max_tokens: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Relative output error of every packed linear layer of ``model`` and of RTN on ``grid``
    (``bits``, ``group_size``, ``sym``) over up to ``max_tokens`` held-out tokens (default:
    :func:`heldout_tokens` of the widest checked layer); returns the rows and the number of
    tokens read."""
    import torch
    from safetensors import safe_open

    source_dir = Path(source_dir)
    files = _weight_files(source_dir)
    layers = {
        name: mod
        for name, mod in model.named_modules()
        if hasattr(mod, "qweight") and f"{name}.weight" in files
    }
    sums = {n: {"ref": 0.0, "q": 0.0, "rtn": 0.0} for n in layers}
    if max_tokens is None:
        max_tokens = heldout_tokens(widest_inputs(model))

    def hook(name: str) -> Any:
        def record(module: Any, args: tuple[Any, ...], output: Any) -> None:
            x = args[0].reshape(-1, args[0].shape[-1]).float()
            with safe_open(files[f"{name}.weight"], framework="pt") as st:
                w = st.get_tensor(f"{name}.weight").float()
            rounded = rtn_grid(w, grid["bits"], grid["group_size"], grid["sym"])[0]
            w, rounded = w.to(x.device), rounded.to(x.device)
            ref = x @ w.t()
            out = output.reshape(-1, output.shape[-1]).float()
            bias = getattr(module, "bias", None)
            if bias is not None:
                out = out - bias.float()
            s = sums[name]
            s["ref"] += float((ref**2).sum())
            s["q"] += float(((out - ref) ** 2).sum())
            s["rtn"] += float(((x @ rounded.t() - ref) ** 2).sum())

        return record

    # The held-out texts packed into one batch of windows: one forward pass, so each layer's
    # 16-bit weights are read once and dropped.
    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            stream.append(tokenizer.eos_token_id)
        if len(stream) >= max_tokens:
            break
    window = min(WINDOW, len(stream), max_tokens)
    n_windows = min(len(stream), max_tokens) // window if window else 0
    if n_windows == 0:
        raise ValueError("no held-out text for the quality check")
    batch = torch.tensor([stream[k * window : (k + 1) * window] for k in range(n_windows)])
    handles = [mod.register_forward_hook(hook(name)) for name, mod in layers.items()]
    try:
        with torch.inference_mode():
            model(input_ids=batch.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    seen = int(batch.numel())
    rows = []
    for name, s in sums.items():
        q = math.sqrt(s["q"] / s["ref"]) if s["ref"] > 0 else float("nan")
        r = math.sqrt(s["rtn"] / s["ref"]) if s["ref"] > 0 else float("nan")
        mod = layers[name]
        rows.append(
            {
                "layer": name,
                "in_features": int(getattr(mod, "in_features", 0)),
                "rel_error": round(q, 6),
                "rel_error_rtn": round(r, 6),
                "ratio_to_rtn": round(q / r, 4) if r > 0 else None,
                "worse_than_rtn": bool(q > r * (1 + TOLERANCE)),
            }
        )
    return rows, seen


def summarize(rows: list[dict[str, Any]], n_tokens: int, kind: str) -> dict[str, Any]:
    """The provenance summary and the verdict: ``warn`` when a GPTQ artifact is worse than
    RTN on more than a few layers (max of 3 and 5% of them)."""
    n = len(rows)
    worse = [r["layer"] for r in rows if r["worse_than_rtn"]]
    limit = max(WORSE_MIN_LAYERS, math.ceil(WORSE_FRACTION * n))

    def mean(key: str) -> float | None:
        return sum(r[key] for r in rows) / n if n else None

    verdict = "warn" if kind == "gptq" and len(worse) > limit else "ok"
    return {
        "n_layers": n,
        "n_heldout_tokens": n_tokens,
        "mean_rel_error": mean("rel_error"),
        "mean_rel_error_rtn": mean("rel_error_rtn"),
        "n_worse_than_rtn": len(worse),
        "worse_than_rtn_limit": limit,
        "worst_layers": [
            r["layer"] for r in sorted(rows, key=lambda r: -(r["ratio_to_rtn"] or 0))[:5]
        ],
        "verdict": verdict,
    }


def quality_check(
    model: Any,
    tokenizer: Any,
    source_dir: str | Path,
    texts: list[str],
    grid: dict[str, Any],
    kind: str,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """Run the check; log a warning when the verdict is ``warn``. Returns summary and rows."""
    wanted = max_tokens if max_tokens is not None else heldout_tokens(widest_inputs(model))
    rows, seen = layer_errors(model, tokenizer, source_dir, texts, grid, wanted)
    summary = summarize(rows, seen, kind)
    summary["n_heldout_tokens_wanted"] = wanted
    if seen < wanted:
        log.warning(
            "the quality check read %d held-out tokens, fewer than the %d it wants (the widest"
            " layer's inputs): its errors cover only part of each layer's input space",
            seen,
            wanted,
        )
    if summary["verdict"] == "warn":
        log.warning(
            "GPTQ is worse than round-to-nearest on %d of %d layers on held-out text (limit"
            " %d; worst: %s): its calibration is too small or unlike the model's inputs",
            summary["n_worse_than_rtn"],
            summary["n_layers"],
            summary["worse_than_rtn_limit"],
            ", ".join(summary["worst_layers"]),
        )
    return {"summary": summary, "layers": rows}


QUALITY_COLUMNS = (
    "model",
    "method",
    "kind",
    "bits",
    "group_size",
    "calibration_source",
    "calibration_tokens",
    "n_layers",
    "n_heldout_tokens",
    "mean_rel_error",
    "mean_rel_error_rtn",
    "n_worse_than_rtn",
    "verdict",
    "worst_layers",
)


def quality_rows(artifacts: list[str | Path]) -> list[dict[str, Any]]:
    """Rows of ``quantization_quality.csv`` from artifact folders ``.../{model}/{method}``
    (their ``provenance.json``)."""
    rows = []
    for path in artifacts:
        p = Path(path) / "provenance.json"
        prov = read_json(p)
        summary = (prov.get("quality") or {}).get("summary") or {}
        method = prov["method"]
        calib = prov.get("calibration") or {}
        rows.append(
            {
                "model": p.parent.parent.name,
                "method": p.parent.name,
                "kind": method["kind"],
                "bits": method.get("bits"),
                "group_size": method.get("group_size"),
                "calibration_source": calib.get("source"),
                "calibration_tokens": calib.get("n_tokens"),
                **{k: summary.get(k) for k in QUALITY_COLUMNS[7:13]},
                "worst_layers": json.dumps(summary.get("worst_layers", [])),
            }
        )
    return rows
