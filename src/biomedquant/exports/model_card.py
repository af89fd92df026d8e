"""A model card for a quantized artifact (``results/exports/{model}/{method}/README.md``), so
the folder can be shared on a model hub as it is: the hub's metadata header and, below it,
what was quantized how, and what the study measured for it.

The header uses the Hugging Face Hub's model-card keys: ``base_model`` (the source model's
Hub id, where it has one), ``base_model_relation: quantized`` (the hub then lists the card
under its base model's quantizations), ``library_name``, ``tags``, ``pipeline_tag``. The body
states the method and its settings, the calibration (source, tokens, hash), the weights'
SHA-256, the study's primary score of the artifact and of its 16-bit baseline per dataset and
prompting method, and its verdicts against the baseline. The card is written after the study is
scored, beside the artifact rather than inside it (the artifact is a finished, cached output);
copy it into the folder as ``README.md`` before uploading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biomedquant.common.files import read_json, write_text
from biomedquant.methods.kinds import display_names, method_kind

HUB_KEYS = ("base_model", "base_model_relation", "library_name", "pipeline_tag", "tags")


def card_metadata(model_spec: Mapping[str, Any], method: Mapping[str, Any]) -> dict[str, Any]:
    """The hub's metadata header of a card (``base_model`` only for a model with a Hub id)."""
    kind = method_kind(dict(method))
    meta: dict[str, Any] = {}
    if model_spec.get("id"):
        meta["base_model"] = model_spec["id"]
    meta["base_model_relation"] = "quantized"
    meta["library_name"] = "gguf" if kind.name == "gguf" else "transformers"
    meta["pipeline_tag"] = "text-generation"
    meta["tags"] = ["biomedquant", kind.name, "biomedical", "quantized"]
    return meta


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def model_card(
    *,
    model: str,
    method_name: str,
    model_spec: Mapping[str, Any],
    method: Mapping[str, Any],
    provenance: Mapping[str, Any],
    scores: Sequence[Mapping[str, Any]] = (),
    verdicts: Sequence[Mapping[str, Any]] = (),
    baseline: str = "none",
) -> str:
    """The card's text: the YAML header, then the body (see the module docstring).

    ``scores``: rows of ``scores.csv`` (primary metric rows of this model are used);
    ``verdicts``: rows of ``recommendation_evidence.csv`` of this model x method."""
    import yaml

    title = display_names({method_name: dict(method)})[method_name]
    source = provenance.get("source_model", {})
    settings = {k: v for k, v in method.items() if k != "calibration"}
    calibration = provenance.get("calibration") or {}
    parts = [
        "---",
        yaml.safe_dump(card_metadata(model_spec, method), sort_keys=False).strip(),
        "---",
        "",
        f"# {model} ({title})",
        "",
        f"{model_spec.get('id') or model} quantized with {title} by biomedquant, and evaluated on"
        " biomedical NLP benchmarks against its 16-bit version.",
        "",
        "## Quantization",
        "",
        f"- method: `{method_name}`, {method_kind(dict(method)).description}",
        f"- settings: `{yaml.safe_dump(settings, default_flow_style=True).strip()}`",
        f"- source revision: {source.get('revision') or 'not pinned'}",
    ]
    if calibration:
        parts.append(
            f"- calibration: {calibration.get('source')}, {calibration.get('n_tokens')} tokens"
            f" (sha256 {calibration.get('sha256', '')[:16]}...)"
        )
    if source.get("baseline_note"):
        parts.append(f"- note: {source['baseline_note']}")
    parts.append(f"- weights sha256: `{provenance.get('weights_sha256', 'unknown')}`")
    mine = [
        r
        for r in scores
        if r["model"] == model
        and str(r.get("primary")).lower() == "true"
        and r["method"] in (method_name, baseline)
    ]
    if mine:
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        for r in mine:
            cells.setdefault((r["dataset"], r["prompt"]), {"metric": r["metric"]})[r["method"]] = r
        rows = []
        for (dataset, prompt), c in sorted(cells.items()):
            q, b = c.get(method_name), c.get(baseline)
            rows.append(
                [
                    dataset,
                    prompt,
                    c["metric"],
                    "" if q is None else f"{float(q['value']):.3f}",
                    "" if b is None else f"{float(b['value']):.3f}",
                ]
            )
        parts += [
            "",
            "## Scores",
            "",
            _table(rows, ["dataset", "prompt", "metric", title, "16-bit"]),
        ]
    if verdicts:
        rows = [
            [
                v["task"],
                v["prompt"],
                f"{float(v['delta_points']):+.1f}",
                v["margin_points"],
                v["verdict"],
            ]
            for v in verdicts
        ]
        parts += [
            "",
            "## Against the 16-bit model",
            "",
            "Change of the primary metric in points (0.01 on its 0-1 scale), and the verdict of"
            " a one-sided non-inferiority test at the margin.",
            "",
            _table(rows, ["task", "prompt", "change", "margin", "verdict"]),
        ]
    return "\n".join(parts) + "\n"


def read_rows(path: str | Path | None) -> list[dict[str, Any]]:
    """The rows of a study table (CSV); none for no path."""
    import csv

    if not path:
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_model_card(
    artifact: str | Path,
    out_path: str | Path,
    *,
    model: str,
    method_name: str,
    model_spec: Mapping[str, Any],
    method: Mapping[str, Any],
    scores_path: str | Path | None = None,
    evidence_path: str | Path | None = None,
    scores: Sequence[Mapping[str, Any]] | None = None,
    evidence: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """Read the artifact's provenance and the study's tables; write the card. ``scores`` and
    ``evidence``, the tables' rows already read (a model's export writes several cards),
    stand for their paths."""
    scores = read_rows(scores_path) if scores is None else scores
    evidence = read_rows(evidence_path) if evidence is None else evidence
    verdicts = [r for r in evidence if r["model"] == model and r["method"] == method_name]
    text = model_card(
        model=model,
        method_name=method_name,
        model_spec=model_spec,
        method=method,
        provenance=read_json(Path(artifact) / "provenance.json"),
        scores=scores,
        verdicts=verdicts,
        baseline=verdicts[0]["baseline"] if verdicts else "none",
    )
    write_text(out_path, text)
    return text
