"""Calibration windows: packing, sources (generic, file, in_domain, hf_dataset offline), the
rank check, and what a GPTQ artifact records about its calibration and quantizer options."""

from __future__ import annotations

import json

import pytest

from biomedquant.common.files import read_json, read_jsonl, write_jsonl
from biomedquant.quantization.calibration import (
    CalibrationError,
    calibration_windows,
    check_rank,
    record_text,
    widest_linear_input,
)


@pytest.fixture(scope="module")
def tok(tiny_fetched):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_fetched)


def _short_texts(n: int) -> list[str]:
    return [f"Patient {i} was given aspirin and recovered." for i in range(n)]


def test_packing_reaches_exactly_n_samples_times_seq_len_from_short_texts(tok, tmp_path):
    texts = _short_texts(200)
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert max(lengths) < 32  # every text is shorter than one window
    path = tmp_path / "notes.jsonl"
    write_jsonl(path, [{"text": t} for t in texts])
    calib = {"source": "file", "path": str(path), "n_samples": 7, "seq_len": 64}
    windows, info = calibration_windows(calib, tok, seed=5)
    assert len(windows) == 7 and all(len(w) == 64 for w in windows)
    assert info["n_tokens"] == 7 * 64 == sum(len(w) for w in windows)
    assert info["source"] == "file" and info["n_stream_tokens"] >= 7 * 64
    # texts are packed, separated by the end-of-text token, never dropped for being short
    assert sum(w.count(tok.eos_token_id) for w in windows) >= info["n_texts_used"] - 1
    again, info2 = calibration_windows(calib, tok, seed=5)
    assert again == windows and info2["sha256"] == info["sha256"]  # seeded
    other, _ = calibration_windows(calib, tok, seed=6)
    assert other != windows


def test_plain_text_file_is_split_into_paragraphs(tok, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("\n\n".join(_short_texts(60)), "utf-8")
    windows, info = calibration_windows(
        {"source": "file", "path": str(path), "n_samples": 4, "seq_len": 32}, tok
    )
    assert info["n_texts_available"] == 60 and [len(w) for w in windows] == [32] * 4


def test_too_little_text_is_refused_naming_both_numbers(tok, tmp_path):
    path = tmp_path / "few.txt"
    path.write_text("\n\n".join(_short_texts(3)), "utf-8")
    with pytest.raises(CalibrationError, match=r"holds \d+ tokens.* 8 x 64 = 512"):
        calibration_windows(
            {"source": "file", "path": str(path), "n_samples": 8, "seq_len": 64}, tok
        )
    with pytest.raises(CalibrationError, match="no string field 'body'"):
        write_jsonl(tmp_path / "x.jsonl", [{"text": "a"}])
        calibration_windows(
            {"source": "file", "path": str(tmp_path / "x.jsonl"), "text_field": "body"}, tok
        )


def test_rank_check_refuses_too_few_tokens_naming_both_numbers(tiny_fetched):
    widest = widest_linear_input(read_json(tiny_fetched / "config.json"))
    assert widest[0] == 128 and "down_proj" in widest[1]  # tiny model: intermediate 128
    with pytest.raises(CalibrationError, match=r"holds 64 tokens.*input size 128.*allow_rank"):
        check_rank(64, widest, allow_rank_deficient=False)
    check_rank(64, widest, allow_rank_deficient=True)  # allowed, with a warning
    check_rank(128, widest, allow_rank_deficient=False)


def test_quantize_refuses_rank_deficient_calibration_before_quantizing(tiny_fetched, tmp_path):
    from biomedquant.quantization import quantize_model

    method = {
        "kind": "gptq",
        "bits": 4,
        "group_size": 32,
        "calibration": {"source": "generic", "n_samples": 2, "seq_len": 32},
    }
    with pytest.raises(CalibrationError, match=r"holds 64 tokens.*input size 128"):
        quantize_model(tiny_fetched, tmp_path / "out", method)
    assert not (tmp_path / "out").exists()


def test_in_domain_calibration_never_uses_a_test_item(demo_prepared, tmp_path, tok):
    """A train pool holding two test items (one in other case and spacing): both are left out,
    counted, and no window holds their tokens."""
    from biomedquant.datasets.download import download_split

    test_records = read_jsonl(demo_prepared["hoc"])
    pool = [
        {"id": f"t{i}", "text": f"Training sentence number {i} about tumour growth."}
        for i in range(40)
    ]
    leaked = [dict(test_records[0]), dict(test_records[1])]
    leaked[1]["text"] = "  " + leaked[1]["text"].upper() + " "
    write_jsonl(tmp_path / "pool.jsonl", pool + leaked)
    raw = tmp_path / "hoc_test.raw"
    download_split("hoc", "test", "demo", raw)
    calib = {"source": "in_domain", "n_samples": 4, "seq_len": 32}
    pools, raws = {"hoc": tmp_path / "pool.jsonl"}, {"hoc": raw}
    windows, info = calibration_windows(calib, tok, pools=pools, test_raws=raws, seed=0)
    assert info["n_test_overlap_removed"] == 2 and info["n_texts_available"] == 40
    text = tok.decode([t for w in windows for t in w])
    for rec in test_records:
        assert record_text(rec)[:40] not in text
    with pytest.raises(CalibrationError, match="needs the train/dev pools"):
        calibration_windows(calib, tok)


def test_hf_dataset_source_loads_offline_from_a_local_dataset(tok, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = {"body": _short_texts(120), "id": list(range(120))}
    folder = tmp_path / "corpus"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(folder)
    calib = {
        "source": "hf_dataset",
        "dataset": str(folder),
        "split": "train",
        "text_field": "body",
        "n_samples": 5,
        "seq_len": 48,
    }
    windows, info = calibration_windows(calib, tok, seed=1)
    assert [len(w) for w in windows] == [48] * 5 and info["n_rows"] == 120
    assert info["dataset"] == str(folder) and info["fingerprint"]
    # a local JSON Lines file through the datasets library's json builder
    jsonl = tmp_path / "c4-like.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in _short_texts(80)))
    windows, info = calibration_windows(
        {
            "source": "hf_dataset",
            "dataset": "json",
            "data_files": str(jsonl),
            "n_samples": 3,
            "seq_len": 40,
        },
        tok,
    )
    assert [len(w) for w in windows] == [40] * 3
    with pytest.raises(CalibrationError, match="no column 'body'"):
        calibration_windows({**calib, "dataset": "json", "data_files": str(jsonl)}, tok)
    with pytest.raises(CalibrationError, match="cannot be loaded.*offline"):
        calibration_windows({**calib, "dataset": "no-such-org/no-such-dataset-xyz"}, tok)
