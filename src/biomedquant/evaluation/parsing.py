"""Raw model outputs to parsed predictions, as pure functions of the stored outputs.

Parsing depends only on the raw output(s) of an item, the item itself and the prompting method
(self-consistency votes over its samples), never on the model, so a parser change is applied
by re-reading stored predictions (:func:`reparse_predictions`) without generating again.
The reading rule itself is documented in :mod:`biomedquant.tasks.answer_reading`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from biomedquant.common.files import read_jsonl, write_jsonl
from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec, get_dataset
from biomedquant.inference.prompting import get_prompt_method
from biomedquant.tasks import get_task

# Fields a parse writes into a prediction record (everything else is kept as stored).
PARSED_FIELDS = (
    "prediction",
    "parse_ok",
    "parse_status",
    "parse_rule",
    "sample_predictions",
    "sample_status",
    "sample_rules",
)


def _spec(dataset: str | DatasetSpec) -> DatasetSpec:
    return dataset if isinstance(dataset, DatasetSpec) else get_dataset(dataset)


def parse_output(
    dataset: str | DatasetSpec,
    raw_output: str | list[str],
    item: Record,
    prompt_method: str = "zero-shot",
) -> tuple[Any, str, str | None]:
    """(prediction, parse_status, parse_rule) of one item's raw output(s).

    ``raw_output`` is one text, or the list of sampled texts of a self-consistency method
    (voted on; the rule is then ``vote``). Never raises on model output.
    """
    fields = parse_fields(dataset, raw_output, item, prompt_method)
    return fields["prediction"], fields["parse_status"], fields["parse_rule"]


def parse_fields(
    dataset: str | DatasetSpec,
    raw_output: str | list[str],
    item: Record,
    prompt_method: str = "zero-shot",
) -> dict[str, Any]:
    """The parsed fields of a prediction record (see :data:`PARSED_FIELDS`)."""
    spec = _spec(dataset)
    task = get_task(spec.task)
    outputs = [raw_output] if isinstance(raw_output, str) else list(raw_output)
    parsed = [task.parse(text, spec, item) for text in outputs]
    voting = get_prompt_method(prompt_method).self_consistency and len(parsed) > 1
    final = task.vote(parsed) if voting else parsed[0]
    fields: dict[str, Any] = {
        "prediction": final.prediction,
        "parse_ok": final.ok,
        "parse_status": final.status,
        "parse_rule": final.rule,
    }
    if voting:
        fields["sample_predictions"] = [p.prediction for p in parsed]
        fields["sample_status"] = [p.status for p in parsed]
        fields["sample_rules"] = [p.rule for p in parsed]
    return fields


def parse_records(
    records: list[dict[str, Any]],
    items: dict[str, Record],
    dataset: str | DatasetSpec,
    prompt_method: str,
    where: str | Path,
    gold_where: str | Path = "the gold file",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Stored prediction records with their parsed fields replaced (everything else kept:
    prompt, raw output(s), stop reasons, token counts), and a summary: item count, parse
    statuses and rules, and how many predictions changed. ``items``: the gold items by id;
    ``where`` and ``gold_where`` name the two files in errors."""
    out, changed = [], 0
    for lineno, record in enumerate(records, 1):
        key = str(record.get("id"))
        if key not in items:
            raise ValueError(f"{where}:{lineno}: item {key!r} is not in {gold_where}")
        if "output" not in record:
            raise ValueError(f"{where}:{lineno}: no raw 'output' to parse")
        fields = parse_fields(dataset, record["output"], items[key], prompt_method)
        changed += fields["prediction"] != record.get("prediction")
        kept = {k: v for k, v in record.items() if k not in PARSED_FIELDS}
        out.append({**kept, **fields})
    summary = {
        "n_items": len(out),
        "n_unparsable": sum(not r["parse_ok"] for r in out),
        "n_changed": changed,
        "parse_status": dict(Counter(r["parse_status"] for r in out)),
        "parse_rule": dict(Counter(str(r["parse_rule"]) for r in out)),
    }
    return out, summary


def reparse_predictions(
    predictions_path: str | Path,
    data_path: str | Path,
    dataset: str,
    prompt_method: str,
    out_path: str | Path,
) -> dict[str, Any]:
    """Parse the raw outputs of a stored predictions file again and write the parsed file
    (:func:`parse_records`); returns its summary."""
    items = {str(rec["id"]): rec for rec in read_jsonl(data_path)}
    out, summary = parse_records(
        read_jsonl(predictions_path), items, dataset, prompt_method, predictions_path, data_path
    )
    write_jsonl(out_path, out)
    return summary
