"""The study check (biomedquant.study.checks): one line per problem, all at once, the same from
the Snakefile, `biomedquant plan` and `biomedquant doctor`."""

from __future__ import annotations

import copy
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from biomedquant.common.gpus import gpus_needed
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.estimator import estimate
from biomedquant.planning.job_resources import job_gpus
from biomedquant.study.checks import (
    Hardware,
    StudyError,
    check_run_hardware,
    check_study,
    study_problems,
    widest_input,
)
from biomedquant.study.loading import load_config

from conftest import REPO, copy_workflow

PAPER = load_config(REPO / "config" / "paper.yaml")
DEMO = load_config(REPO / "config" / "config.yaml")
LLAMA8 = PAPER["models"]["llama31_8b"]
LLAMA70 = PAPER["models"]["llama31_70b"]
QWEN72 = PAPER["models"]["qwen25_72b"]
NONE = {"kind": "none"}


def _study(models: dict, methods: dict, **extra) -> dict:
    """A cut of the paper config (schema defaults filled) with these models and methods."""
    cfg = copy.deepcopy(PAPER)
    cfg.update(models=models, methods=methods, strict_revisions=False, **extra)
    return cfg


def _gptq(**calibration) -> dict:
    return {"kind": "gptq", "bits": 4, "group_size": 128, "calibration": calibration}


def _lines(cfg: dict, level: str = "error", **kw) -> list[str]:
    return [p.line() for p in study_problems(cfg, **kw) if p.level == level]


def test_the_shipped_configs_and_the_schema_default_calibration_pass(tmp_path):
    for name in ("config.yaml", "paper.yaml", "methods.yaml", "gpu_check.yaml"):
        assert _lines(load_config(REPO / "config" / name)) == [], name
    # A GPTQ method that leaves calibration to the schema, on every study model, full data.
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    cfg["methods"]["gptq-default"] = {"kind": "gptq", "bits": 4, "group_size": 128}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    validated = load_config(path)
    calib = validated["methods"]["gptq-default"]["calibration"]
    assert (calib["source"], calib["n_samples"] * calib["seq_len"]) == ("in_domain", 65536)
    widest = max(widest_input(shape_for_model(m))[0] for m in PAPER["models"].values())
    assert widest == 29568 and calib["n_samples"] * calib["seq_len"] >= 2 * widest
    assert _lines(validated, workdir=tmp_path) == []


def test_too_few_calibration_tokens_for_the_widest_layer_are_refused_with_the_numbers():
    cfg = _study(
        {"llama31_8b": LLAMA8, "qwen25_72b": QWEN72},
        {"none": NONE, "gptq-small": _gptq(source="in_domain", n_samples=12, seq_len=512)},
    )
    [line] = _lines(cfg)
    assert line.startswith("error: methods.gptq-small.calibration: n_samples x seq_len = 12 x")
    assert "6144 tokens" in line and "llama31_8b 14336" in line and "qwen25_72b 29568" in line
    assert "mlp.down_proj" in line and "at least 29568 (e.g. n_samples 58 at seq_len 512" in line
    # allow_rank_deficient is the documented way past it
    cfg["methods"]["gptq-small"]["calibration"]["allow_rank_deficient"] = True
    assert _lines(cfg) == []


def test_a_source_shorter_than_the_windows_is_refused_before_the_run():
    """paper.yaml's former AWQ calibration: 64 x 512 tokens of the ~7,400-token generic text."""
    awq = {"kind": "awq", "bits": 4, "group_size": 128, "zero_point": True}
    awq["calibration"] = {"source": "generic", "n_samples": 64, "seq_len": 512}
    [line] = _lines(_study({"llama31_8b": LLAMA8}, {"none": NONE, "awq": awq}))
    assert line.startswith("error: methods.awq.calibration (source generic): holds 35,")
    assert "at most about 11,8" in line and "fewer than n_samples x seq_len = 32768" in line


def test_a_tokenizer_on_disk_counts_the_source_exactly(tiny_source, tmp_path):
    """The tiny model's own tokenizer, not the character bounds, decides."""
    method = _gptq(source="generic", n_samples=60, seq_len=128)
    method["group_size"] = 32
    cfg = _study({"tiny": {"source": "local", "path": str(tiny_source)}}, {"none": NONE})
    cfg["methods"]["g"] = method
    from tokenizers import Tokenizer

    from biomedquant.quantization.calibration.sources import generic_calibration_texts

    tok = Tokenizer.from_file(str(tiny_source / "tokenizer.json"))
    held = sum(
        len(tok.encode(t, add_special_tokens=False).ids) + 1 for t in generic_calibration_texts()
    )
    method["calibration"]["n_samples"] = held // 128 + 1  # one window more than it holds
    [line] = _lines(cfg, workdir=tmp_path)
    assert f"holds {held} tokens by tiny's tokenizer" in line
    method["calibration"]["n_samples"] = held // 128
    assert _lines(cfg, workdir=tmp_path) == [] and _lines(cfg, "warning", workdir=tmp_path) == []


def test_in_domain_pools_are_counted_from_files_or_their_measured_sizes(tmp_path):
    # Not prepared yet, full data: the registry's measured sizes vouch for 8 datasets...
    cfg = _study({"llama31_8b": LLAMA8}, {"none": NONE, "g": _gptq(source="in_domain")})
    assert study_problems(cfg, workdir=tmp_path) == []
    # ...but LitCovid's splits were not measured: only a warning, counted once prepared.
    cfg["methods"]["g"]["calibration"]["datasets"] = ["litcovid"]
    [line] = _lines(cfg, "warning", workdir=tmp_path)
    assert "methods.g.calibration (source in_domain, train/dev texts): the pools are not" in line
    # Prepared: the file's text is what counts.
    pool = tmp_path / "resources/datasets/litcovid/train.jsonl"
    pool.parent.mkdir(parents=True)
    pool.write_text('{"id": "1", "text": "a short abstract", "labels": []}\n')
    [line] = _lines(cfg, workdir=tmp_path)
    assert "(source in_domain, train/dev texts): holds 17 characters" in line


def test_a_hugging_face_dataset_not_in_the_cache_is_one_warning_for_its_methods(
    tmp_path, monkeypatch
):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    c4 = PAPER["methods"]["gptq-w4g128"]["calibration"]
    cfg = _study(
        {"llama31_8b": LLAMA8},
        {"none": NONE, "a": _gptq(**c4), "b": _gptq(**c4)},
    )
    [line] = _lines(cfg, "warning")
    assert line.startswith(
        "warning: methods.a.calibration (262144 tokens), methods.b.calibration (262144 tokens):"
        " the dataset allenai/c4 is not in this machine's Hugging Face cache"
    )
    (tmp_path / "hub" / "datasets--allenai--c4").mkdir(parents=True)
    assert study_problems(cfg) == []


def test_quantized_methods_without_a_baseline_are_refused():
    [line] = _lines(_study({"llama31_8b": LLAMA8}, {"g": PAPER["methods"]["gptq-w4g128"]}))
    assert line.startswith("error: methods: no method of kind none (the 16-bit baseline)")
    assert "add `none: {kind: none}` to methods" in line
    assert _lines(_study({"llama31_8b": LLAMA8}, {"none": NONE})) == []  # baseline only: fine


def test_a_local_model_path_must_hold_a_model(tmp_path, tiny_source):
    missing = {"source": "local", "path": str(tmp_path / "nowhere")}
    empty = {"source": "local", "path": str(tmp_path)}
    cfg = _study(
        {"gone": missing, "empty": empty, "ok": {"source": "local", "path": str(tiny_source)}},
        {"none": NONE},
    )
    assert _lines(cfg) == [
        f"error: models.gone.path {tmp_path / 'nowhere'} does not exist: give the folder of a"
        " model saved with save_pretrained (config.json and *.safetensors)",
        f"error: models.empty.path {tmp_path} holds no config.json and no *.safetensors: it is"
        " not a model folder (save the model with save_pretrained, weights as safetensors)",
    ]


def test_every_model_and_method_must_fit_the_gpus_a_job_may_ask_for():
    cfg = _study({"llama31_70b": LLAMA70, "llama31_8b": LLAMA8}, {"none": NONE})
    assert _lines(cfg) == []  # 2 GPUs of 80 GiB hold the 16-bit 70B
    cfg["scheduling"] = {**cfg["scheduling"], "max_gpus_per_job": 1}
    [line] = _lines(cfg)
    total = estimate(shape_for_model(LLAMA70), NONE)["total_gb"]
    assert line == (
        f"error: llama31_70b x none needs about {total:.3g} GB of GPU memory, more than"
        " scheduling.max_gpus_per_job = 1 GPUs of scheduling.gpu_gib = 80 GiB hold: raise"
        " either, or drop this model x method (biomedquant plan lists what fits)"
    )
    # On one machine, --resources gpu=N bounds every job.
    cfg["scheduling"]["max_gpus_per_job"] = 8
    [line] = _lines(cfg, hardware=Hardware(local_gpus=1))
    assert line.startswith("error: llama31_70b x none needs 2 GPUs of 80 GiB (about")
    assert "this run gives a job at most gpu=1 (--resources)" in line


def test_gpus_per_job_follow_the_estimate_and_cpu_work_asks_for_none():
    gguf = PAPER["methods"]["gguf-q4_k_m"]
    assert job_gpus(LLAMA70, PAPER["methods"]["rtn-w4g128"], "quantize_model", gpu_gib=80) == 0
    assert job_gpus(LLAMA70, gguf, "quantize_model", gpu_gib=80) == 0
    assert job_gpus(LLAMA70, PAPER["methods"]["gptq-w4g128"], "quantize_model", gpu_gib=80) == 1
    assert job_gpus(LLAMA8, NONE, "infer", gpu_gib=80) == 1
    assert job_gpus(LLAMA70, NONE, "infer", gpu_gib=80) == 2
    assert job_gpus(QWEN72, NONE, "infer", gpu_gib=80) == 4
    assert job_gpus(LLAMA70, PAPER["methods"]["gptq-w4g128"], "infer", gpu_gib=48) == 1
    assert job_gpus(LLAMA70, NONE, "perplexity", gpu_gib=24) == 8
    # 90% of each GPU, one GiB of context per further GPU
    assert gpus_needed(0.9 * 80 * 1024**3 / 1e9, 80) == 1
    assert gpus_needed(0.9 * 80 * 1024**3 / 1e9 + 0.01, 80) == 2
    assert gpus_needed(1000, 80) is None and gpus_needed(150, 80, max_gpus=1) is None


def _workflow(local: bool) -> SimpleNamespace:
    return SimpleNamespace(local_exec=local)


def test_fp8_needs_an_fp8_gpu_here_or_a_node_constraint_on_a_cluster(monkeypatch, capsys):
    import biomedquant.inference.engines.hardware as hardware

    cfg = _study({"llama31_8b": LLAMA8}, {"none": NONE, "fp8": {"kind": "fp8"}})
    for cap in (None, (8, 0)):
        monkeypatch.setattr(hardware, "cuda_capability", lambda cap=cap: cap)
        with pytest.raises(StudyError, match=r"^error: methods fp8: fp8 needs a GPU of compute"):
            check_run_hardware(cfg, _workflow(local=True))
    monkeypatch.setattr(hardware, "cuda_capability", lambda: (9, 0))
    check_run_hardware(cfg, _workflow(local=True))
    monkeypatch.delenv("BIOMEDQUANT_SLURM_FP8_FEATURE", raising=False)
    check_run_hardware(cfg, _workflow(local=False))
    assert "fp8 jobs carry no node constraint" in capsys.readouterr().err
    monkeypatch.setenv("BIOMEDQUANT_SLURM_FP8_FEATURE", "h100")
    check_run_hardware(cfg, _workflow(local=False))
    assert capsys.readouterr().err == ""


def test_every_problem_is_listed_at_once():
    cfg = _study(
        {"llama31_8b": LLAMA8, "gone": {"source": "local", "path": "/nowhere"}},
        {
            "g": _gptq(source="generic", n_samples=12, seq_len=512),
            "h": _gptq(source="generic", n_samples=64, seq_len=512),
        },
    )
    with pytest.raises(StudyError) as err:
        check_study(cfg)
    lines = str(err.value).splitlines()
    assert lines[0] == "the study config has 4 problem(s):"
    starts = [line.split(" ")[1] for line in lines[1:]]
    assert starts == [
        "models.gone.path",
        "methods:",
        "methods.g.calibration:",
        "methods.h.calibration",
    ]


def _bad_study(tmp_path) -> dict:
    """A demo-shaped study with three problems: no baseline, a missing local model, and
    calibration windows the generic text cannot fill."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["models"]["gone"] = {"source": "local", "path": str(tmp_path / "nowhere")}
    cfg["methods"] = {
        "gptq-w4g64": {
            "kind": "gptq",
            "bits": 4,
            "group_size": 64,
            "calibration": {"source": "generic", "n_samples": 64, "seq_len": 512},
        }
    }
    return cfg


def test_snakefile_plan_and_doctor_refuse_a_config_with_the_same_lines(tmp_path):
    cfg = _bad_study(tmp_path)
    wd = copy_workflow(tmp_path / "wf", cfg)
    config_file = wd / "config" / "study.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    expected = [
        p.text for p in study_problems(load_config(config_file), workdir=wd) if p.level == "error"
    ]
    assert len(expected) == 3

    snake = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(config_file)],
        cwd=wd,
        capture_output=True,
        text=True,
    )
    plan = subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "plan", "--config", str(config_file)],
        cwd=wd,
        capture_output=True,
        text=True,
    )
    doctor = subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "doctor", "--config", str(config_file)],
        cwd=wd,
        capture_output=True,
        text=True,
    )
    assert snake.returncode != 0 and plan.returncode != 0 and doctor.returncode != 0
    assert "Building DAG of jobs" not in snake.stdout + snake.stderr  # refused before planning
    for out, prefix in ((snake.stdout + snake.stderr, ""), (plan.stderr, "biomedquant plan: ")):
        errors = [line for line in out.splitlines() if line.startswith(f"{prefix}error: ")]
        assert [line[len(f"{prefix}error: ") :] for line in errors] == expected
    found = [
        line.split(": ", 1)[1] for line in doctor.stdout.splitlines() if line.startswith("[FAIL]")
    ]
    assert found == expected


def test_the_fit_check_sizes_jobs_for_the_gpu_the_config_names():
    """scheduling.gpu sets the GPU memory the check sizes jobs for, as the requests do: a 70B
    model in 16-bit on one-GPU jobs of L4s (24 GiB) does not fit; on H100s (80 GiB) it needs
    two GPUs, which max_gpus_per_job 1 refuses too, naming 80 GiB."""
    cfg = copy.deepcopy(PAPER)
    cfg["scheduling"] = {**cfg["scheduling"], "gpu": "l4", "max_gpus_per_job": 1}
    cfg["scheduling"].pop("gpu_gib", None)
    lines = [p.line() for p in study_problems(cfg) if p.level == "error" and p.topic == "fit"]
    assert any("llama31_70b x none" in line and "gpu_gib = 24 GiB" in line for line in lines)
    cfg["scheduling"]["gpu"] = "h100"
    lines = [p.line() for p in study_problems(cfg) if p.level == "error" and p.topic == "fit"]
    assert any("llama31_70b x none" in line and "gpu_gib = 80 GiB" in line for line in lines)


def test_a_deployed_prompting_method_the_study_does_not_run_is_refused():
    cfg = copy.deepcopy(PAPER)
    cfg["prompts"] = ["zero-shot", "five-shot"]
    cfg["recommendation"] = {**cfg["recommendation"], "deploy_prompts": ["five-shot", "cot"]}
    lines = [p.line() for p in study_problems(cfg) if p.topic == "recommendation"]
    assert lines == [
        "error: recommendation.deploy_prompts names 'cot', which the study does not run"
        " (prompts: zero-shot, five-shot): add it to prompts or drop it"
    ]
