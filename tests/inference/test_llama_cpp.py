"""GGUF on the tiny model through llama.cpp: convert, quantize with llama.cpp's quantizer,
generate and score perplexity with the llama.cpp engine. Skipped when llama-cpp-python (the
``llamacpp`` extra, compiled from source) is not installed."""

from __future__ import annotations

import math

import pytest

pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed: pip install 'biomedquant[llamacpp]'",
)

from biomedquant.common.files import read_json  # noqa: E402
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.estimator import weight_bytes  # noqa: E402


@pytest.fixture(scope="module")
def tiny_ggufs(tiny_fetched, tmp_path_factory):
    from biomedquant.quantization import quantize_model

    root = tmp_path_factory.mktemp("gguf")
    out = {}
    for kind in ("F16", "Q8_0", "Q4_K_M"):
        method = {"kind": "gguf", "type": kind}
        quantize_model(tiny_fetched, root / kind, method, seed=0)
        out[kind] = (root / kind, method)
    return out


def test_artifact_records_types_and_its_bytes_equal_the_estimate(tiny_fetched, tiny_ggufs):
    shape = shape_for_model({"source": "local", "path": str(tiny_fetched)})
    for kind, (folder, method) in tiny_ggufs.items():
        prov = read_json(folder / "provenance.json")
        assert prov["gguf_type"] == kind and prov["llama_cpp_python"]
        assert (folder / "model.gguf").stat().st_size == prov["file_bytes"]
        assert (folder / "tokenizer.json").is_file() and (folder / "config.json").is_file()
        # Every tensor's type predicted: the estimate is the file's tensor bytes exactly.
        assert prov["tensor_bytes"] == weight_bytes(shape, method), kind
    # Hidden size 64 is no multiple of 256: Q4_K_M falls back to 32-blocks (Q5_0, Q8_0).
    types = read_json(tiny_ggufs["Q4_K_M"][0] / "provenance.json")["tensor_types"]
    assert "Q4_K" not in types and {"Q5_0", "Q8_0", "F32"} <= set(types)


def test_llama_cpp_perplexity_equals_transformers_on_the_f16_file(tiny_fetched, tiny_ggufs):
    """Same weights, two engines: the mean log-likelihood agrees to kernel rounding."""
    from biomedquant.inference.engines import llama_cpp
    from biomedquant.inference.engines.transformers import load_model
    from biomedquant.inference.perplexity import token_nll

    texts = ["the patient was given aspirin", "a b c d e f g h i j", "hello there, how are you"]
    folder, method = tiny_ggufs["F16"]
    engine = llama_cpp.LlamaCppEngine.load(folder, method, logits_all=True)
    nll_cpp, n_cpp = llama_cpp.token_nll(engine, engine.tokenizer, texts)
    info = engine.info
    engine.close()
    model, tok_hf, _ = load_model(tiny_fetched, {"kind": "none"})
    nll_hf, n_hf = token_nll(model, tok_hf, texts)
    assert n_cpp == n_hf > 0 and info["backend"] == "llama_cpp"
    assert nll_cpp / n_cpp == pytest.approx(nll_hf / n_hf, rel=2e-3)


def test_llama_cpp_engine_runs_an_inference_job_and_caches_it(tiny_ggufs, demo_prepared, tmp_path):
    from biomedquant.inference.decoding import Decoding
    from biomedquant.inference.job import run_inference

    folder, method = tiny_ggufs["Q8_0"]
    args = {
        "model_dir": folder,
        "method": method,
        "dataset": "pubmedqa",
        "data_path": demo_prepared["pubmedqa"],
        "prompt_method": "zero-shot",
        "decoding": Decoding().capped(6),
        "cache_dir": tmp_path / "cache",
    }
    run = run_inference(out_path=tmp_path / "a.jsonl", run_path=tmp_path / "a.run.json", **args)
    assert run["backend"] == "llama_cpp" and run["n_generated"] == run["n_items"] == 10
    assert run["device"] == "cpu" and run["compute_dtype"] == "Q8_0"
    assert run["prompt_tokens_processed"] > 0 and run["prompt_tokens_per_second"] > 0
    assert 0 < run["generation_tokens"] <= 10 * 6 and run["generation_tokens_per_second"] > 0
    assert run["weights_bytes"] > 0 and run["size_on_disk_bytes"] > run["weights_bytes"]
    # every generation says why it stopped, in the engines' shared vocabulary
    assert set(run["stop_reason"]) <= {"end_of_turn", "length", "stop_string"}
    again = run_inference(out_path=tmp_path / "b.jsonl", run_path=tmp_path / "b.run.json", **args)
    assert again["n_generated"] == 0 and again["n_from_cache"] == 10


def test_sampled_chains_follow_the_job_seed_not_the_prompts_place(tiny_ggufs):
    """A prompt's sampled chains are the same alone or after another prompt (as in a resumed
    job, or one whose other prompts came from the cache), and change with the job's seed."""
    from biomedquant.inference.decoding import Sampling
    from biomedquant.inference.engines import llama_cpp

    folder, method = tiny_ggufs["Q8_0"]
    engine = llama_cpp.LlamaCppEngine.load(folder, method)
    try:

        def chains(prompts: list[str], seed: int) -> list[list[str]]:
            sampling = Sampling(max_new_tokens=12, samples=3, temperature=1.0, seed=seed)
            return [g["outputs"] for g in engine.generate(prompts, sampling)]

        first, second = "The patient was given", "Aspirin is used to treat"
        both = chains([first, second], seed=42)
        assert chains([second], seed=42) == both[1:]
        assert chains([second, first], seed=42) == both[::-1]
        # three chains of one prompt, each its own seed; another job seed, other chains
        assert len(set(both[1])) > 1
        assert chains([second], seed=7) != both[1:]
    finally:
        engine.close()
    assert llama_cpp.chain_seed(42, 0, second) == llama_cpp.chain_seed(42, 0, second)
    assert len({llama_cpp.chain_seed(42, c, second) for c in range(3)}) == 3


def test_gguf_perplexity_through_the_perplexity_step(tiny_ggufs, demo_prepared, tmp_path):
    from biomedquant.inference.perplexity import run_perplexity

    folder, method = tiny_ggufs["Q4_K_M"]
    rec = run_perplexity(
        model_dir=folder,
        method=method,
        data_paths=[demo_prepared["pubmedqa"]],
        out_path=tmp_path / "ppl.json",
        max_length=64,
    )
    assert math.isfinite(rec["perplexity"]) and rec["perplexity"] > 1
    assert rec["compute_dtype"] == "Q4_K_M" and rec["n_texts"] == 10
