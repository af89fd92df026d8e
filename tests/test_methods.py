"""Quantization methods on the tiny model: bitsandbytes at load time, in-domain calibration,
GPTQ's per-layer losses, held-out perplexity, and the estimator against measured weights."""

from __future__ import annotations

import math

import pytest

from biomedquant.inference import generate, load_model
from biomedquant.io import read_json, write_jsonl
from biomedquant.memory import shape_for_model, weight_bytes
from biomedquant.perplexity import perplexity_rows, run_perplexity
from biomedquant.quantization import (
    bnb_config,
    calibration_texts,
    in_domain_texts,
    method_kind,
    quantize_model,
    record_text,
)

BNB_METHODS = [{"kind": "bnb-int8"}, {"kind": "bnb-nf4", "double_quant": True}]


@pytest.fixture(scope="module")
def tiny_gptq8(tiny_fetched, tmp_path_factory):
    out = tmp_path_factory.mktemp("gptq8") / "gptq-w8g32"
    method = {"kind": "gptq", "bits": 8, "group_size": 32, "calibration": {"n_samples": 8}}
    quantize_model(tiny_fetched, out, method, seed=0)
    return out, method


def test_method_registry_names_unknown_kinds():
    assert method_kind({"kind": "gptq"}).artifact
    assert method_kind({"kind": "bnb-nf4"}).load_time and not method_kind({"kind": "none"}).artifact
    with pytest.raises(ValueError, match="unknown method kind 'exl2'.*bnb-int8"):
        method_kind({"kind": "exl2"})
    assert bnb_config({"kind": "gptq"}, None) is None


@pytest.mark.parametrize("method", BNB_METHODS, ids=lambda m: m["kind"])
def test_bnb_methods_load_quantized_and_generate(tiny_fetched, method):
    import torch

    model, tok, info = load_model(tiny_fetched, method)
    linear = model.model.layers[0].self_attn.q_proj
    expected = torch.int8 if method["kind"] == "bnb-int8" else torch.uint8
    assert linear.weight.dtype == expected
    assert model.lm_head.weight.dtype == torch.float16  # left in 16-bit, as with GPTQ
    assert info["compute_dtype"] == "float16" and info["size_on_disk_bytes"] is None
    out = generate(model, tok, ["hello there", "a b c"], max_new_tokens=4, batch_size=2)
    assert len(out) == 2 and all(r["n_new_tokens"] >= 1 for r in out)


def test_estimator_matches_measured_weights_within_5_percent(tiny_fetched, tiny_gptq8):
    """The fit estimator against what the loaded tiny model really holds, for every kind."""
    shape = shape_for_model({"source": "local", "path": str(tiny_fetched)})
    assert shape is not None and shape.hidden == 64
    folder8, gptq8 = tiny_gptq8
    for folder, method in [
        (tiny_fetched, {"kind": "none"}),
        (folder8, gptq8),
        *((tiny_fetched, m) for m in BNB_METHODS),
    ]:
        _, _, info = load_model(folder, method)
        estimated = weight_bytes(shape, method)
        assert estimated == pytest.approx(info["weights_bytes"], rel=0.05), method
    # 16-bit weights on disk equal the 16-bit footprint (plus config and tokenizer files).
    _, _, info = load_model(tiny_fetched, {"kind": "none"})
    assert info["weights_bytes"] <= info["size_on_disk_bytes"]
    assert info["model_footprint_bytes"] == 2 * info["weights_bytes"]  # CPU computes in fp32


def test_gptq_8bit_records_per_layer_losses_and_generates(tiny_gptq8):
    out, method = tiny_gptq8
    prov = read_json(out / "provenance.json")
    losses = prov["layer_losses"]
    # 2 blocks x 7 linear layers, each named and with a finite, non-negative loss
    assert len(losses) == 14 and prov["layer_loss_summary"]["n_layers"] == 14
    assert {x["layer"] for x in losses} >= {"0.self_attn.q_proj", "1.mlp.down_proj"}
    assert all(isinstance(x["loss"], float) and x["loss"] >= 0 for x in losses)
    model, tok, _ = load_model(out, method)
    assert generate(model, tok, ["hello"], max_new_tokens=3, batch_size=1)[0]["n_new_tokens"] >= 1


def test_in_domain_calibration_never_uses_a_test_text(demo_prepared, tmp_path):
    """A train pool that contains two test items: both are left out and counted."""
    from biomedquant.datasets.prepare import download_split

    test_records = [r for r in _read(demo_prepared["hoc"])]
    pool = [
        {"id": f"t{i}", "text": f"Training sentence number {i} about tumour growth."}
        for i in range(6)
    ]
    leaked = [dict(test_records[0]), dict(test_records[1])]
    leaked[1]["text"] = "  " + leaked[1]["text"].upper() + " "  # same text, other case/spacing
    write_jsonl(tmp_path / "pool.jsonl", pool + leaked)
    raw = tmp_path / "hoc_test.raw"
    download_split("hoc", "test", "demo", raw)
    texts, info = in_domain_texts({"hoc": tmp_path / "pool.jsonl"}, {"hoc": raw}, 50, seed=0)
    assert info["n_test_overlap_removed"] == 2 and len(texts) == 6
    test_texts = {record_text(r).lower() for r in test_records}
    assert not any(t.strip().lower() in test_texts for t in texts)


def test_in_domain_calibration_round_robins_over_datasets(demo_prepared, tmp_path, tiny_fetched):
    from transformers import AutoTokenizer

    from biomedquant.datasets.prepare import download_split, prepare_split

    pools, raws = {}, {}
    for name, split in [("hoc", "train"), ("medqa", "train"), ("bc5cdr_chem", "train")]:
        raw = tmp_path / f"{name}.{split}.raw"
        try:
            download_split(name, split, "demo", raw)
        except KeyError:
            download_split(name, "dev", "demo", raw)
            split = "dev"
        pools[name] = tmp_path / f"{name}.{split}.jsonl"
        prepare_split(name, split, raw, pools[name])
        raws[name] = tmp_path / f"{name}.test.raw"
        download_split(name, "test", "demo", raws[name])
    tok = AutoTokenizer.from_pretrained(tiny_fetched)
    calib = {"source": "in_domain", "n_samples": 6, "seq_len": 32}
    texts, info = calibration_texts(calib, tok, pools=pools, test_raws=raws, seed=3)
    assert info["source"] == "in_domain" and info["datasets"] == sorted(pools)
    assert info["n_used"] == len(texts) == 6
    again, _ = calibration_texts(calib, tok, pools=pools, test_raws=raws, seed=3)
    assert again == texts  # seeded
    with pytest.raises(ValueError, match="needs the train/dev pools"):
        calibration_texts(calib, tok)


def test_perplexity_is_finite_and_gathered_with_ratios(
    tiny_fetched, tiny_gptq8, demo_prepared, tmp_path
):
    data = [demo_prepared["pubmedqa"], demo_prepared["hoc"]]
    base = run_perplexity(
        model_dir=tiny_fetched,
        method={"kind": "none"},
        data_paths=data,
        out_path=tmp_path / "tiny" / "none.json",
        max_length=64,
    )
    folder, method = tiny_gptq8
    q = run_perplexity(
        model_dir=folder,
        method=method,
        data_paths=data,
        out_path=tmp_path / "tiny" / "gptq-w8g32.json",
        max_length=64,
    )
    # A random tiny model: perplexity near its vocabulary size, finite and positive.
    assert math.isfinite(base["perplexity"]) and base["perplexity"] > 1
    assert base["n_texts"] == 20 and base["n_tokens"] == q["n_tokens"] > 0
    rows = perplexity_rows([tmp_path / "tiny" / "none.json", tmp_path / "tiny" / "gptq-w8g32.json"])
    by = {r["method"]: r for r in rows}
    assert by["none"]["ratio_to_baseline"] == 1.0
    assert by["gptq-w8g32"]["ratio_to_baseline"] == pytest.approx(
        q["perplexity"] / base["perplexity"], abs=1e-3
    )


def _read(path):
    from biomedquant.io import read_jsonl

    return read_jsonl(path)
