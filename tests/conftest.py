"""Shared fixtures: a tiny randomly initialised chat model built here, and workflow copies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from biomedquant.datasets.registry import DATASETS

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "bionlp-benchmarks"

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def load_benchmark(name: str):
    """A script of ``benchmarks/`` as a module (what it simulates, tests reuse)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with a BPE tokenizer trained on the demo texts and a ChatML template.

    Random weights, seeded and spread wide enough (:func:`spread_weights`) that most prompts
    get their own deterministic nonsense: a test comparing generations (resume, cache,
    shards, concurrent jobs) then sees a stale or swapped output, which an answer that is
    the same empty string for every prompt would hide. Hidden size 64 keeps GPTQ's group
    size 32 valid.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from biomedquant.study.rehearsal.tiny_models import spread_weights, train_tokenizer

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    hf_tok = train_tokenizer(
        specials, CHATML, bos="<|im_start|>", eos="<|im_end|>", pad="<pad>", vocab_size=600
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    spread_weights(model, seed)
    model = model.to(torch.float16)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    hf_tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """A tiny model as a user would have it on disk (source 'local')."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_fetched(tiny_source, tmp_path_factory) -> Path:
    """The tiny model after the fetch stage (the 'none' artifact, with provenance)."""
    from biomedquant.models.fetch import fetch_model

    out = tmp_path_factory.mktemp("fetched") / "none"
    fetch_model("tiny", {"source": "local", "path": str(tiny_source)}, out)
    return out


@pytest.fixture(scope="session")
def demo_prepared(tmp_path_factory) -> dict[str, Path]:
    """Every demo test split, downloaded from the packaged mirror and prepared."""
    from biomedquant.datasets.download import download_split
    from biomedquant.datasets.prepare import prepare_split

    root = tmp_path_factory.mktemp("datasets")
    out = {}
    for name in DATASETS:
        raw = root / f"{name}.raw"
        download_split(name, "test", "demo", raw)
        out[name] = root / f"{name}.jsonl"
        prepare_split(name, "test", raw, out[name])
    return out


def copy_workflow(dest: Path, config: dict) -> Path:
    """A runnable copy of the workflow in ``dest`` whose default config is ``config``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "envs"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy2(src, dest / name)
    (dest / "config").mkdir()
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    gpus: int = 1,
) -> subprocess.CompletedProcess:
    """Snakemake in ``workdir`` on one core, its jobs sharing ``gpus`` GPUs (the study check
    refuses a job that needs more than that)."""
    # --resources takes several values: it goes last, after any targets.
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "1", "--resources", f"gpu={gpus}"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def numbered_items(demo_prepared: dict[str, Path], path: Path, n: int) -> Path:
    """``n`` distinct PubMedQA-shaped items from the demo sample (questions numbered), written
    to ``path``: enough prompts for a job to be killed mid-run or cut into shards."""
    from biomedquant.common.files import read_jsonl, write_jsonl

    base = read_jsonl(demo_prepared["pubmedqa"])
    items = []
    for i in range(n):
        rec = dict(base[i % len(base)])
        rec["id"] = f"q{i}"
        rec["question"] = f"({i}) {rec['question']}"
        items.append(rec)
    write_jsonl(path, items)
    return path


def assert_outputs_vary(outputs: list[str], at_least: float = 0.3) -> None:
    """Items have outputs of their own: the generations a test compares (resumed, cached,
    sharded, concurrent) would show a stale, swapped or misplaced item, which a model
    answering the same string to every prompt would hide. No item's output is empty, no two
    neighbours' are equal, and at least ``at_least`` of them are distinct: the items of
    :func:`numbered_items` repeat ten questions under new numbers, and a two-layer random
    model tells only some of those apart (22 to 35 of 60 distinct, by prompting method)."""
    assert outputs and all(isinstance(o, str) for o in outputs), outputs
    assert len(set(outputs)) >= at_least * len(outputs), f"outputs too alike: {outputs}"
    assert all(o.strip() for o in outputs), outputs
    assert all(a != b for a, b in zip(outputs, outputs[1:], strict=False)), outputs


# The suite runs on every core (pytest-xdist: `-n auto --dist loadfile` in pyproject.toml, a
# file's tests on one worker, its module fixtures built once). These files hold the longest
# tests (each a whole workflow run, minutes): they start first, so the short tests fill the
# other cores meanwhile instead of waiting for them at the end (`--no-loadscope-reorder` keeps
# this order).
LONGEST_FIRST = (
    "tests/study/test_rehearsal.py",
    "tests/workflow/test_demo.py",
    "tests/workflow/test_workflow.py",  # with the report and notebook tests: the tiny study
    "tests/report/test_report.py",
    "tests/workflow/test_notebook.py",
    "tests/workflow/test_slurm.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files of :data:`LONGEST_FIRST` first, in its order; a file's tests keep theirs."""

    def rank(item: pytest.Item) -> int:
        name = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable
