"""The fit estimator's arithmetic, pinned on hand-checked model shapes."""

from __future__ import annotations

import pytest

from biomedquant.memory import MODEL_SHAPES, ModelShape, estimate, kv_cache_bytes, weight_bytes

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


def test_fit_cli_reports_every_model_and_method_of_the_paper_config(capsys):
    import yaml

    from biomedquant.cli import main

    from conftest import REPO

    assert main(["fit", "--config", str(REPO / "config/paper.yaml"), "--gpu-gb", "48"]) == 0
    out = capsys.readouterr().out.splitlines()
    cfg = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    assert len(out) == 1 + len(cfg["models"]) * len(cfg["methods"])
    row = next(x for x in out if x.startswith("llama31_70b") and "gptq-w4g128" in x)
    assert row.endswith("yes")
    assert next(x for x in out if x.startswith("llama31_70b") and " none " in x).endswith("no")
