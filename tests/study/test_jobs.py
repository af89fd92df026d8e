"""What each job of a study gets (biomedquant.study.jobs), worked out from a config without
Snakemake: the baseline, every evaluate and inference job's settings, shards, targets."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from biomedquant.study import layout
from biomedquant.study.jobs import StudyJobs, baseline_method
from biomedquant.study.loading import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo() -> dict:
    return load_config(REPO / "config" / "config.yaml")


def jobs_of(config: dict, **changes) -> StudyJobs:
    config = copy.deepcopy(config)
    config.update(changes)
    return StudyJobs(config)


def test_the_baseline_is_the_first_method_of_kind_none():
    methods = {"q": {"kind": "gptq"}, "a": {"kind": "none"}, "b": {"kind": "none"}}
    assert baseline_method(methods) == "a"
    assert baseline_method({"q": {"kind": "gptq"}}) is None


def test_the_recommendation_s_scope_the_deployed_prompts_and_the_controls(demo):
    assert StudyJobs(demo).recommendation_scope_args() == "--deploy-prompt zero-shot"
    paper = load_config(REPO / "config" / "paper.yaml")
    args = StudyJobs(paper).recommendation_scope_args()
    assert args.startswith("--deploy-prompt zero-shot --control gguf-q8_0 --control rtn-w4g128")
    assert "--control-of gptq-w4g128=rtn-w4g128" in args
    assert "--control-of gguf-q4_k_m=gguf-q8_0" in args
    rec = dict(paper["recommendation"], deploy_prompts=["five-shot", "cot"])
    args = jobs_of(paper, recommendation=rec).recommendation_scope_args()
    assert args.startswith("--deploy-prompt five-shot --deploy-prompt cot --control")


def test_demo_evaluate_settings_name_every_run_and_its_baseline(demo):
    jobs = StudyJobs(demo)
    quantized = next(m for m, s in demo["methods"].items() if s["kind"] != "none")
    settings = jobs.evaluate_settings("smollm2_135m", quantized)
    assert settings["baseline"] == jobs.baseline == "none"
    assert len(settings["runs"]) == len(demo["datasets"]) * len(demo["prompts"])
    first = settings["runs"][0]
    dataset, prompt = demo["datasets"][0], demo["prompts"][0]
    assert first["gold"] == f"resources/datasets/{dataset}/{demo['data']['split']}.jsonl"
    assert first["generations"] == (
        f"results/generations/smollm2_135m/{quantized}/{dataset}/{prompt}.jsonl"
    )
    assert first["baseline_predictions"] == (
        f"results/predictions/smollm2_135m/none/{dataset}/{prompt}.jsonl"
    )
    assert settings["manifest"] == f"results/evaluation/smollm2_135m/{quantized}.json"
    assert settings["resamples"] == demo["scoring"]["bootstrap_resamples"]
    # the baseline's own job compares nothing
    own = jobs.evaluate_settings("smollm2_135m", "none")
    assert "baseline" not in own and "comparisons" not in own["runs"][0]


def test_without_a_baseline_nothing_is_compared_and_no_recommendation_is_a_target(demo):
    methods = {m: s for m, s in demo["methods"].items() if s["kind"] != "none"}
    jobs = jobs_of(demo, methods=methods)
    assert jobs.baseline is None and not jobs.compared
    assert all(re.fullmatch(jobs.quantized_methods_pattern, m) for m in methods)
    assert not re.fullmatch(jobs.quantized_methods_pattern, "none")
    targets = jobs.final_targets()
    assert "results/tables/recommendation.csv" not in targets
    assert "results/tables/scores.csv" in targets
    assert StudyJobs(demo).compared
    assert "results/tables/recommendation.csv" in StudyJobs(demo).final_targets()


def test_inference_settings_and_each_datasets_decoding(demo):
    jobs = StudyJobs(demo)
    settings = jobs.infer_settings("none")
    assert settings["method"] == demo["methods"]["none"]
    assert settings["batch_size"] == jobs.decoding.batch_size
    assert jobs.infer_settings("none", batch_size=3)["batch_size"] == 3
    runs = jobs.dataset_runs("medqa")
    assert list(runs) == demo["prompts"]
    for run in runs.values():
        assert run["sc_samples"] == 1 and run["sc_temperature"] == 0  # no sc-cot in the demo
    assert jobs.dataset_runs("medqa") is runs  # computed once per dataset


def test_shards_write_parts_and_the_last_joins_them(demo):
    jobs = StudyJobs(demo)
    parts_dir = layout.SHARD_PARTS.format(model="m", method="none", shard="1-of-2")
    shard = jobs.shard_datasets(parts_dir, "1-of-2")
    assert [e["dataset"] for e in shard] == demo["datasets"]
    assert shard[0]["out_dir"] == f"{parts_dir}/{demo['datasets'][0]}"
    assert shard[0]["partial_dir"] == f"{parts_dir}.partial/{demo['datasets'][0]}"
    joined = jobs.joining_datasets(
        "m",
        "none",
        shards=2,
        generations=layout.GENERATIONS,
        records=layout.RUN_RECORD,
        output_dir="results/generations/m/none",
        parts=[parts_dir],
    )
    dataset = demo["datasets"][0]
    assert joined[0]["shard"] == "2-of-2"
    assert joined[0]["parts"] == [f"{parts_dir}/{dataset}"]
    assert joined[0]["out_dir"] == f"results/generations/m/none/{dataset}"
    assert joined[0]["runs"] == jobs.dataset_runs(dataset)


def test_in_domain_calibration_names_its_pools_and_refuses_a_dataset_outside_the_study(demo):
    jobs = StudyJobs(demo)
    method = next(
        m
        for m, s in demo["methods"].items()
        if s.get("calibration", {}).get("source") == "in_domain"
    )
    pools = jobs.calibration_pools(method)
    assert pools and all(p.startswith("resources/datasets/") for p in pools.values())
    assert jobs.calibration_test_files(method) == {
        name: f"resources/raw/{name}/test.raw" for name in pools
    }
    config = copy.deepcopy(demo)
    config["methods"][method]["calibration"]["datasets"] = ["chemprot", "not_in_study"]
    config["datasets"] = ["chemprot"]
    with pytest.raises(ValueError, match=r"methods\..*not_in_study"):
        StudyJobs(config).calibration_datasets(method)
    assert jobs.calibration_datasets("none") == []


def test_the_plan_reads_only_the_memory_parameters(demo):
    config = copy.deepcopy(demo)
    method = next(m for m, s in config["methods"].items() if s["kind"] == "gptq")
    before = StudyJobs(config).study_shape()
    config["methods"][method]["damp_percent"] = 0.05
    assert StudyJobs(config).study_shape() == before
    config["methods"][method]["bits"] = 8
    assert StudyJobs(config).study_shape() != before


def test_manifests_and_exports_follow_the_config_order(demo):
    jobs = StudyJobs(demo)
    manifests = jobs.evaluation_manifests()
    assert manifests == [
        layout.MANIFEST.format(model=model, method=method)
        for model in demo["models"]
        for method in demo["methods"]
    ]
    exports = jobs.export_methods("smollm2_135m")
    assert [e["name"] for e in exports] == list(demo["methods"])
    artifacts = jobs.model_artifacts("smollm2_135m")
    assert {e["name"] for e in exports if e["artifact"]} == set(artifacts)
    assert jobs.quantized_artifacts() == list(artifacts.values())
    assert jobs.prepare_limit(demo["data"]["split"]) == (demo["data"]["limit"] or 0)
    assert jobs.prepare_limit("train") == 0
