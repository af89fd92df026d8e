"""Each stage on a tiny random model built in the tests: fetch, quantize, infer, score, plot."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from biomedquant.common.files import read_json, read_jsonl
from biomedquant.datasets.registry import DATASETS, get_dataset
from biomedquant.evaluation.job import parse_generations
from biomedquant.evaluation.scoring import TABLE_COLUMNS, aggregate_scores, score_predictions
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.engines.transformers import load_model
from biomedquant.inference.job import run_inference
from biomedquant.inference.prompting import builder, messages
from biomedquant.models.fetch import ModelSourceError, fetch_model
from biomedquant.quantization import quantize_model
from biomedquant.quantization.calibration import calibration_windows

from conftest import assert_outputs_vary


def test_fetch_local_writes_safetensors_and_provenance(tiny_fetched):
    assert list(tiny_fetched.glob("*.safetensors"))
    prov = read_json(tiny_fetched / "provenance.json")
    assert prov["source"] == "local" and prov["size_bytes"] > 0 and prov["weights_sha256"]


def test_fetch_refuses_a_folder_without_safetensors(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelSourceError, match="safetensors"):
        fetch_model("m", {"source": "local", "path": str(tmp_path / "src")}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prompt_goes_through_the_chat_template(tiny_fetched):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_fetched)
    spec = get_dataset("ddi")
    rec = {"id": "1", "text": "@DRUG$ increases @DRUG$ levels.", "label": "DDI-mechanism"}
    prompt = builder("zero-shot", tok)(spec, rec)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert "DDI-mechanism" in prompt and rec["text"] in prompt
    assert messages(spec, rec, "zero-shot")[-1]["role"] == "user"
    with pytest.raises(KeyError, match="unknown prompting method"):
        messages(spec, rec, "nine-shot")


def test_calibration_windows_are_exactly_seq_len_tokens(tiny_fetched):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_fetched)
    windows, info = calibration_windows({"source": "generic", "n_samples": 8, "seq_len": 32}, tok)
    assert [len(w) for w in windows] == [32] * 8 and info["n_tokens"] == 256


@pytest.fixture(scope="module")
def tiny_gptq(tiny_fetched, tmp_path_factory):
    out = tmp_path_factory.mktemp("gptq") / "gptq-w4g32"
    method = {
        "kind": "gptq",
        "bits": 4,
        "group_size": 32,
        "calibration": {"source": "generic", "n_samples": 8, "seq_len": 32},
    }
    quantize_model(tiny_fetched, out, method, seed=0)
    return out, method


def test_gptq_artifact(tiny_gptq):
    out, _ = tiny_gptq
    assert list(out.glob("*.safetensors")) and not list(out.glob("*.bin"))
    qc = read_json(out / "quantize_config.json")
    assert qc["bits"] == 4 and qc["group_size"] == 32 and qc["quant_method"] == "gptq"
    assert read_json(out / "config.json")["quantization_config"]["dataset"] is None
    prov = read_json(out / "provenance.json")
    assert prov["calibration"]["n_samples"] == 8 and len(prov["calibration"]["sha256"]) == 64
    assert prov["size_bytes"] > 0 and prov["versions"]["gptqmodel"]


def test_gptq_artifact_reloads_and_generates(tiny_gptq):
    out, method = tiny_gptq
    model, tok, info = load_model(out, method)
    assert info["model_footprint_bytes"] > 0
    enc = tok("hello", return_tensors="pt")
    gen = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert gen.shape[1] == enc["input_ids"].shape[1] + 3 or gen.shape[1] > enc["input_ids"].shape[1]


def test_infer_score_aggregate_figure(tiny_fetched, demo_prepared, tmp_path):
    from biomedquant.report.figures.accuracy import plot_scores_by_dataset

    scores = []
    for name in DATASETS:
        pred = tmp_path / f"{name}.jsonl"
        run = run_inference(
            model_dir=tiny_fetched,
            method={"kind": "none"},
            dataset=name,
            data_path=demo_prepared[name],
            prompt_method="zero-shot",
            out_path=pred,
            run_path=tmp_path / f"{name}.run.json",
            decoding=Decoding(batch_size=4).capped(6),
        )
        records = read_jsonl(pred)
        gold = read_jsonl(demo_prepared[name])
        assert [r["id"] for r in records] == [g["id"] for g in gold]
        assert all(len(r["prompt_sha256"]) == 64 and r["n_new_tokens"] <= 6 for r in records)
        assert not any("prediction" in r for r in records)  # raw outputs: parsing is its own step
        assert run["n_items"] == len(gold) and run["compute_dtype"] == "float32"
        assert run["peak_host_rss_bytes"] > 0 and run["versions"]["torch"]
        parsed = tmp_path / f"{name}.parsed.jsonl"
        summary = parse_generations(pred, demo_prepared[name], name, "zero-shot", parsed)
        assert summary["n_items"] == len(gold)
        assert all(r["parse_rule"] or not r["parse_ok"] for r in read_jsonl(parsed))
        out = tmp_path / f"{name}.score.json"
        s = score_predictions(
            predictions_path=parsed,
            gold_path=demo_prepared[name],
            dataset=name,
            model="tiny",
            method="none",
            prompt="zero-shot",
            out_path=out,
            resamples=50,
        )
        assert s["n"] == len(gold) and 0 <= s["parse_failure_rate"] <= 1
        primary = s["metrics"][s["primary_metric"]]
        assert 0 <= primary["value"] <= 1
        scores.append(out)
    table = tmp_path / "scores.csv"
    n = aggregate_scores(scores, table)
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == n and tuple(rows[0]) == TABLE_COLUMNS
    assert {r["dataset"] for r in rows} == set(DATASETS)
    fig = tmp_path / "fig.png"
    plot_scores_by_dataset(table, [fig])
    assert fig.read_bytes()[:4] == b"\x89PNG"


def test_gold_as_prediction_scores_one(demo_prepared, tmp_path):
    """Scoring wiring check: a prediction file holding the gold answers scores exactly 1."""
    from biomedquant.tasks import get_task

    for name, path in demo_prepared.items():
        task = get_task(get_dataset(name).task)
        preds = [
            {"id": r["id"], "prediction": task.gold(r), "parse_ok": True} for r in read_jsonl(path)
        ]
        pred_path = tmp_path / f"{name}.jsonl"
        pred_path.write_text("".join(json.dumps(p) + "\n" for p in preds))
        s = score_predictions(
            predictions_path=pred_path,
            gold_path=path,
            dataset=name,
            model="m",
            method="none",
            prompt="zero-shot",
            out_path=tmp_path / f"{name}.json",
            resamples=0,
        )
        assert all(m["value"] == 1.0 for m in s["metrics"].values()), name


def test_score_refuses_missing_predictions(demo_prepared, tmp_path):
    pred_path = tmp_path / "p.jsonl"
    pred_path.write_text(json.dumps({"id": "nope", "prediction": "yes", "parse_ok": True}) + "\n")
    with pytest.raises(ValueError, match="have no prediction"):
        score_predictions(
            predictions_path=pred_path,
            gold_path=demo_prepared["pubmedqa"],
            dataset="pubmedqa",
            model="m",
            method="none",
            prompt="zero-shot",
            out_path=tmp_path / "s.json",
        )
    assert not (tmp_path / "s.json").exists()


def test_fetch_hf_offline_from_a_local_hub_cache(tiny_source, tmp_path, monkeypatch):
    """The 'hf' source through huggingface_hub itself, served from a pre-filled cache offline
    (no network here; on a real machine the same call downloads the pinned revision)."""
    import importlib

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--biomedquant--tiny"
    snapshot = repo / "snapshots" / revision
    shutil.copytree(tiny_source, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    importlib.reload(huggingface_hub.constants)
    try:
        spec = {"source": "hf", "id": "biomedquant/tiny", "revision": revision}
        prov = fetch_model("tiny", spec, tmp_path / "out")
    finally:
        monkeypatch.undo()
        importlib.reload(huggingface_hub.constants)
    assert prov["spec"]["revision"] == revision
    assert list((tmp_path / "out").glob("*.safetensors"))


@pytest.mark.parametrize("prompt", ["five-shot", "cot", "sc-cot"])
def test_infer_with_other_prompting_methods(tiny_fetched, demo_prepared, tmp_path, prompt):
    from biomedquant.datasets.download import download_split
    from biomedquant.datasets.prepare import fewshot_split, prepare_split

    name = "medqa"
    pool = None
    if prompt == "five-shot":
        split = fewshot_split(name, "demo")
        raw = tmp_path / "pool.raw"
        download_split(name, split, "demo", raw)
        pool = tmp_path / "pool.jsonl"
        prepare_split(name, split, raw, pool)
    out = tmp_path / "p.jsonl"
    run = run_inference(
        model_dir=tiny_fetched,
        method={"kind": "none"},
        dataset=name,
        data_path=demo_prepared[name],
        prompt_method=prompt,
        out_path=out,
        run_path=tmp_path / "r.json",
        pool_path=pool,
        decoding=Decoding(batch_size=4, sc_samples=3).capped(5),
    )
    parsed = tmp_path / "parsed.jsonl"
    summary = parse_generations(out, demo_prepared[name], name, prompt, parsed)
    records = read_jsonl(parsed)
    assert run["n_items"] == len(records) == 10
    assert sum(summary["parse_status"].values()) == 10
    if prompt == "sc-cot":
        assert run["decoding"] == {"samples": 3, "temperature": 0.7, "max_new_tokens": 5, "seed": 0}
        assert all(len(r["output"]) == 3 and len(r["sample_predictions"]) == 3 for r in records)
    else:
        assert all(isinstance(r["output"], str) for r in records)
    if prompt == "five-shot":
        assert records[0]["prompt"].count("<|im_start|>assistant") == 6


def test_pool_must_not_be_the_evaluated_split(tiny_fetched, demo_prepared, tmp_path):
    with pytest.raises(ValueError, match="is the evaluated split"):
        run_inference(
            model_dir=tiny_fetched,
            method={"kind": "none"},
            dataset="hoc",
            data_path=demo_prepared["hoc"],
            prompt_method="five-shot",
            out_path=tmp_path / "p.jsonl",
            run_path=tmp_path / "r.json",
            pool_path=demo_prepared["hoc"],
        )


def test_score_standalone_from_raw_outputs(demo_prepared, tmp_path):
    """Predictions made elsewhere: only id and raw output, scored through the CLI."""
    from biomedquant.cli import main

    gold = read_jsonl(demo_prepared["pubmedqa"])
    lines = [{"id": g["id"], "output": f"Answer: {g['answer']}"} for g in gold]
    lines[0]["output"] = "unclear"
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "score.json"
    argv = ["score", "--dataset", "pubmedqa", "--gold", str(demo_prepared["pubmedqa"])]
    assert main([*argv, "--predictions", str(pred), "--out", str(out)]) == 0
    s = read_json(out)
    assert s["metrics"]["accuracy"]["value"] == pytest.approx(0.9)
    assert s["parse_failure_rate"] == pytest.approx(0.1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1"}\n')
    assert main([*argv, "--predictions", str(bad), "--out", str(tmp_path / "x.json")]) == 1


def test_compare_to_baseline(demo_prepared, tmp_path):
    from biomedquant.evaluation.scoring import compare_to_baseline

    gold = read_jsonl(demo_prepared["medqa"])
    base = [{"id": g["id"], "prediction": g["answer"]} for g in gold]
    other = [dict(p) for p in base]
    for p in other[:3]:
        p["prediction"] = "A" if p["prediction"] != "A" else "B"
    paths = {}
    for name, preds in (("base", base), ("other", other)):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(p) + "\n" for p in preds))
    kw = dict(
        gold_path=demo_prepared["medqa"],
        dataset="medqa",
        model="m",
        baseline="none",
        prompt="zero-shot",
        resamples=200,
    )
    c = compare_to_baseline(
        baseline_path=paths["base"],
        predictions_path=paths["other"],
        out_path=tmp_path / "c.json",
        method="q",
        **kw,
    )
    assert c["flip_rate"] == pytest.approx(0.3)
    acc = c["metrics"]["accuracy"]
    assert acc["diff"] == pytest.approx(-0.3) and acc["ci_high"] <= 0
    # p ~ 2 * P(no changed item drawn) = 2 * 0.7**10 ~ 0.056, up to resampling noise
    assert 0.02 < acc["p_value"] < 0.2
    same = compare_to_baseline(
        baseline_path=paths["base"],
        predictions_path=paths["base"],
        out_path=tmp_path / "s.json",
        method="none",
        **kw,
    )
    assert same["flip_rate"] == 0 and same["metrics"]["accuracy"]["p_value"] == 1.0


def test_shared_prefix_cache_gives_the_same_greedy_outputs(tiny_fetched, demo_prepared, tmp_path):
    from biomedquant.datasets.download import download_split
    from biomedquant.datasets.prepare import fewshot_split, prepare_split
    from biomedquant.inference.engines.transformers import common_prefix_length, generate

    name = "ddi"
    split = fewshot_split(name, "demo")
    download_split(name, split, "demo", tmp_path / "pool.raw")
    prepare_split(name, split, tmp_path / "pool.raw", tmp_path / "pool.jsonl")
    model, tok, _ = load_model(tiny_fetched, {"kind": "none"})
    build = builder(
        "five-shot", tok, pool=read_jsonl(tmp_path / "pool.jsonl"), spec=get_dataset(name)
    )
    prompts = [build(get_dataset(name), r) for r in read_jsonl(demo_prepared[name])]
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert common_prefix_length(ids) > 100  # system + description + five examples
    kw = {"max_new_tokens": 8, "batch_size": 4}
    cached = generate(model, tok, prompts, prefix_cache=True, **kw)
    plain = generate(model, tok, prompts, prefix_cache=False, **kw)
    one_by_one = generate(model, tok, prompts, prefix_cache=False, max_new_tokens=8, batch_size=1)
    assert cached == plain == one_by_one
    assert_outputs_vary([g["outputs"][0] for g in cached])  # a row served another's cache shows
