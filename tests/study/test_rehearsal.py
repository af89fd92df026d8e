"""The rehearsal: stand-ins per model family, its Hugging Face cache, its config, and (marked
``rehearsal``) the paper config's rehearsal through the real workflow end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from biomedquant.common.files import read_jsonl
from biomedquant.datasets.registry import get_dataset
from biomedquant.inference.prompting import DEFAULT_SYSTEM_PROMPT, builder
from biomedquant.study.rehearsal.config import model_family, why_not_here, write_rehearsal
from biomedquant.study.rehearsal.hf_cache import fixed_commit, put_in_cache
from biomedquant.study.rehearsal.tiny_models import FAMILIES, build_tiny_model

REPO = Path(__file__).resolve().parents[2]
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
HEX40 = re.compile(r"^[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stand_ins")
    return {f: build_tiny_model(root / f, FAMILIES[f], f"x/{f}") for f in FAMILIES}


def test_every_paper_model_has_a_family_with_a_stand_in():
    families = {name: model_family(name, spec) for name, spec in PAPER["models"].items()}
    assert set(families.values()) == {"llama", "qwen2", "mistral", "gemma2"}
    assert families["biomistral_7b"] == "mistral" and families["openbiollm_70b"] == "llama"
    with pytest.raises(ValueError, match="model x: its architecture is unknown here"):
        model_family("x", {"source": "hf", "id": "nobody/unknown-model"})


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_renders_every_prompt_of_the_paper_with_its_system_text(
    family, stand_ins, demo_prepared
):
    """Every dataset x prompting method of config/paper.yaml through the stand-in's chat
    template: the system text is in the prompt (its own turn, or Gemma 2's first user turn),
    the prompt ends where the model answers, and the tokens round-trip."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(stand_ins[family])
    system = PAPER.get("prompting", {}).get("system_prompt") or DEFAULT_SYSTEM_PROMPT
    opens_answer = {
        "llama": "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "qwen2": "<|im_start|>assistant\n",
        "mistral": "[/INST]",
        "gemma2": "<start_of_turn>model\n",
    }[family]
    for dataset in PAPER["datasets"]:
        spec = get_dataset(dataset)
        items = read_jsonl(demo_prepared[dataset])
        for method in PAPER["prompts"]:
            build = builder(method, tok, pool=items[1:], spec=spec, seed=0, system_prompt=system)
            prompt = build(spec, items[0])
            assert system in prompt, (family, dataset, method)
            assert prompt.endswith(opens_answer), (family, dataset, method)
            if family == "gemma2":
                assert "<start_of_turn>system" not in prompt
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            assert tok.decode(ids) == prompt


def test_stand_ins_resolve_offline_from_their_cache_at_a_pinned_commit(stand_ins, tmp_path):
    """huggingface_hub, offline, returns the snapshot of the pinned commit: what fetch_model
    runs for `source: hf` with a pre-filled cache."""
    commit = fixed_commit("meta-llama/Llama-3.1-8B-Instruct", "llama")
    assert HEX40.match(commit)
    home = tmp_path / "hf_home"
    put_in_cache(home, "meta-llama/Llama-3.1-8B-Instruct", stand_ins["llama"], commit)
    script = (
        "from huggingface_hub import snapshot_download; print(snapshot_download("
        f"repo_id='meta-llama/Llama-3.1-8B-Instruct', revision='{commit}'))"
    )
    from biomedquant.cli.rehearsal import rehearsal_env

    env = rehearsal_env(home)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    snap = Path(out.stdout.strip().splitlines()[-1])
    assert snap.name == commit and (snap / "config.json").is_file()
    assert (snap / "model.safetensors").is_symlink()  # files are links to blobs, as a real cache
    with pytest.raises(subprocess.CalledProcessError):  # another commit is not there
        script_other = script.replace(commit, "0" * 40)
        subprocess.run(
            [sys.executable, "-c", script_other], env=env, capture_output=True, check=True
        )


def test_paper_rehearsal_config_has_the_study_shape(tmp_path):
    """Same datasets, prompting methods and (runnable) methods as the paper; one stand-in per
    family, pinned to a commit; what cannot run here is skipped with its reason."""
    r = write_rehearsal(PAPER, tmp_path, limit=2)
    cfg = yaml.safe_load(r.config_path.read_text())
    assert cfg["datasets"] == PAPER["datasets"] and cfg["prompts"] == PAPER["prompts"]
    assert set(cfg["models"]) == {"llama31_8b", "qwen25_7b", "mistral_7b", "gemma2_9b"}
    for name, spec in cfg["models"].items():
        assert spec["source"] == "hf" and spec["id"] == PAPER["models"][name]["id"]
        assert HEX40.match(spec["revision"])
    assert cfg["strict_revisions"] is True and cfg["data"]["limit"] == 2
    assert cfg["cpu_threads"] == 1  # one thread per job: the jobs share the cores
    assert (
        r.stand_ins["qwen25_72b"] == "qwen25_7b" and r.stand_ins["mmed_llama3_8b"] == "llama31_8b"
    )
    assert list(cfg["methods"]) == [m for m in PAPER["methods"] if m not in r.skipped]
    for name, reason in r.skipped.items():
        assert reason == why_not_here(PAPER["methods"][name])
    calibrated = [s for s in cfg["methods"].values() if "calibration" in s]
    assert calibrated and all(s["calibration"]["source"] == "generic" for s in calibrated)
    summary = json.loads((tmp_path / "rehearsal.json").read_text())
    assert summary["methods_skipped"] == r.skipped


def test_without_a_gpu_the_rehearsal_runs_one_gpu_class_job_per_core(monkeypatch, tmp_path):
    """`gpu` guards a device; with none, quantize, infer and perplexity jobs run side by side
    on the cores (one thread each) instead of queueing behind one fictitious GPU."""
    import torch

    from biomedquant.cli.rehearsal import snakemake_command

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    command = snakemake_command(tmp_path, 2, [])
    assert command[command.index("--resources") + 1] == "gpu=2"
    assert command[command.index("--cores") + 1] == "2"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    command = snakemake_command(tmp_path, 2, [])
    assert command[command.index("--resources") + 1] == "gpu=1"


def test_fit_estimate_reads_a_cached_models_own_config(tmp_path, stand_ins, monkeypatch):
    """A model in the local cache is estimated from the config.json a run will load."""
    from biomedquant.models.shapes import MODEL_SHAPES, shape_for_model

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    spec = {"source": "hf", "id": "google/gemma-2-9b-it", "revision": "main"}
    assert shape_for_model(spec) == MODEL_SHAPES["google/gemma-2-9b-it"]  # not cached: shipped
    put_in_cache(tmp_path, "google/gemma-2-9b-it", stand_ins["gemma2"], "a" * 40)
    shape = shape_for_model(spec)  # main -> the cached commit
    assert shape.hidden == 128 and shape.layers == 2


# --- the paper's rehearsal, end to end ---------------------------------------------------

SKIP_REHEARSAL = os.environ.get("BIOMEDQUANT_SKIP_REHEARSAL") == "1"


@pytest.fixture(scope="module")
def paper_rehearsal(tmp_path_factory) -> Path:
    """`biomedquant rehearse --run` on config/paper.yaml in a copy of the workflow, then its
    report: the paper's shape, on this machine."""
    from conftest import copy_workflow

    wd = copy_workflow(tmp_path_factory.mktemp("rehearsal") / "project", {})
    out = wd / ".test" / "rehearsal"
    started = time.monotonic()
    paper = str(REPO / "config/paper.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "rehearse", "--config", paper,
         "--out", str(out), "--run", "--cores", "2"],
        cwd=wd, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    print(f"rehearsal of config/paper.yaml: {time.monotonic() - started:.0f} s")
    from biomedquant.cli.rehearsal import rehearsal_env, snakemake_command

    report = out / "run" / "results" / "report.html"
    proc = subprocess.run(
        snakemake_command(out, 1, ["--report", str(report)]),
        cwd=wd, env=rehearsal_env(out / "hf_home"), capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.rehearsal
@pytest.mark.skipif(SKIP_REHEARSAL, reason="BIOMEDQUANT_SKIP_REHEARSAL=1 (CI never sets it)")
def test_paper_rehearsal_runs_every_family_and_method_kind_end_to_end(paper_rehearsal):
    import csv

    from biomedquant.report.figures.registry import FIGURES

    summary = json.loads((paper_rehearsal / "rehearsal.json").read_text())
    assert set(summary["models"].values()) == {"llama", "qwen2", "mistral", "gemma2"}
    skipped = summary["methods_skipped"]
    assert {"awq-w4g128", "fp8"} <= set(skipped)  # no CUDA GPU here
    ran = summary["methods_run"]
    results = paper_rehearsal / "run" / "results"
    scores = list(csv.DictReader((results / "tables/scores.csv").open()))
    cells = {(r["model"], r["method"], r["dataset"], r["prompt"]) for r in scores}
    assert cells == {
        (m, k, d, p)
        for m in summary["models"]
        for k in ran
        for d in PAPER["datasets"]
        for p in PAPER["prompts"]
    }
    # one compute precision for every method a model runs under transformers (16-bit, GPTQ,
    # RTN, bitsandbytes): a difference between methods is quantization, not arithmetic; GGUF
    # runs under llama.cpp, whose records name the file's own type
    dtypes: dict[tuple[str, str], set[str]] = {}
    for path in (results / "generations").rglob("*.run.json"):
        run = json.loads(path.read_text())
        model = path.relative_to(results / "generations").parts[0]
        dtypes.setdefault((model, run["backend"]), set()).add(run["compute_dtype"])
    transformers_runs = {k: v for k, v in dtypes.items() if k[1] == "transformers"}
    assert {m for m, _ in transformers_runs} == set(summary["models"])
    assert all(len(v) == 1 for v in transformers_runs.values()), transformers_runs
    recommendation = list(csv.DictReader((results / "tables/recommendation.csv").open()))
    assert {r["model"] for r in recommendation} == set(summary["models"])
    evidence = list(csv.DictReader((results / "tables/recommendation_evidence.csv").open()))
    assert {r["method"] for r in evidence} == set(ran) - {"none"}
    deploy = list(csv.DictReader((results / "tables/deployment_choice.csv").open()))
    assert {r["scope"] for r in deploy} == {*summary["models"], "all models"}
    # on a CPU no FP8 or AWQ method is chosen; every row names what to deploy, or why nothing
    for r in deploy:
        assert r["deploy"] or r["status"].startswith("nothing runs here"), r
        if r["hardware"] == "CPU":
            assert r["method"] not in {m for m in ran if m.startswith(("fp8", "awq"))}
    for name in FIGURES:
        assert (results / f"figures/{name}.png").stat().st_size > 5_000, name


@pytest.mark.rehearsal
@pytest.mark.skipif(SKIP_REHEARSAL, reason="BIOMEDQUANT_SKIP_REHEARSAL=1 (CI never sets it)")
def test_paper_rehearsal_report_renders_every_figure_and_table(paper_rehearsal, tmp_path):
    from support.chromium import CHROMIUM, run_chromium

    from biomedquant.report.figures.registry import FIGURES

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    report = paper_rehearsal / "run" / "results" / "report.html"
    dom = run_chromium(["--dump-dom", report.resolve().as_uri()], tmp_path / "profile")
    assert dom.returncode == 0 and "<body" in dom.stdout, dom.stderr[-3000:]
    rendered = dom.stdout.split('<div id="app">', 1)[1].split("<script", 1)[0]
    for name in FIGURES:
        assert f"{name}.png" in rendered, name
    text = report.read_text(encoding="utf-8")
    for page in ("scores", "comparisons", "memory", "recommendation", "configuration"):
        assert f"{page}.html" in text, page
    summary = json.loads((paper_rehearsal / "rehearsal.json").read_text())
    for model in summary["models"]:
        assert model in text, model
