"""Deployment formats without llama.cpp: GGUF block layouts and type mix in the fit estimator,
the GGUF converter (checked by transformers' own GGUF reader), and the hardware that AWQ and
FP8 need, named when it is missing."""

from __future__ import annotations

import pytest

from biomedquant.inference.engines import engine_for, require_hardware
from biomedquant.inference.engines.hardware import require_fp8_gpu
from biomedquant.methods import gguf_layout as gl
from biomedquant.methods.kinds import bits, linear_bytes_per_weight
from biomedquant.models.shapes import ModelShape
from biomedquant.planning.estimator import weight_bytes


def test_block_layouts_are_ggmls_structs():
    """Bytes per block from ggml's block structs (scales, mins, packed quants)."""
    by_hand = {
        "Q8_0": (32, 2 + 32),  # f16 scale + 32 int8
        "Q4_0": (32, 2 + 16),  # f16 scale + 32 nibbles
        "Q5_0": (32, 2 + 4 + 16),
        "Q4_K": (256, 2 + 2 + 12 + 128),  # d, dmin, 6-bit scales/mins, nibbles
        "Q5_K": (256, 2 + 2 + 12 + 32 + 128),
        "Q6_K": (256, 128 + 64 + 16 + 2),  # low nibbles, high 2 bits, int8 scales, d
    }
    for name, (block, nbytes) in by_hand.items():
        assert (gl.LAYOUTS[name].block, gl.LAYOUTS[name].nbytes) == (block, nbytes), name
    assert gl.LAYOUTS["Q4_K"].bytes_per_weight == 144 / 256 == 0.5625
    assert gl.LAYOUTS["Q6_K"].bytes_per_weight == 210 / 256


def test_m_mixes_give_more_bits_to_the_layers_llama_cpp_picks():
    # 32 layers: the first and last eighth (0-3, 28-31) and every third between from 6.
    more = [i for i in range(32) if gl.use_more_bits(i, 32)]
    assert more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert gl.tensor_type("Q4_K_M", "attn_v", 4096, layer=0, n_layers=32) == "Q6_K"
    assert gl.tensor_type("Q4_K_M", "attn_v", 4096, layer=4, n_layers=32) == "Q4_K"
    assert gl.tensor_type("Q4_K_M", "attn_q", 4096, layer=0, n_layers=32) == "Q4_K"
    assert gl.tensor_type("Q5_K_M", "ffn_down", 14336, layer=31, n_layers=32) == "Q6_K"
    assert gl.tensor_type("Q4_K_M", "output", 4096) == "Q6_K"
    assert gl.tensor_type("Q8_0", "output", 4096) == "Q8_0"
    assert gl.tensor_type("Q4_0", "output", 4096) == "Q6_K"


def test_rows_that_blocks_do_not_tile_fall_back_as_llama_cpp_does():
    # SmolLM2's hidden size 576 is 2.25 blocks of 256.
    assert gl.tensor_type("Q4_K_M", "attn_q", 576) == "Q5_0"
    assert gl.tensor_type("Q5_K_M", "ffn_gate", 576) == "Q5_1"
    assert gl.tensor_type("Q6_K", "attn_k", 576) == "Q8_0"
    assert gl.tensor_type("Q4_K_M", "output", 576) == "Q8_0"
    assert gl.tensor_type("Q8_0", "attn_q", 48) == "F16"  # not even a multiple of 32


def test_gguf_weight_bytes_by_hand():
    shape = ModelShape(
        layers=1,
        hidden=256,
        intermediate=512,
        heads=4,
        kv_heads=4,
        vocab=1000,
        tied_embeddings=True,
    )
    linear = 4 * 256 * 256 + 3 * 256 * 512  # q, k, v, o; gate, up, down
    norms = 3 * 256  # two per block and the final one, F32
    q8 = weight_bytes(shape, {"kind": "gguf", "type": "Q8_0"})
    assert q8 == (linear + 1000 * 256) * 34 / 32 + 4 * norms
    # Q4_K_M, one layer: attn_v and ffn_down in layer 0 take Q6_K; the tied embeddings are the
    # output head (Q6_K); the rest Q4_K.
    q4 = weight_bytes(shape, {"kind": "gguf", "type": "Q4_K_M"})
    six = 256 * 256 + 512 * 256 + 1000 * 256
    four = linear - 256 * 256 - 512 * 256
    assert q4 == six * 210 / 256 + four * 144 / 256 + 4 * norms
    assert linear_bytes_per_weight({"kind": "gguf", "type": "Q4_0"}) == 18 / 32
    assert bits({"kind": "gguf", "type": "Q5_K_M"}) == 5


def test_awq_and_fp8_bytes_per_weight():
    # AWQ: GPTQ's packing without the group index (4 bits, a 16-bit scale and 4-bit zero / 128).
    assert linear_bytes_per_weight({"kind": "awq", "bits": 4, "group_size": 128}) == pytest.approx(
        0.5 + 2.5 / 128
    )
    assert linear_bytes_per_weight({"kind": "fp8"}) == 1.0
    assert bits({"kind": "fp8"}) == 8 and bits({"kind": "awq", "bits": 4}) == 4


def test_unknown_gguf_type_is_named():
    with pytest.raises(ValueError, match="unknown GGUF type 'Q3_K_XL'.*Q4_K_M"):
        gl.method_file_type({"kind": "gguf", "type": "Q3_K_XL"})


def _has_fp8_gpu() -> bool:
    try:
        require_fp8_gpu()
    except RuntimeError:
        return False
    return True


def test_engines_per_kind_and_fp8_jobs_say_why_they_cannot_run():
    assert engine_for({"kind": "gguf", "type": "Q8_0"}, "transformers") == "llama_cpp"
    assert engine_for({"kind": "gptq", "bits": 4}, "vllm") == "vllm"
    assert engine_for({"kind": "gptq", "bits": 3}, "vllm") == "transformers"
    with pytest.raises(ValueError, match="runs GGUF files only"):
        engine_for({"kind": "gptq", "bits": 4}, "llama_cpp")
    if _has_fp8_gpu():
        pytest.skip("this machine has an FP8 GPU: fp8 jobs run")
    with pytest.raises(RuntimeError, match=r"fp8 methods need .*compute capability 8\.9"):
        require_hardware({"kind": "fp8"})


def test_fp8_inference_job_stops_before_loading(tiny_fetched, demo_prepared, tmp_path):
    from biomedquant.inference.decoding import Decoding
    from biomedquant.inference.job import run_inference

    if _has_fp8_gpu():
        pytest.skip("this machine has an FP8 GPU: fp8 jobs run")
    with pytest.raises(RuntimeError, match="no CUDA GPU|compute capability"):
        run_inference(
            model_dir=tiny_fetched,
            method={"kind": "fp8"},
            dataset="pubmedqa",
            data_path=demo_prepared["pubmedqa"],
            prompt_method="zero-shot",
            out_path=tmp_path / "p.jsonl",
            run_path=tmp_path / "p.run.json",
            decoding=Decoding().capped(2),
        )
    assert not (tmp_path / "p.jsonl").exists()


def test_awq_on_a_cpu_names_the_missing_gpu(tiny_fetched, tmp_path):
    import torch

    from biomedquant.quantization import quantize_model

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: AWQ quantizes here")
    calibration = {"source": "generic", "n_samples": 4}
    method = {"kind": "awq", "bits": 4, "group_size": 32, "calibration": calibration}
    with pytest.raises(RuntimeError, match="awq quantization needs an NVIDIA GPU"):
        quantize_model(tiny_fetched, tmp_path / "awq", method)
    assert not (tmp_path / "awq").exists()


def test_converted_gguf_reads_back_as_the_same_model(tiny_fetched, tmp_path):
    """transformers' own GGUF reader (which undoes llama.cpp's q/k row order) gets back the
    exact logits of the 16-bit model from the converted F16 file."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from biomedquant.quantization.gguf_convert import convert_to_gguf

    facts = convert_to_gguf(tiny_fetched, tmp_path / "model.gguf")
    assert facts["architecture"] == "llama" and facts["tokenizer"] == "gpt2"
    shutil.copy2(tiny_fetched / "config.json", tmp_path / "config.json")
    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11]])
    ref = AutoModelForCausalLM.from_pretrained(tiny_fetched, dtype=torch.float32)
    back = AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file="model.gguf", dtype=torch.float32
    )
    with torch.inference_mode():
        assert torch.equal(ref(ids).logits, back(ids).logits)


def test_converted_gemma2_runs_in_llama_cpp_as_in_transformers(tmp_path):
    """Gemma 2 (norms stored as 1 + w, soft-capping, sliding window on alternate layers):
    llama.cpp's logits from the converted F16 file equal transformers' float32 logits of the
    16-bit model up to float arithmetic, and pick the same next token at every position."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from biomedquant.quantization.gguf_convert import convert_to_gguf
    from biomedquant.study.rehearsal.tiny_models import FAMILIES, build_tiny_model

    llama_cpp = pytest.importorskip("llama_cpp")
    src = build_tiny_model(tmp_path / "gemma2", FAMILIES["gemma2"], "google/gemma-2-9b-it")
    facts = convert_to_gguf(src, tmp_path / "model.gguf")
    assert facts["architecture"] == "gemma2"
    ids = [2, 17, 42, 99, 7, 3, 250, 11, 300, 12]
    ref = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    with torch.inference_mode():
        want = ref(torch.tensor([ids])).logits[0].numpy()
    llm = llama_cpp.Llama(
        model_path=str(tmp_path / "model.gguf"), logits_all=True, n_ctx=64, verbose=False
    )
    llm.eval(ids)
    got = np.asarray(llm.scores[: len(ids)])
    assert np.abs(got - want).max() < 5e-3 * np.abs(want).max()
    assert (got.argmax(-1) == want.argmax(-1)).all()


def test_converter_names_an_architecture_it_does_not_know(tmp_path):
    import json

    from biomedquant.quantization.gguf_convert import convert_to_gguf

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mixtral"}))
    with pytest.raises(ValueError, match="model_type 'mixtral'.*BIOMEDQUANT_GGUF_CONVERTER"):
        convert_to_gguf(tmp_path, tmp_path / "x.gguf")


def test_stop_strings_cut_before_the_first_one():
    # the llama.cpp engine cuts with the engines' shared cut_at_stop
    from biomedquant.inference.engines.base import cut_at_stop

    assert cut_at_stop("Answer: yes\nQuestion: next", ["\nQuestion:", "###"], ended=False) == (
        "Answer: yes",
        "stop_string",
    )
    assert cut_at_stop("a ### b \nQuestion: c", ["\nQuestion:", "###"], ended=False) == (
        "a ",
        "stop_string",
    )
    assert cut_at_stop("no stop here", ["###"], ended=False) == ("no stop here", "length")


def test_cpu_deployment_rows_add_tokens_and_seconds_over_runs(tmp_path):
    import json

    from biomedquant.analysis.cpu_deployment import cpu_deployment_rows, write_cpu_deployment
    from biomedquant.report.figures.registry import draw_figure

    def run(method, dataset, **extra):
        path = tmp_path / "m" / method / dataset / "zero-shot.run.json"
        path.parent.mkdir(parents=True)
        rec = {"method": {"kind": method.split("-")[0]}, "device": "cpu", "n_generated": 8}
        path.write_text(json.dumps({**rec, **extra}))
        return path

    cpp = {"backend": "llama_cpp", "size_on_disk_bytes": 1e8, "load_seconds": 2.0}
    paths = [
        run(
            "gguf-q4",
            "hoc",
            prompt_tokens_processed=300,
            prompt_seconds=3.0,
            generation_tokens=40,
            generation_seconds=4.0,
            peak_host_rss_bytes=7e8,
            **cpp,
        ),
        run(
            "gguf-q4",
            "ddi",
            prompt_tokens_processed=100,
            prompt_seconds=2.0,
            generation_tokens=20,
            generation_seconds=1.0,
            peak_host_rss_bytes=9e8,
            **cpp,
        ),
        run(
            "none",
            "hoc",
            backend="transformers",
            new_tokens=30,
            generate_seconds=10.0,
            peak_host_rss_bytes=1.2e9,
        ),
    ]
    comparisons = tmp_path / "comparisons.csv"
    comparisons.write_text(
        "model,method,dataset,primary,diff\n"
        "m,gguf-q4,hoc,True,-0.25\nm,gguf-q4,ddi,True,0.05\nm,gguf-q4,ddi,False,-0.9\n"
    )
    rows = {r["method"]: r for r in cpu_deployment_rows(paths, comparisons)}
    q4, base = rows["gguf-q4"], rows["none"]
    assert q4["prompt_tokens_per_second"] == 80.0  # (300 + 100) / (3 + 2)
    assert q4["generation_tokens_per_second"] == 12.0  # (40 + 20) / (4 + 1)
    assert q4["peak_host_rss_gb"] == 0.9 and q4["size_on_disk_gb"] == 0.1
    assert q4["mean_primary_change"] == -0.1 and q4["worst_primary_change"] == -0.25
    assert q4["n_comparisons"] == 2 and not q4["generation_includes_prompt"]
    assert base["generation_tokens_per_second"] == 3.0 and base["generation_includes_prompt"]
    assert base["prompt_tokens_per_second"] is None
    write_cpu_deployment(list(rows.values()), tmp_path / "t.csv")
    draw_figure("cpu_deployment", {"cpu_deployment": tmp_path / "t.csv"}, [tmp_path / "f.png"])
    assert (tmp_path / "f.png").stat().st_size > 0
