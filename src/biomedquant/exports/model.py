"""A model's exports, in one folder: per method its lm-eval results and, for a quantized
artifact, its model card.

``results/exports/{model}/{method}/lm_eval/`` (:mod:`biomedquant.exports.lm_eval`) and
``results/exports/{model}/{method}/README.md`` (:mod:`biomedquant.exports.model_card`) are written
by one job per model rather than one per model x method and file: each takes milliseconds, while
every job costs the planner of a full study and a process start.
A model's cards read the study-wide scores table anyway, so any score change rewrites them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biomedquant.common.files import atomic_dir


@dataclass(frozen=True)
class MethodExport:
    """What one method of the model exports from: its config entry, its evaluate manifest
    and its quantized artifact folder (``None``: no artifact, so no card: 16-bit, methods
    quantized at load time, GGUF files)."""

    name: str
    spec: dict[str, Any]
    manifest: str
    artifact: str | None = None

    @classmethod
    def from_json(cls, entry: Any) -> MethodExport:
        keys = set(entry) if isinstance(entry, dict) else set()
        if (
            not isinstance(entry, dict)
            or keys - {"name", "spec", "manifest", "artifact"}
            or not ({"name", "spec", "manifest"} <= keys)
        ):
            raise ValueError(
                f"an exported method needs name, spec and manifest (artifact optional): got"
                f" {sorted(keys) if isinstance(entry, dict) else repr(entry)}"
            )
        return cls(entry["name"], entry["spec"], entry["manifest"], entry.get("artifact"))


def export_model(
    model: str,
    model_spec: dict[str, Any],
    methods: Sequence[MethodExport],
    out_dir: str | Path,
    *,
    scores_path: str | Path | None = None,
    evidence_path: str | Path | None = None,
) -> list[Path]:
    """Write ``out_dir/<method>/lm_eval/`` for every method and ``out_dir/<method>/README.md``
    for every method with an artifact; returns the files written. The folder appears whole
    or not at all: a failure leaves the previous exports as they were."""
    from biomedquant.exports.lm_eval import export_lm_eval
    from biomedquant.exports.model_card import read_rows, write_model_card

    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"export of {model}: a method is listed twice ({', '.join(names)})")
    out = Path(out_dir)
    # the study's tables, read once for all of the model's cards
    with_cards = any(m.artifact is not None for m in methods)
    scores = read_rows(scores_path) if with_cards else []
    evidence = read_rows(evidence_path) if with_cards else []
    with atomic_dir(out) as tmp:
        for method in methods:
            folder = tmp / method.name
            export_lm_eval(
                method.manifest, model, model_spec, method.name, method.spec, folder / "lm_eval"
            )
            if method.artifact is not None:
                write_model_card(
                    method.artifact,
                    folder / "README.md",
                    model=model,
                    method_name=method.name,
                    model_spec=model_spec,
                    method=method.spec,
                    scores=scores,
                    evidence=evidence,
                )
        written = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file())
    return [out / p for p in written]
