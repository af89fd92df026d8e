"""Check the inputs of ``biomedquant score`` and ``compare`` before any number is computed.

Scoring accepts predictions made anywhere, so its inputs are whatever a user hands it. A file
that only looks right would otherwise become a confident wrong number: the gold file of another
dataset, labels outside the label set scored as ordinary mistakes, tag lists of the wrong
length, a duplicated or stray id silently dropped. Every check here raises
:class:`ScoringInputError` with one line naming the file, the line and the field.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from biomedquant.datasets.prepare import DatasetValidationError, validate_records
from biomedquant.datasets.registry import DatasetSpec, get_dataset

NER_TAGS = frozenset({"B", "I", "O"})
_SHOWN = 5  # ids named in one message


class ScoringInputError(ValueError):
    """A gold or prediction file, or an option of scoring, that cannot give a valid score."""


def _lines(path: str | Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line; each must be a JSON object."""
    path = Path(path)
    if not path.is_file():
        raise ScoringInputError(f"{path}: {what} file not found")
    out = []
    with path.open(encoding="utf-8", errors="strict") as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ScoringInputError(
                        f"{path}:{lineno}: not valid JSON ({err.msg})"
                    ) from None
                if not isinstance(obj, dict):
                    raise ScoringInputError(
                        f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}"
                    )
                out.append((lineno, obj))
        except UnicodeDecodeError:
            raise ScoringInputError(f"{path}: not UTF-8 text (is it a {what} file?)") from None
    if not out:
        raise ScoringInputError(f"{path}: the {what} file holds no items")
    return out


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# Gold fields per task: name -> (check, what it must be).
_GOLD_FIELDS: dict[str, dict[str, tuple[Any, str]]] = {
    "ner": {
        "tokens": (lambda v: _is_str_list(v) and len(v) > 0, "a non-empty list of strings"),
        "tags": (lambda v: _is_str_list(v) and set(v) <= NER_TAGS, "a list of B/I/O tags"),
    },
    "re": {
        "text": (lambda v: isinstance(v, str), "a string"),
        "label": (lambda v: isinstance(v, str), "a string"),
    },
    "mlc": {
        "text": (lambda v: isinstance(v, str), "a string"),
        "labels": (_is_str_list, "a list of strings"),
    },
    "qa": {
        "question": (lambda v: isinstance(v, str), "a string"),
        "options": (
            lambda v: (
                (isinstance(v, dict) and all(isinstance(x, str) for x in v.values()))
                or (_is_str_list(v) and len(v) > 0)
            ),
            "an object of option texts or a list of answers",
        ),
        "answer": (lambda v: isinstance(v, str), "a string"),
    },
}


def read_gold(path: str | Path, spec: DatasetSpec) -> list[dict[str, Any]]:
    """The gold records of ``path``, checked field by field and then against the dataset's
    contract (:func:`validate_records`: ids, label set, aligned tags), as ``prepare`` does."""
    fields = _GOLD_FIELDS[spec.task]
    records = []
    lines: dict[str, int] = {}
    for lineno, rec in _lines(path, "gold"):
        rid = rec.get("id")
        if not isinstance(rid, str) or not rid:
            raise ScoringInputError(f"{path}:{lineno}: field 'id' must be a non-empty string")
        for name, (ok, must) in fields.items():
            if name not in rec:
                raise ScoringInputError(
                    f"{path}:{lineno}: field {name!r} missing (a {spec.name} gold item has "
                    f"{', '.join(fields)}): is this the gold file of {spec.name}?"
                )
            if not ok(rec[name]):
                raise ScoringInputError(f"{path}:{lineno}: field {name!r} must be {must}")
        records.append(rec)
        lines.setdefault(rid, lineno)
    try:
        validate_records(spec, records, f"{path} (gold of {spec.name})")
    except DatasetValidationError as err:
        raise ScoringInputError(_with_line(str(err), lines)) from None
    return records


def _with_line(message: str, lines: dict[str, int]) -> str:
    """Add the line of the item a dataset-contract message names (``item ID:``)."""
    for rid, lineno in lines.items():
        if f"item {rid}:" in message:
            return f"{message} (line {lineno})"
    return message


def answer_choices(spec: DatasetSpec, rec: dict[str, Any]) -> list[str]:
    """The labels an item can be answered with: a QA item's options, else the dataset's
    labels (what a parsed answer must be one of, and what an unparsable one counts against)."""
    if spec.task == "qa":
        return sorted(rec["options"])
    return list(spec.labels)


def _allowed(spec: DatasetSpec, rec: dict[str, Any]) -> set[str]:
    return set(answer_choices(spec, rec))


def _check_prediction(
    spec: DatasetSpec, rec: dict[str, Any], p: dict[str, Any], where: str
) -> None:
    """Type, label set and length of one parsed prediction against its gold item."""
    pred = p["prediction"]
    parsed = p.get("parse_ok", True)
    if spec.task == "ner":
        if not _is_str_list(pred) or not set(pred) <= NER_TAGS:
            raise ScoringInputError(f"{where}: field 'prediction' must be a list of B/I/O tags")
        if len(pred) != len(rec["tokens"]):
            raise ScoringInputError(
                f"{where}: field 'prediction' has {len(pred)} tags, item {rec['id']!r} has "
                f"{len(rec['tokens'])} tokens"
            )
        return
    if spec.task == "mlc":
        if not _is_str_list(pred):
            raise ScoringInputError(f"{where}: field 'prediction' must be a list of labels")
        found = pred
    else:
        if pred is None:
            if parsed:
                raise ScoringInputError(
                    f"{where}: field 'prediction' is null but 'parse_ok' is not false "
                    "(a missing answer is a parse failure: set parse_ok to false)"
                )
            return
        if not isinstance(pred, str):
            raise ScoringInputError(
                f"{where}: field 'prediction' must be a string label or null, "
                f"got {type(pred).__name__}"
            )
        found = [pred]
    outside = sorted({lab for lab in found if lab not in _allowed(spec, rec)})
    if outside and parsed:
        raise ScoringInputError(
            f"{where}: field 'prediction' holds {outside}, not in the label set "
            f"{sorted(_allowed(spec, rec))}; an answer outside it is a parse failure: "
            "set parse_ok to false (it is then counted and scored as unparsable)"
        )


def check_predictions(
    path: str | Path, gold: list[dict[str, Any]], spec: DatasetSpec, gold_path: str | Path
) -> None:
    """Every prediction: an object with a string ``id`` of a gold item (no duplicates, no
    strays, none missing), a ``prediction`` of the task's type or a raw ``output`` text, and
    a boolean ``parse_ok`` if present."""
    by_gold = {rec["id"]: rec for rec in gold}
    seen: dict[str, list[int]] = defaultdict(list)
    extra: dict[str, int] = {}
    for lineno, p in _lines(path, "predictions"):
        where = f"{path}:{lineno}"
        rid = p.get("id")
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
            raise ScoringInputError(f"{where}: field 'id' must be a non-empty string")
        rid = str(rid)
        seen[rid].append(lineno)
        if "parse_ok" in p and not isinstance(p["parse_ok"], bool):
            raise ScoringInputError(
                f"{where}: field 'parse_ok' must be true or false, got {p['parse_ok']!r}"
            )
        if rid not in by_gold:
            extra.setdefault(rid, lineno)
            continue
        if "prediction" in p:
            _check_prediction(spec, by_gold[rid], p, where)
        elif "output" in p:
            out = p["output"]
            if not (isinstance(out, str) or (_is_str_list(out) and out)):
                raise ScoringInputError(
                    f"{where}: field 'output' must be the generated text (a string or a "
                    "non-empty list of strings)"
                )
        else:
            raise ScoringInputError(f"{where}: a prediction needs 'prediction' or 'output'")
    dup = {rid: lines for rid, lines in seen.items() if len(lines) > 1}
    if dup:
        shown = "; ".join(f"{rid!r} on lines {lines}" for rid, lines in list(dup.items())[:_SHOWN])
        raise ScoringInputError(f"{path}: {len(dup)} duplicate id(s): {shown}")
    if extra:
        shown = ", ".join(f"{rid!r} (line {n})" for rid, n in list(extra.items())[:_SHOWN])
        raise ScoringInputError(
            f"{path}: {len(extra)} id(s) not in the gold file {gold_path}: {shown}"
        )
    missing = [rid for rid in by_gold if rid not in seen]
    if missing:
        raise ScoringInputError(
            f"{path}: {len(missing)} gold item(s) have no prediction, e.g. {missing[:3]}"
        )


def _same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_options(
    *, out_path: str | Path, inputs: dict[str, str | Path], level: float, resamples: int
) -> None:
    """``--level`` strictly between 0 and 1, ``--resamples`` not negative, and ``--out``
    none of the inputs (writing the score there would destroy the input)."""
    if not 0 < level < 1:
        raise ScoringInputError(
            f"--level {level}: the confidence level must lie strictly between 0 and 1 (e.g. 0.95)"
        )
    if resamples < 0:
        raise ScoringInputError(f"--resamples {resamples}: must be 0 (no intervals) or more")
    check_out_path(out_path, inputs)


def check_out_path(out_path: str | Path, inputs: dict[str, str | Path]) -> None:
    """An output path that is none of the inputs and not a folder."""
    for name, path in inputs.items():
        if _same_file(out_path, path):
            raise ScoringInputError(
                f"--out {out_path} is the {name} file: the score would overwrite its input"
            )
    if Path(out_path).is_dir():
        raise ScoringInputError(f"--out {out_path} is a folder; give the score file's path")


def check_scoring_inputs(
    *,
    dataset: str,
    gold_path: str | Path,
    predictions: dict[str, str | Path],
    out_path: str | Path,
    level: float,
    resamples: int,
) -> None:
    """Every check of one ``score`` or ``compare`` call, options first (they are cheap)."""
    spec = get_dataset(dataset)
    check_options(
        out_path=out_path, inputs={"gold": gold_path, **predictions}, level=level,
        resamples=resamples,
    )  # fmt: skip
    gold = read_gold(gold_path, spec)
    for path in predictions.values():
        check_predictions(path, gold, spec, gold_path)
