"""Quantization methods on the tiny model: bitsandbytes at load time, in-domain calibration,
GPTQ's per-layer losses and recorded options, round-to-nearest artifacts, the per-layer quality
check, held-out perplexity, and the estimator against measured weights."""

from __future__ import annotations

import math

import pytest

from biomedquant.common.files import read_json
from biomedquant.inference.engines.transformers import bnb_config, generate, load_model
from biomedquant.inference.perplexity import perplexity_rows, run_perplexity
from biomedquant.methods.kinds import method_kind
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.estimator import weight_bytes
from biomedquant.quantization import quantize_model
from biomedquant.quantization.calibration import calibration_windows
from biomedquant.quantization.quality import quality_rows

BNB_METHODS = [{"kind": "bnb-int8"}, {"kind": "bnb-nf4", "double_quant": True}]


@pytest.fixture(scope="module")
def tiny_gptq8(tiny_fetched, demo_prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("gptq8") / "tiny" / "gptq-w8g32"
    method = {
        "kind": "gptq",
        "bits": 8,
        "group_size": 32,
        "calibration": {"source": "generic", "n_samples": 8, "seq_len": 64},
    }
    heldout = [demo_prepared["hoc"], demo_prepared["medqa"]]
    quantize_model(tiny_fetched, out, method, seed=0, heldout=heldout)
    return out, method


@pytest.fixture(scope="module")
def tiny_rtn4(tiny_fetched, demo_prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("rtn4") / "tiny" / "rtn-w4g32"
    method = {"kind": "rtn", "bits": 4, "group_size": 32}
    quantize_model(tiny_fetched, out, method, heldout=[demo_prepared["hoc"]])
    return out, method


def test_method_registry_names_unknown_kinds():
    assert method_kind({"kind": "gptq"}).artifact and method_kind({"kind": "rtn"}).artifact
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
    # On a CPU every method computes in float32, bitsandbytes too; the LM head is left
    # unquantized, as with GPTQ.
    assert model.lm_head.weight.dtype == torch.float32
    assert info["compute_dtype"] == "float32" and info["size_on_disk_bytes"] is None
    assert info["stored_dtype"] == "float16"
    out = generate(model, tok, ["hello there", "a b c"], max_new_tokens=4, batch_size=2)
    assert len(out) == 2 and all(r["n_new_tokens"] >= 1 for r in out)


def test_estimator_matches_measured_weights_within_5_percent(tiny_fetched, tiny_gptq8, tiny_rtn4):
    """The fit estimator against what the loaded tiny model really holds, for every kind."""
    shape = shape_for_model({"source": "local", "path": str(tiny_fetched)})
    assert shape is not None and shape.hidden == 64
    folder8, gptq8 = tiny_gptq8
    for folder, method in [
        (tiny_fetched, {"kind": "none"}),
        (folder8, gptq8),
        tiny_rtn4,
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


def test_gptq_records_calibration_and_the_options_the_quantizer_applied(tiny_gptq8):
    out, _ = tiny_gptq8
    prov = read_json(out / "provenance.json")
    calib = prov["calibration"]
    assert calib["n_tokens"] == 8 * 64 and calib["source"] == "generic"
    assert calib["widest_layer_input"]["size"] == 128 and len(calib["sha256"]) == 64
    applied = prov["applied_quantize_config"]
    assert applied == {
        k: v for k, v in read_json(out / "quantize_config.json").items() if k != "dataset"
    }
    # defaults the config never named are recorded as applied, e.g. gptqmodel's act_group_aware
    assert applied["damp_percent"] == 0.1 and applied["bits"] == 8 and "act_group_aware" in applied
    assert prov["gptq_params"]["damp_percent"] == 0.1


def test_in_domain_windows_mix_datasets_and_are_seeded(demo_prepared, tmp_path, tiny_fetched):
    from transformers import AutoTokenizer

    from biomedquant.datasets.download import download_split
    from biomedquant.datasets.prepare import prepare_split

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
    windows, info = calibration_windows(calib, tok, pools=pools, test_raws=raws, seed=3)
    assert info["source"] == "in_domain" and info["datasets"] == sorted(pools)
    assert len(windows) == 6 and info["n_tokens"] == 192
    again, _ = calibration_windows(calib, tok, pools=pools, test_raws=raws, seed=3)
    assert again == windows  # seeded


def test_rtn_artifact_is_gptq_format_equal_to_rounding_and_runs(tiny_fetched, tiny_rtn4):
    """The RTN artifact loads through the inference path, holds exactly the rounded weights,
    and its quality check finds it equal to RTN on every layer (the packing round-trips)."""
    import torch
    from safetensors.torch import load_file

    from biomedquant.quantization.rtn import rtn_grid

    out, method = tiny_rtn4
    qc = read_json(out / "quantize_config.json")
    assert qc["quant_method"] == "gptq" and qc["bits"] == 4 and qc["group_size"] == 32
    assert read_json(out / "config.json")["quantization_config"]["format"] == qc["format"]
    model, tok, _ = load_model(out, method)
    layer = model.model.layers[1].mlp.down_proj
    w = load_file(tiny_fetched / "model.safetensors")["model.layers.1.mlp.down_proj.weight"]
    rounded, scale, _, _ = rtn_grid(w, 4, 32, True)
    eye = torch.eye(w.shape[1])
    with torch.no_grad():
        dequant = layer(eye).t()
    # the same grid point for every weight: a code off by one would be a whole step away; the
    # artifact's 16-bit scales and 16-bit dequantization move a weight by a few % of one
    steps = (dequant - rounded).abs() / scale.repeat_interleave(32, dim=1)
    assert float(steps.max()) < 0.25
    assert generate(model, tok, ["hello"], max_new_tokens=3, batch_size=1)[0]["n_new_tokens"] >= 1
    quality = read_json(out / "provenance.json")["quality"]
    assert quality["summary"]["n_layers"] == 14 and quality["summary"]["verdict"] == "ok"
    for row in quality["layers"]:
        assert row["rel_error"] == pytest.approx(row["rel_error_rtn"], rel=0.02), row


def test_rtn_grid_equals_gptqmodels_quantizer():
    import torch
    from gptqmodel.quantization.config import QuantizeConfig
    from gptqmodel.quantization.quantizer import Quantizer

    from biomedquant.quantization.rtn import rtn_grid

    torch.manual_seed(0)
    w = torch.randn(16, 96) * 0.02
    w[0, :32] = 0  # an all-zero group
    w[1, 32:64] = w[1, 32:64].abs()  # a group without negative weights
    for bits, sym in [(4, True), (4, False), (3, True), (8, False)]:
        rounded, scale, zero, g_idx = rtn_grid(w, bits, 32, sym)
        assert g_idx.tolist() == [i // 32 for i in range(96)]
        ref = Quantizer(qcfg=QuantizeConfig(bits=bits, group_size=32, sym=sym))
        ref.configure(perchannel=True)
        for g, start in enumerate(range(0, 96, 32)):
            ref.find_params(w[:, start : start + 32], weight=True)
            assert torch.equal(
                ref.quantize(w[:, start : start + 32]), rounded[:, start : start + 32]
            )
            assert torch.equal(ref.scale[:, 0], scale[:, g]) and torch.equal(
                ref.zero[:, 0], zero[:, g]
            )


def test_gptq_quality_check_and_table(tiny_gptq8, tiny_rtn4, tmp_path):
    out, _ = tiny_gptq8
    prov = read_json(out / "provenance.json")
    summary = prov["quality"]["summary"]
    assert summary["n_layers"] == 14 and summary["n_heldout_tokens"] > 0
    # it wants at least the widest layer's inputs (the tiny model's MLP is narrower than 1,024)
    assert summary["n_heldout_tokens_wanted"] == 1024
    assert summary["heldout_text"] == "evaluated test items"
    assert all(r["rel_error"] >= 0 and r["rel_error_rtn"] > 0 for r in prov["quality"]["layers"])
    rows = quality_rows([out, tiny_rtn4[0]])
    by = {r["method"]: r for r in rows}
    assert by["gptq-w8g32"]["model"] == "tiny" and by["rtn-w4g32"]["kind"] == "rtn"
    assert by["gptq-w8g32"]["calibration_tokens"] == 512 and by["rtn-w4g32"]["verdict"] == "ok"
    # 8-bit GPTQ is far below 4-bit RTN's error, which its own check measured at 8 bits
    assert by["gptq-w8g32"]["mean_rel_error"] < by["rtn-w4g32"]["mean_rel_error"]


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
    # datasets weigh equally: exp of the mean of their mean NLL, whatever their token counts
    per = base["datasets"]
    assert set(per) == {str(d) for d in data}
    assert base["mean_nll"] == pytest.approx(sum(d["mean_nll"] for d in per.values()) / 2)
    assert sum(d["n_tokens"] for d in per.values()) == base["n_tokens"]
    assert base["bos"] is False  # the demo tokenizer adds no BOS by default
    rows = perplexity_rows([tmp_path / "tiny" / "none.json", tmp_path / "tiny" / "gptq-w8g32.json"])
    by = {r["method"]: r for r in rows}
    assert by["none"]["ratio_to_baseline"] == 1.0
    assert by["gptq-w8g32"]["ratio_to_baseline"] == pytest.approx(
        q["perplexity"] / base["perplexity"], abs=1e-3
    )


def test_perplexity_reads_a_text_as_the_model_reads_a_document(tiny_fetched):
    """BOS first where the tokenizer puts it there by default, so the text's first token is
    predicted too; none where it does not."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    from biomedquant.inference.perplexity import adds_bos, scored_ids

    plain = AutoTokenizer.from_pretrained(tiny_fetched)
    assert not adds_bos(plain)
    ids = plain("Aspirin inhibits COX-1.", add_special_tokens=False)["input_ids"]
    assert scored_ids(plain, "Aspirin inhibits COX-1.", 512, False) == ids
    with_bos = AutoTokenizer.from_pretrained(tiny_fetched)
    bos = with_bos.convert_tokens_to_ids(with_bos.eos_token)  # any special token will do
    with_bos.bos_token = with_bos.eos_token
    with_bos._tokenizer.post_processor = TemplateProcessing(
        single=f"{with_bos.bos_token} $A", special_tokens=[(with_bos.bos_token, bos)]
    )
    assert adds_bos(with_bos)
    assert scored_ids(with_bos, "Aspirin inhibits COX-1.", 512, True) == [bos, *ids]
    assert len(scored_ids(with_bos, "Aspirin inhibits COX-1.", 3, True)) == 3


def test_held_out_text_counts_each_sentence_once_and_samples_every_dataset(tmp_path):
    from biomedquant.common.files import write_jsonl
    from biomedquant.datasets.texts import distinct_texts, interleaved
    from biomedquant.quantization.quality import heldout_texts

    # relation extraction: one sentence per entity pair
    ddi, hoc = tmp_path / "ddi.jsonl", tmp_path / "hoc.jsonl"
    write_jsonl(
        ddi, [{"id": f"p{i}", "text": "A with B." if i < 3 else "C with D."} for i in range(4)]
    )
    write_jsonl(hoc, [{"id": f"h{i}", "text": f"abstract {i}"} for i in range(3)])
    by = distinct_texts([ddi, hoc])
    assert by == {
        str(ddi): ["A with B.", "C with D."],
        str(hoc): ["abstract 0", "abstract 1", "abstract 2"],
    }
    assert heldout_texts([ddi, hoc]) == [
        "A with B.",
        "abstract 0",
        "C with D.",
        "abstract 1",
        "abstract 2",
    ]
    assert interleaved([]) == []


def test_the_reads_of_gptqmodel_and_optimum_match_the_installed_versions():
    """The per-layer losses are read from gptqmodel's fasterquant result by position and named
    after optimum's log line: both are checked against the installed sources, so an upgrade
    that reorders the result or rewords the line fails here, not silently in a study."""
    import inspect

    from gptqmodel.quantization import GPTQ
    from optimum.gptq import quantizer

    from biomedquant.quantization.gptq import FASTERQUANT_RESULT, LAYER_LOG, fasterquant_field

    assert f"return {', '.join(FASTERQUANT_RESULT)}" in inspect.getsource(GPTQ.hf_quantize)
    assert "return self.hf_quantize(" in inspect.getsource(GPTQ.fasterquant)
    assert 'logger.info(f"Quantizing {name} in block {i + 1}/{len(blocks)}...")' in (
        inspect.getsource(quantizer)
    )
    m = LAYER_LOG.search("Quantizing mlp.down_proj in block 3/30...")
    assert m and m.groups() == ("mlp.down_proj", "3", "30")
    result = ("s", "z", "g", 1.5, 0.25, 0.01)
    assert fasterquant_field(result, "avg_loss") == 0.25
    assert fasterquant_field(result, "damp_percent") == 0.01
    assert fasterquant_field(result[:4], "avg_loss") is None


def test_a_gptq_save_without_its_quantization_config_is_refused(tmp_path):
    """transformers always writes quantization_config for a GPTQ model; if it ever did not, the
    artifact would reload as a 16-bit model of packed integers: refused, not patched over."""
    from biomedquant.common.files import write_json
    from biomedquant.quantization.gptq import _save

    class Saved:
        def save_pretrained(self, folder, safe_serialization=True):
            write_json(folder / "config.json", {"model_type": "llama"})

    with pytest.raises(RuntimeError, match="without a quantization_config"):
        _save(Saved(), None, tmp_path, "gptq", None)
