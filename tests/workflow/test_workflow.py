"""The Snakemake workflow: config validation, lint, the DAG on a tiny model, rerun scope."""

from __future__ import annotations

import copy
import csv
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml
from support.study import copy_study, tiny_config, tiny_study

from biomedquant.datasets.registry import DATASETS
from biomedquant.study.workflow import check_config

from conftest import REPO, copy_workflow, snakemake


def planned_jobs(dry_run_stdout: str) -> dict[str, int]:
    """Job counts from Snakemake's own 'Job stats' table of a dry run."""
    table = dry_run_stdout.split("Job stats:")[1].split("Reasons:")[0]
    counts = {}
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


# Rules that compute per item or per model. What follows them (tables, figures, the report
# targets) is cheap and reruns whenever its inputs change; rerun-scope tests check these.
COMPUTING_RULES = {
    "download_dataset",
    "prepare_dataset",
    "fetch_model",
    "quantize_model",
    "infer",
    "perplexity",
    "evaluate_baseline",
    "evaluate",
    "plan",
}


def computing(jobs: dict[str, int]) -> dict[str, int]:
    """The planned jobs of computing rules; every other planned job must be a table or figure."""
    rest = set(jobs) - COMPUTING_RULES
    assert all(
        r == "all"
        or r.startswith(("aggregate_", "figure_", "recommend", "report", "export_"))
        or r.endswith("_table")
        for r in rest
    ), rest
    return {k: v for k, v in jobs.items() if k in COMPUTING_RULES}


def test_lint_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda c: c["inference"].update(batchsize=4), "batchsize"),
        (lambda c: c.update(dataset=["hoc"]), "dataset"),
        (lambda c: c["methods"]["none"].update(kind="exl2"), "exl2"),
        (lambda c: c["data"].update(limit=-3), "-3"),
        (lambda c: c.update(datasets=["bc5cdr"]), "bc5cdr"),
        (lambda c: c.update(prompts=["ten-shot"]), "ten-shot"),
        (lambda c: c["models"].update({"../up": {"source": "local", "path": "x"}}), "../up"),
        (
            lambda c: c["models"].update(h={"source": "hf", "id": "../etc", "revision": "main"}),
            "../etc",
        ),
        (lambda c: c["methods"].update(b={"kind": "bnb-nf4", "bits": 4}), "bnb-nf4"),
        (
            lambda c: c["methods"].update(
                r={"kind": "rtn", "bits": 4, "group_size": 32, "calibration": {"source": "generic"}}
            ),
            "rtn",
        ),
        (
            lambda c: c["methods"]["gptq-w4g32"]["calibration"].update(source="c4"),
            "c4",
        ),
    ],
)
def test_schema_rejects_bad_config_naming_the_key(tmp_path, tiny_source, mutate, named):
    """The Snakefile's own check (biomedquant.study.workflow.check_config), in process: one
    line, naming the key or value (Snakemake's own error printed the whole config)."""
    cfg = tiny_config(tiny_source)
    cfg.setdefault("data", {})
    cfg.setdefault("inference", {})
    mutate(cfg)
    wd = copy_workflow(tmp_path, cfg)
    line = planning_error(wd, cfg)
    assert line.startswith("ConfigError: config/config.yaml: ") and "\n" not in line, line
    assert named in line, line


def planning_error(wd, cfg) -> str:
    """What the Snakefile's config check ends a run with, called as the Snakefile calls it
    (from the workflow folder, with the parts of Snakemake's ``workflow`` it reads)."""
    workflow = SimpleNamespace(
        basedir=str(wd),
        config_settings=SimpleNamespace(configfiles=[]),
        global_resources={"gpu": 1},
        resource_settings=SimpleNamespace(default_resources=None, overwrite_resources={}),
    )
    cwd = os.getcwd()
    os.chdir(wd)
    try:
        with pytest.raises(SystemExit) as stopped:
            check_config(workflow, copy.deepcopy(cfg))
    finally:
        os.chdir(cwd)
    return str(stopped.value.code)


def test_a_bad_config_ends_snakemake_with_the_same_one_line(tmp_path, tiny_source):
    """The same check through a real `snakemake -n`: its message is the run's only output."""
    cfg = tiny_config(tiny_source)
    cfg.setdefault("inference", {})["batchsize"] = 4
    wd = copy_workflow(tmp_path, cfg)
    proc = snakemake(wd, "-n", check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    lines = err.strip().splitlines()
    assert lines == [planning_error(wd, cfg)], err[-2000:]


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "gpu_check.yaml"])
def test_demo_and_paper_configs_validate_and_dry_run(tmp_path, name):
    """Each shipped config plans its whole study (in a fresh copy: nothing exists yet)."""
    cfg = yaml.safe_load((REPO / "config" / name).read_text())
    wd = copy_workflow(tmp_path, yaml.safe_load((REPO / "config/config.yaml").read_text()))
    shutil.copy2(REPO / "config" / name, wd / "config" / f"given-{name}")
    # the paper's 16-bit Qwen2.5-72B asks for 4 GPUs of 80 GiB: a machine that has them
    proc = snakemake(wd, "-n", "--configfile", f"config/given-{name}", gpus=4)
    jobs = planned_jobs(proc.stdout)
    # one inference job per model x method, every dataset and prompting method on one load
    assert jobs["infer"] == len(cfg["models"]) * len(cfg["methods"])
    assert jobs["quantization_quality_table"] == 1
    if name == "paper.yaml":
        # a config given on the command line replaces the demo: no demo model in the study
        assert "smollm2" not in proc.stdout
        # the deployed formats plan with the rest: AWQ and GGUF files quantized once per model
        kinds = {m["kind"] for m in cfg["methods"].values()}
        assert {"gptq", "rtn", "awq", "gguf", "fp8"} <= kinds
        types = {m.get("type") for m in cfg["methods"].values() if m["kind"] == "gguf"}
        assert {"Q4_K_M", "Q8_0"} <= types
        calib = cfg["methods"]["gptq-w4g128"]["calibration"]
        assert calib["source"] == "hf_dataset" and calib["n_samples"] * calib["seq_len"] == 262144
    artifact_kinds = ("gptq", "rtn", "awq", "gguf")
    n_artifacts = sum(m["kind"] in artifact_kinds for m in cfg["methods"].values())
    assert jobs["quantize_model"] == len(cfg["models"]) * n_artifacts
    assert jobs["cpu_deployment_table"] == 1


def test_tiny_workflow_end_to_end_and_rerun_scope(tmp_path_factory, tmp_path, tiny_source):
    """The shared tiny study (every dataset), then what a change reruns, planned in a copy."""
    wd = copy_study(tiny_study(tmp_path_factory, tiny_source), tmp_path / "study")
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    n_datasets = len(cfg["datasets"]) * len(cfg["prompts"])
    rows = list(csv.DictReader((wd / "results/tables/scores.csv").open()))
    assert {(r["dataset"], r["method"]) for r in rows} == {
        (d, m) for d in DATASETS for m in cfg["methods"]
    }
    assert (wd / "results/figures/scores_by_dataset.png").stat().st_size > 0
    assert (wd / "resources/models/tiny/gptq-w4g32/quantize_config.json").exists()
    comparisons = list(csv.DictReader((wd / "results/tables/comparisons.csv").open()))
    assert {r["method"] for r in comparisons} == {"gptq-w4g32"}
    assert {r["dataset"] for r in comparisons} == set(DATASETS)
    memory = {r["method"]: r for r in csv.DictReader((wd / "results/tables/memory.csv").open())}
    assert memory["none"]["measured"] == "True" and memory["none"]["n_runs"] == str(n_datasets)
    assert 0 < float(memory["gptq-w4g32"]["weights_ratio_to_baseline"]) < 1
    assert abs(float(memory["gptq-w4g32"]["est_weights_error"])) < 0.05
    ppl = {r["method"]: r for r in csv.DictReader((wd / "results/tables/perplexity.csv").open())}
    assert ppl["none"]["ratio_to_baseline"] == "1.0" and float(ppl["gptq-w4g32"]["perplexity"]) > 1
    assert (wd / "results/tables/fit.csv").exists() and (wd / "results/figures/fit.png").exists()

    assert "Nothing to be done" in snakemake(wd, "-n").stdout

    # A scoring parameter reruns the evaluation (parse, score, compare: one job per model x
    # method) and what follows, never quantization or inference.
    cfg["scoring"]["bootstrap_resamples"] = 30
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    jobs = planned_jobs(snakemake(wd, "-n").stdout)
    assert computing(jobs) == {"evaluate_baseline": 1, "evaluate": 1}
    assert {"aggregate_scores", "aggregate_comparisons", "all"} <= set(jobs)

    # A change to the parsers' code (the config as it ran) re-reads the stored outputs:
    # evaluation jobs only.
    cfg["scoring"]["bootstrap_resamples"] = 20
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert "Nothing to be done" in snakemake(wd, "-n").stdout
    src = wd / "src"  # beside the workflow, as in a checkout (the schema is found from it)
    shutil.copytree(REPO / "src", src)
    qa = src / "biomedquant" / "tasks" / "qa.py"
    qa.write_text(qa.read_text() + "\n# a parser change\n")
    env = {**os.environ, "PYTHONPATH": str(src)}
    jobs = planned_jobs(snakemake(wd, "-n", env=env).stdout)
    assert computing(jobs) == {"evaluate_baseline": 1, "evaluate": 1}

    # A GPTQ parameter reruns that method's quantization and what depends on it, nothing else.
    cfg["methods"]["gptq-w4g32"]["damp_percent"] = 0.05
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    jobs = planned_jobs(snakemake(wd, "-n").stdout)
    assert computing(jobs) == {
        "quantize_model": 1,
        "infer": 1,
        "evaluate": 1,
        "perplexity": 1,
    }
    assert jobs["memory_table"] == 1
