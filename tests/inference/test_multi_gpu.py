"""Jobs use the GPUs the scheduler gave them (``--gpus N``), and CPU-only quantization none.

No test here has a GPU: ``torch.cuda`` is replaced by a stand-in machine of a few 80 GiB GPUs
and ``AutoModelForCausalLM.from_pretrained`` by a recorder, so what is checked is what the
engines ask transformers, vLLM and llama.cpp for, and what they make of the answer (a device
map that offloads). Nothing of those libraries' own behaviour is imitated.
"""

from __future__ import annotations

import json
import logging
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from biomedquant.cli import build_parser, main
from biomedquant.inference.decoding import Decoding

GIB = 2**30
H100 = "NVIDIA H100 80GB HBM3"


class FakeModel(torch.nn.Linear):
    """What ``load_model`` reads of a loaded model: parameters, dtype, footprint, and the
    device map accelerate leaves on a dispatched model (absent when it did not dispatch)."""

    def __init__(self, device_map: dict[str, Any] | None) -> None:
        super().__init__(2, 2)
        if device_map is not None:
            self.hf_device_map = device_map

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16

    def get_memory_footprint(self) -> int:
        return 16


class Recorder:
    """Stands in for ``AutoModelForCausalLM``: records the keyword arguments of each load and
    returns a model with ``device_map`` as its ``hf_device_map`` (or raises ``error``)."""

    def __init__(self, device_map: dict[str, Any] | None = None, error: Exception | None = None):
        self.calls: list[dict[str, Any]] = []
        self.device_map = device_map
        self.error = error

    def from_pretrained(self, model_dir: Any, **kwargs: Any) -> FakeModel:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return FakeModel(self.device_map)


class FakeTokenizer:
    pad_token = None
    eos_token = "</s>"


def _machine(monkeypatch: pytest.MonkeyPatch, gpus: int, *, total_gib: float = 80) -> None:
    """``torch.cuda`` as on a node with ``gpus`` GPUs of ``total_gib`` GiB (0: no CUDA)."""
    props = types.SimpleNamespace(total_memory=int(total_gib * GIB), name=H100)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda i=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda i=None: 3 * GIB)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model folder that passes the folder check (config.json, whole safetensors weights);
    the loads below go through a stand-in (:class:`Recorder`), so the weights are never read."""
    from safetensors.torch import save_file

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"dtype": "bfloat16"}))
    save_file({"w": torch.zeros(1)}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    import transformers

    rec = Recorder()
    monkeypatch.setattr(transformers, "AutoModelForCausalLM", rec)
    monkeypatch.setattr(
        transformers,
        "AutoTokenizer",
        types.SimpleNamespace(from_pretrained=lambda *a, **k: FakeTokenizer()),
    )
    return rec


# --- the transformers engine -------------------------------------------------------------


def test_two_gpus_of_four_give_accelerate_two_gpus_and_no_host(monkeypatch, model_dir, recorder):
    from biomedquant.inference.engines.transformers import GPU_MEMORY_FRACTION, load_model

    _machine(monkeypatch, 4)
    _, _, info = load_model(model_dir, {"kind": "none"}, gpus=2)
    (kwargs,) = recorder.calls
    assert kwargs["device_map"] == "auto"
    limit = int(80 * GIB * GPU_MEMORY_FRACTION)
    assert kwargs["max_memory"] == {0: limit, 1: limit}  # GPUs 2 and 3 are another job's
    assert kwargs["dtype"] == torch.bfloat16  # the stored dtype, as on one GPU
    assert (info["device"], info["gpus"]) == ("cuda", 2)
    assert info["gpu_allocated_after_load_bytes"] == 2 * 3 * GIB  # both GPUs counted


def test_a_job_given_more_gpus_than_it_sees_says_so_and_uses_those(
    monkeypatch, model_dir, recorder, caplog
):
    from biomedquant.inference.engines.transformers import load_model

    _machine(monkeypatch, 1)
    with caplog.at_level(logging.WARNING, logger="biomedquant.inference.engines.transformers"):
        _, _, info = load_model(model_dir, {"kind": "none"}, gpus=4)
    assert list(recorder.calls[0]["max_memory"]) == [0]
    assert info["gpus"] == 1
    assert "given 4 GPU(s) but 1 are visible" in caplog.text


def test_a_model_the_gpus_do_not_hold_is_refused_not_offloaded(monkeypatch, model_dir, recorder):
    """accelerate puts what does not fit the listed GPUs on "disk" (or "cpu"); the job stops
    with one line naming the GPUs it was given and what to ask for."""
    from biomedquant.inference.engines.transformers import load_model

    _machine(monkeypatch, 2)
    recorder.device_map = {
        "model.embed_tokens": 0,
        "model.layers.0": 1,
        "model.layers.1": "cpu",
        "lm_head": "disk",
    }
    with pytest.raises(RuntimeError) as err:
        load_model(model_dir, {"kind": "none"}, gpus=2)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("the model does not fit the 2 GPUs given (2 x NVIDIA H100")
    assert "80.0 GiB each; 144.0 GiB for weights at 90%" in message
    assert "2 module(s) would be offloaded to the cpu and disk (first: model.layers.1)" in message
    assert "ask for more GPUs (scheduling.gpu_gib and scheduling.max_gpus_per_job" in message
    assert "or choose a smaller method" in message


def test_a_map_spread_over_the_gpus_only_is_accepted(monkeypatch, model_dir, recorder):
    from biomedquant.inference.engines.transformers import load_model

    _machine(monkeypatch, 2)
    recorder.device_map = {"model.embed_tokens": 0, "model.layers": 1, "lm_head": 1}
    _, _, info = load_model(model_dir, {"kind": "none"}, gpus=2)
    assert info["gpus"] == 2


def test_a_quantizers_own_offload_refusal_becomes_the_jobs(monkeypatch, model_dir, recorder):
    """bitsandbytes refuses an offloading device map before loading, in its own words."""
    from biomedquant.inference.engines.transformers import load_model

    _machine(monkeypatch, 1)
    recorder.error = ValueError(
        "Some modules are dispatched on the CPU or the disk. Make sure you have enough GPU RAM"
    )
    with pytest.raises(RuntimeError, match=r"does not fit the 1 GPU given \(1 x NVIDIA H100") as e:
        load_model(model_dir, {"kind": "none"}, gpus=1)
    assert isinstance(e.value.__cause__, ValueError)
    recorder.error = ValueError(  # transformers' fine-grained FP8, quantizing while loading
        "You are attempting to load an FP8 model with a device_map that contains a cpu/disk device."
    )
    with pytest.raises(RuntimeError, match="does not fit the 1 GPU given"):
        load_model(model_dir, {"kind": "none"}, gpus=1)
    recorder.error = ValueError("some other problem")
    with pytest.raises(ValueError, match="some other problem"):
        load_model(model_dir, {"kind": "none"}, gpus=1)


def test_the_quality_check_may_offload_to_the_host(monkeypatch, model_dir, recorder):
    """The quantization job is sized for GPTQ's one block at a time; its quality check loads
    the artifact with the host as a last device, as it always did."""
    from biomedquant.inference.engines.transformers import load_model

    _machine(monkeypatch, 2)
    recorder.device_map = {"model.layers.0": 0, "model.layers.1": "cpu"}
    _, _, info = load_model(model_dir, {"kind": "none"}, gpus=1, host_offload=True)
    assert sorted(recorder.calls[0]["max_memory"], key=str) == [0, "cpu"]
    assert recorder.calls[0]["max_memory"]["cpu"] > 0
    assert info["gpus"] == 1


@pytest.mark.parametrize(("visible", "gpus"), [(0, 1), (0, 4), (2, 0)])
def test_without_cuda_or_without_gpus_the_cpu_load_is_unchanged(
    monkeypatch, model_dir, recorder, visible, gpus
):
    """No CUDA, or a job given no GPU: the device map is the CPU, weights compute in float32,
    and no GPU is looked at."""
    from biomedquant.inference.engines.transformers import load_model

    _machine(monkeypatch, visible)

    def no_gpu_please(i):
        raise AssertionError("a CPU load looked at a GPU")

    monkeypatch.setattr(torch.cuda, "get_device_properties", no_gpu_please)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", no_gpu_please)
    _, _, info = load_model(model_dir, {"kind": "none"}, gpus=gpus)
    (kwargs,) = recorder.calls
    assert kwargs["device_map"] == "cpu" and "max_memory" not in kwargs
    assert kwargs["dtype"] == torch.float32
    assert (info["device"], info["gpus"], info["gpu_allocated_after_load_bytes"]) == (
        "cpu",
        0,
        None,
    )


# --- vLLM --------------------------------------------------------------------------------


def _heads(tmp_path: Path, heads: int | None) -> Path:
    folder = tmp_path / f"heads{heads}"
    folder.mkdir()
    config = {"num_attention_heads": heads} if heads is not None else {}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_vllm_runs_tensor_parallel_over_the_jobs_gpus(tmp_path):
    from biomedquant.inference.engines.vllm import llm_kwargs

    folder = _heads(tmp_path, 64)
    assert llm_kwargs(folder, {"kind": "none"}, Decoding(), gpus=4)["tensor_parallel_size"] == 4
    for one_or_none in (1, 0):
        assert "tensor_parallel_size" not in llm_kwargs(
            folder, {"kind": "none"}, Decoding(), gpus=one_or_none
        )
    # a config without a head count is left to vLLM
    no_heads = _heads(tmp_path, None)
    assert llm_kwargs(no_heads, {"kind": "none"}, Decoding(), gpus=2)["tensor_parallel_size"] == 2


def test_vllm_refuses_a_gpu_count_that_does_not_divide_the_heads(tmp_path):
    from biomedquant.inference.engines.vllm import llm_kwargs

    folder = _heads(tmp_path, 12)
    assert llm_kwargs(folder, {"kind": "none"}, Decoding(), gpus=4)["tensor_parallel_size"] == 4
    with pytest.raises(ValueError) as err:
        llm_kwargs(folder, {"kind": "none"}, Decoding(), gpus=8)
    message = str(err.value)
    assert "12 heads do not divide over 8" in message
    assert "run it on 1 or 2 or 4 GPU(s)" in message


def test_the_job_hands_its_gpus_to_the_vllm_engine(tmp_path, monkeypatch):
    """``run_inference_job(gpus=...)`` reaches ``vllm.LLM`` (a stand-in that records what it is
    called with), and the run's load facts record the count."""
    from biomedquant.inference.engines.vllm import VllmEngine

    seen: dict[str, Any] = {}

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

        def get_tokenizer(self) -> Any:
            return None

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    # the GPU path: this machine has no CUDA, so the engine is told it has
    monkeypatch.setattr("biomedquant.inference.engines.vllm._cuda_available", lambda: True)
    engine = VllmEngine.load(_heads(tmp_path, 32), {"kind": "none"}, Decoding(), gpus=4)
    assert seen["tensor_parallel_size"] == 4
    assert engine.info["gpus"] == 4


def test_run_inference_job_passes_its_gpus_to_the_engine_load(
    tiny_fetched, demo_prepared, tmp_path
):
    from biomedquant.inference.job import RunSpec, run_inference_job

    class Loaded(Exception):
        pass

    seen: dict[str, Any] = {}

    def loader(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise Loaded

    with pytest.raises(Loaded):
        run_inference_job(
            model_dir=tiny_fetched,
            method={"kind": "none"},
            dataset="pubmedqa",
            data_path=demo_prepared["pubmedqa"],
            runs=[RunSpec("zero-shot", tmp_path / "p.jsonl", tmp_path / "p.run.json")],
            engine_loader=loader,
            gpus=2,
        )
    assert seen == {"gpus": 2}


def test_the_gpu_count_enters_no_cache_key_and_no_generation(
    tiny_fetched, demo_prepared, tmp_path, monkeypatch
):
    """``biomedquant infer`` with ``--gpus 0`` and then ``--gpus 2`` (on this CPU machine both
    run on the CPU): the second job takes every generation from the first one's cache, the
    generations files are the same, and each run record says how many GPUs it used."""
    from biomedquant.common.files import read_json, read_jsonl

    from conftest import numbered_items

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after the test
    data = numbered_items(demo_prepared, tmp_path / "items.jsonl", 3)
    cache = tmp_path / "cache"
    outputs = {}
    for gpus in ("0", "2"):
        out = tmp_path / f"gpus{gpus}"
        argv = [
            "infer", "--model-dir", str(tiny_fetched), "--method", '{"kind": "none"}',
            "--dataset", "pubmedqa", "--data", str(data), "--prompt", "zero-shot",
            "--out", str(out / "p.jsonl"), "--run-record", str(out / "p.run.json"),
            "--max-new-tokens", "8", "--cpu-threads", "1", "--cache-dir", str(cache),
            "--gpus", gpus,
        ]  # fmt: skip
        assert main(argv) == 0
        outputs[gpus] = (read_jsonl(out / "p.jsonl"), read_json(out / "p.run.json"))
    (first, first_run), (second, second_run) = outputs["0"], outputs["2"]
    assert (first_run["n_generated"], second_run["n_from_cache"]) == (3, 3)
    assert second == first
    assert (first_run["gpus"], first_run["device"]) == (0, "cpu")


def test_peak_gpu_memory_is_counted_over_every_gpu(monkeypatch):
    from biomedquant.inference.engines.gpu_peaks import GpuPeaks

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i: (i + 1) * GIB)
    assert GpuPeaks().total("allocated") == 3 * GIB
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert GpuPeaks().total("allocated") is None


# --- llama.cpp ---------------------------------------------------------------------------


@pytest.mark.parametrize(("gpus", "layers"), [(2, -1), (0, 0)])
def test_llama_cpp_offloads_to_the_jobs_gpus_and_records_them(
    tiny_fetched, tmp_path, monkeypatch, gpus, layers
):
    """llama.cpp splits the layers over every GPU it sees by itself; a job given none keeps
    them on the CPU."""
    import shutil

    from biomedquant.inference.engines import llama_cpp

    folder = tmp_path / "gguf"
    shutil.copytree(tiny_fetched, folder)
    (folder / "model.gguf").write_bytes(b"GGUF")
    seen: dict[str, Any] = {}

    class Llama:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

    params = types.SimpleNamespace(use_extra_bufts=True)
    fake = types.SimpleNamespace(
        Llama=Llama,
        llama_supports_gpu_offload=lambda: True,
        llama_cpp=types.SimpleNamespace(llama_model_default_params=lambda: params),
    )
    monkeypatch.setattr(llama_cpp, "llama_cpp_module", lambda: fake)
    monkeypatch.setattr(llama_cpp, "gpu_process_bytes", lambda: None)
    engine = llama_cpp.LlamaCppEngine.load(folder, {"kind": "gguf", "type": "Q8_0"}, gpus=gpus)
    assert seen["n_gpu_layers"] == layers
    assert (engine.info["gpus"], engine.info["gpu_offload"]) == (gpus, gpus > 0)


# --- the command line --------------------------------------------------------------------

COMMANDS = {
    "infer": ["infer", "--model-dir", "m", "--dataset", "d", "--data", "x", "--prompt", "p"],
    "perplexity": ["perplexity", "--model-dir", "m", "--method", "{}", "--out", "o", "t"],
    "quantize": ["quantize", "--source", "s", "--method", "{}", "--out", "o"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_gpu_commands_take_a_gpu_count(command):
    parser = build_parser()
    assert parser.parse_args([*COMMANDS[command], "--gpus", "2"]).gpus == 2
    assert parser.parse_args([*COMMANDS[command], "--gpus=0"]).gpus == 0
    assert parser.parse_args(COMMANDS[command]).gpus == 1  # as every job ran until now


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("value", "message"),
    [("-1", "must be 0 or more GPUs, got -1"), ("1.5", "not a whole number of GPUs: '1.5'")],
)
def test_a_bad_gpu_count_is_argparses_one_line(command, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*COMMANDS[command], "--gpus", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --gpus: {message}" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("method", "gpus", "on_cpu"),
    [
        ({"kind": "rtn", "bits": 4, "group_size": 64}, 1, True),
        ({"kind": "gguf", "type": "Q8_0"}, 2, True),
        ({"kind": "gptq", "bits": 4}, 1, False),
        ({"kind": "awq", "bits": 4}, 1, False),
        ({"kind": "gptq", "bits": 4}, 0, True),
    ],
)
def test_which_quantize_jobs_run_on_the_cpu(method, gpus, on_cpu):
    from biomedquant.cli.quantization import quantizes_on_cpu

    assert quantizes_on_cpu(method, gpus) is on_cpu


def test_hiding_the_gpus_empties_cuda_visible_devices(monkeypatch):
    from biomedquant.cli.args import hide_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    hide_gpus("a test")
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


@pytest.mark.parametrize(
    ("method", "gpus", "visible", "given"),
    [
        ({"kind": "rtn", "bits": 4, "group_size": 64}, "1", "", 0),
        ({"kind": "gguf", "type": "Q8_0"}, "1", "", 0),
        ({"kind": "gptq", "bits": 4}, "0", "", 0),
        ({"kind": "gptq", "bits": 4}, "2", "0,1", 2),
    ],
)
def test_quantize_hides_the_gpus_from_cpu_only_quantization(
    monkeypatch, tmp_path, method, gpus, visible, given
):
    """What ``biomedquant quantize`` hands the producer, and what CUDA would see when it runs:
    an rtn or gguf job (which asks the scheduler for no GPU) sees none even on a GPU node."""
    import os

    import biomedquant.quantization
    import biomedquant.study.config_checks

    seen: dict[str, Any] = {}

    def quantize(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.update(gpus=kwargs["gpus"], visible=os.environ.get("CUDA_VISIBLE_DEVICES"))
        return {"quantize_seconds": 1.0, "size_bytes": 1}

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setattr(biomedquant.quantization, "quantize_model", quantize)
    monkeypatch.setattr(
        biomedquant.study.config_checks, "check_group_size_for_folder", lambda *a: None
    )
    argv = ["quantize", "--source", str(tmp_path), "--method", json.dumps(method)]
    assert main([*argv, "--out", str(tmp_path / "q"), "--gpus", gpus]) == 0
    assert seen == {"gpus": given, "visible": visible}
