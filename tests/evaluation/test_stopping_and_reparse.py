"""Generation stops at the end of the model's answer (stop strings, end-of-turn tokens) and
keeps why; stored raw outputs are parsed again without generating."""

from __future__ import annotations

import json
import shutil

import pytest

from biomedquant.common.files import read_jsonl, write_jsonl
from biomedquant.evaluation.job import parse_generations
from biomedquant.evaluation.parsing import reparse_predictions
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.engines.base import cut_at_stop
from biomedquant.inference.engines.transformers import generate, load_model
from biomedquant.inference.job import run_inference
from biomedquant.tasks.text import cut_follow_up


@pytest.fixture(scope="module")
def tiny(tiny_fetched):
    model, tok, _ = load_model(tiny_fetched, {"kind": "none"})
    return model, tok


def test_generation_stops_at_a_stop_string_and_records_the_reason(tiny):
    model, tok = tiny
    prompts = ["Sentence: the drug", "Question: which"]
    free = generate(model, tok, prompts, max_new_tokens=12, batch_size=2)
    assert all(r["stop_reasons"][0] in ("length", "end_of_turn") for r in free)
    text = free[0]["outputs"][0]
    assert len(text) > 6, "the tiny model should say something to cut"
    stop = text[3:6]  # a piece of what the model writes anyway: generation must stop there
    cut = generate(model, tok, prompts, max_new_tokens=12, batch_size=2, stop=[stop])
    assert cut[0]["outputs"][0] == text[: text.find(stop)].strip()
    assert cut[0]["stop_reasons"] == ["stop_string"]
    assert cut[0]["n_new_tokens"] < free[0]["n_new_tokens"]


def test_cut_at_stop_names_why_generation_ended():
    assert cut_at_stop("B\n\nQuestion: next", ["\nQuestion:"], ended=True) == ("B\n", "stop_string")
    assert cut_at_stop("B", ["\nQuestion:"], ended=True) == ("B", "end_of_turn")
    assert cut_at_stop("B because", ["\nQuestion:"], ended=False) == ("B because", "length")


def test_follow_up_cut_keeps_an_echoed_header_on_the_first_line():
    text = "Sentence: <span>x</span>\nSentence: invented\nAnswer: y"
    assert cut_follow_up(text, ["Sentence:"]) == ("Sentence: <span>x</span>", True)
    assert cut_follow_up("yes\n**Question:** more", ["Question:"]) == ("yes", True)
    assert cut_follow_up("no follow-up", ["Question:"]) == ("no follow-up", False)
    # A chat turn whose special tokens were decoded away leaves only its role name.
    assert cut_follow_up("DDI-int\nuser\n\nClassify: x\nassistant\n\nDDI-advise")[0] == "DDI-int"


def test_reparse_rewrites_parsed_fields_and_keeps_raw_outputs(tmp_path):
    data = tmp_path / "ddi.jsonl"
    write_jsonl(
        data,
        [
            {"id": "1", "text": "t", "label": "DDI-false"},
            {"id": "2", "text": "t", "label": "DDI-effect"},
        ],
    )
    stored = tmp_path / "stored.jsonl"
    write_jsonl(
        stored,
        [
            {
                "id": "1",
                "output": "No interaction",
                "stop_reason": "end_of_turn",
                "prediction": None,
                "parse_ok": False,
                "parse_status": "no_answer",
                "n_new_tokens": 3,
            },
            {
                "id": "2",
                "output": "effect\n\nSentence: x\nAnswer: DDI-int",
                "stop_reason": "length",
                "prediction": "DDI-int",
                "parse_ok": True,
                "parse_status": "ok",
                "n_new_tokens": 9,
            },
        ],
    )
    out = tmp_path / "parsed.jsonl"
    summary = reparse_predictions(stored, data, "ddi", "zero-shot", out)
    records = read_jsonl(out)
    assert [r["prediction"] for r in records] == ["DDI-false", "DDI-effect"]
    assert [r["parse_rule"] for r in records] == ["opening", "opening"]
    assert [r["stop_reason"] for r in records] == ["end_of_turn", "length"]
    assert records[1]["output"].startswith("effect\n\nSentence:")  # the raw output is kept
    assert summary["n_changed"] == 2 and summary["n_unparsable"] == 0


def test_reparse_refuses_records_without_raw_output(tmp_path):
    data = tmp_path / "d.jsonl"
    write_jsonl(data, [{"id": "1", "text": "t", "label": "DDI-false"}])
    stored = tmp_path / "s.jsonl"
    write_jsonl(stored, [{"id": "1", "prediction": "DDI-false"}])
    with pytest.raises(ValueError, match="no raw 'output'"):
        reparse_predictions(stored, data, "ddi", "zero-shot", tmp_path / "o.jsonl")


def test_plain_prompt_format_stops_at_the_next_examples_header(
    tiny_fetched, demo_prepared, tmp_path
):
    """A model without a chat template gets the plain format and its stop strings; every
    prediction keeps its raw output, why generation stopped and the rule that read it."""
    plain = tmp_path / "plain"
    shutil.copytree(tiny_fetched, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    out = tmp_path / "p.jsonl"
    run = run_inference(
        model_dir=plain,
        method={"kind": "none"},
        dataset="ddi",
        data_path=demo_prepared["ddi"],
        prompt_method="zero-shot",
        out_path=out,
        run_path=tmp_path / "r.json",
        decoding=Decoding(batch_size=10).capped(6),
    )
    records = read_jsonl(out)
    assert run["decoding"]["stop"] == ["\nSentence:"]
    assert all(r["prompt"].endswith("\n\nAnswer:") for r in records)
    assert all(r["stop_reason"] in ("stop_string", "end_of_turn", "length") for r in records)
    assert all("\nSentence:" not in r["output"] for r in records)
    assert sum(run["stop_reason"].values()) == len(records) == 10
    parsed = tmp_path / "parsed.jsonl"
    parse_generations(out, demo_prepared["ddi"], "ddi", "zero-shot", parsed)
    assert all("parse_rule" in r and r["stop_reason"] for r in read_jsonl(parsed))
