"""Bad scoring inputs: each is one error line naming the file, line and field, and no score.

Gold and predictions are the packaged demo splits, prepared as the workflow prepares them;
every case goes through the command line, as a user would run it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biomedquant.cli import main
from biomedquant.common.files import read_json, read_jsonl


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _score(capsys, dataset: str, gold: Path, preds: Path, out: Path, *extra: str):
    code = main(
        ["score", "--dataset", dataset, "--gold", str(gold), "--predictions", str(preds),
         "--out", str(out), "--resamples", "20", *extra]
    )  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.err.strip()


def _right(gold: list[dict], field: str) -> list[dict]:
    return [{"id": g["id"], "prediction": g[field]} for g in gold]


def _fails(capsys, dataset, gold, preds, out, *extra) -> str:
    code, err = _score(capsys, dataset, gold, preds, out, *extra)
    assert code == 1, err
    assert len(err.splitlines()) == 1 and err.startswith("biomedquant score: error: "), err
    assert not Path(out).exists()
    return err


def test_gold_of_another_dataset_is_refused(demo_prepared, tmp_path, capsys):
    """ChemProt gold scored as DDI used to give accuracy 1.0 labelled 'ddi'."""
    gold = demo_prepared["chemprot"]
    preds = _write(tmp_path / "p.jsonl", _right(read_jsonl(gold), "label"))
    err = _fails(capsys, "ddi", gold, preds, tmp_path / "s.json")
    assert f"{gold} (gold of ddi)" in err and "not in the label set" in err and "line 1" in err


def test_an_ner_gold_file_given_for_a_relation_dataset_names_the_missing_field(
    demo_prepared, tmp_path, capsys
):
    gold = demo_prepared["ncbi_disease"]
    preds = _write(tmp_path / "p.jsonl", [{"id": "s0", "prediction": "DDI-false"}])
    err = _fails(capsys, "ddi", gold, preds, tmp_path / "s.json")
    assert f"{gold}:1: field 'text' missing" in err and "gold file of ddi?" in err


@pytest.mark.parametrize("label", ["Yes", "F", "CPR:7"])
def test_a_label_outside_the_label_set_is_an_error_unless_marked_unparsable(
    demo_prepared, tmp_path, capsys, label
):
    gold = demo_prepared["ddi"]
    rows = _right(read_jsonl(gold), "label")
    rows[3]["prediction"] = label
    preds = _write(tmp_path / "p.jsonl", rows)
    err = _fails(capsys, "ddi", gold, preds, tmp_path / "s.json")
    assert f"{preds}:4: field 'prediction' holds ['{label}'], not in the label set" in err
    # Marked as a parse failure, it is counted and scored as unparsable.
    rows[3]["parse_ok"] = False
    _write(preds, rows)
    code, err = _score(capsys, "ddi", gold, preds, tmp_path / "s.json")
    score = read_json(tmp_path / "s.json")
    assert code == 0, err
    assert score["parse_failure_rate"] == 0.1 and score["metrics"]["accuracy"]["value"] == 0.9


def test_ner_tags_of_the_wrong_length_or_alphabet(demo_prepared, tmp_path, capsys):
    gold = demo_prepared["ncbi_disease"]
    rows = _right(read_jsonl(gold), "tags")
    n = len(rows[1]["prediction"])
    rows[1]["prediction"] = rows[1]["prediction"][:-1]
    preds = _write(tmp_path / "p.jsonl", rows)
    err = _fails(capsys, "ncbi_disease", gold, preds, tmp_path / "s.json")
    assert f"{preds}:2: field 'prediction' has {n - 1} tags, item 's1' has {n} tokens" in err
    rows[1]["prediction"] = ["B-Disease"] * n
    _write(preds, rows)
    err = _fails(capsys, "ncbi_disease", gold, preds, tmp_path / "s.json")
    assert f"{preds}:2: field 'prediction' must be a list of B/I/O tags" in err


def test_duplicate_and_stray_prediction_ids_are_named(demo_prepared, tmp_path, capsys):
    gold = demo_prepared["pubmedqa"]
    rows = _right(read_jsonl(gold), "answer")
    first = rows[0]["id"]
    preds = _write(tmp_path / "p.jsonl", [*rows, {"id": first, "prediction": "no"}])
    err = _fails(capsys, "pubmedqa", gold, preds, tmp_path / "s.json")
    assert f"1 duplicate id(s): '{first}' on lines [1, 11]" in err
    _write(preds, [*rows, {"id": "not-in-gold", "prediction": "yes"}])
    err = _fails(capsys, "pubmedqa", gold, preds, tmp_path / "s.json")
    assert f"1 id(s) not in the gold file {gold}: 'not-in-gold' (line 11)" in err


def test_duplicate_gold_items_are_refused(demo_prepared, tmp_path, capsys):
    """Used to double n silently."""
    records = read_jsonl(demo_prepared["hoc"])
    gold = _write(tmp_path / "gold.jsonl", [*records, records[0]])
    preds = _write(tmp_path / "p.jsonl", _right(records, "labels"))
    err = _fails(capsys, "hoc", gold, preds, tmp_path / "s.json")
    assert f"duplicate id {records[0]['id']!r}" in err and str(gold) in err


@pytest.mark.parametrize("level", ["-1", "0", "1", "1.5", "nan"])
def test_the_confidence_level_lies_between_0_and_1(demo_prepared, tmp_path, capsys, level):
    gold = demo_prepared["pubmedqa"]
    preds = _write(tmp_path / "p.jsonl", _right(read_jsonl(gold), "answer"))
    err = _fails(capsys, "pubmedqa", gold, preds, tmp_path / "s.json", "--level", level)
    assert f"--level {float(level)}: the confidence level must lie strictly between 0 and 1" in err


def test_out_is_never_an_input(demo_prepared, tmp_path, capsys):
    gold = demo_prepared["pubmedqa"]
    preds = _write(tmp_path / "p.jsonl", _right(read_jsonl(gold), "answer"))
    before = preds.read_bytes()
    code, err = _score(capsys, "pubmedqa", gold, preds, preds)
    assert code == 1 and f"--out {preds} is the predictions file" in err
    assert preds.read_bytes() == before
    code, err = _score(capsys, "pubmedqa", gold, preds, tmp_path / "." / gold.name, "--seed", "1")
    assert code == 0  # a different file of the same name is fine
    code = main(
        ["compare", "--dataset", "pubmedqa", "--gold", str(gold), "--predictions", str(preds),
         "--baseline-predictions", str(preds), "--out", str(gold), "--model", "m",
         "--method", "x", "--baseline", "none", "--prompt", "zero-shot"]
    )  # fmt: skip
    assert code == 1 and "is the gold file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"id": "X", "prediction": 3}, "field 'prediction' must be a string label or null"),
        ({"id": None, "prediction": "yes"}, "field 'id' must be a non-empty string"),
        ({"id": ["a"], "prediction": "yes"}, "field 'id' must be a non-empty string"),
        ({"id": "X", "prediction": ["yes"]}, "field 'prediction' must be a string label"),
        ({"id": "X", "prediction": None}, "field 'prediction' is null but 'parse_ok' is not"),
        ({"id": "X", "output": 7}, "field 'output' must be the generated text"),
        ({"id": "X", "output": []}, "field 'output' must be the generated text"),
        ({"id": "X"}, "a prediction needs 'prediction' or 'output'"),
        ({"id": "X", "prediction": "yes", "parse_ok": "false"}, "field 'parse_ok' must be true"),
        ({"id": "X", "prediction": "yes", "parse_ok": 0}, "field 'parse_ok' must be true"),
        (["X", "yes"], "expected a JSON object, got list"),
        ("yes", "expected a JSON object, got str"),
    ],
)
def test_wrong_types_in_predictions_name_line_and_field(
    demo_prepared, tmp_path, capsys, line, message
):
    """Ints, nulls, lists and strings where they do not belong used to end in tracebacks
    (TypeError, IndexError); parse_ok 'false' (a string) read as true."""
    gold = demo_prepared["pubmedqa"]
    rows = _right(read_jsonl(gold), "answer")
    if isinstance(line, dict) and line.get("id") == "X":
        line = {**line, "id": rows[2]["id"]}
    rows[2] = line
    preds = _write(tmp_path / "p.jsonl", rows)
    err = _fails(capsys, "pubmedqa", gold, preds, tmp_path / "s.json")
    assert f"{preds}:3: {message}" in err


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(labels="Tumor"), "field 'labels' must be a list of strings"),
        (lambda r: r.update(text=None), "field 'text' must be a string"),
        (lambda r: r.update(id=5), "field 'id' must be a non-empty string"),
        (lambda r: r.pop("labels"), "field 'labels' missing"),
    ],
)
def test_wrong_types_in_gold_name_line_and_field(demo_prepared, tmp_path, capsys, mutate, message):
    records = read_jsonl(demo_prepared["hoc"])
    preds = _write(tmp_path / "p.jsonl", _right(records, "labels"))
    mutate(records[4])
    gold = _write(tmp_path / "gold.jsonl", records)
    err = _fails(capsys, "hoc", gold, preds, tmp_path / "s.json")
    assert f"{gold}:5: {message}" in err


def test_an_empty_gold_file_is_refused(tmp_path, capsys):
    """Used to end in ZeroDivisionError."""
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n")
    preds = _write(tmp_path / "p.jsonl", [{"id": "a", "prediction": "yes"}])
    err = _fails(capsys, "pubmedqa", gold, preds, tmp_path / "s.json")
    assert f"{gold}: the gold file holds no items" in err


def test_valid_predictions_of_every_task_still_score(demo_prepared, tmp_path, capsys):
    """The checks accept what inference writes: parsed predictions, raw outputs, failures."""
    fields = {"ncbi_disease": "tags", "ddi": "label", "hoc": "labels", "medqa": "answer"}
    for dataset, field in fields.items():
        gold = read_jsonl(demo_prepared[dataset])
        rows = _right(gold, field)
        rows[0] = {"id": gold[0]["id"], "output": f"Answer: {gold[0].get('answer', '')}"}
        if dataset != "ncbi_disease":
            empty = [] if dataset == "hoc" else None
            rows[1] = {"id": gold[1]["id"], "prediction": empty, "parse_ok": False}
        preds = _write(tmp_path / f"{dataset}.jsonl", rows)
        code, err = _score(capsys, dataset, demo_prepared[dataset], preds, tmp_path / "s.json")
        assert code == 0, err
