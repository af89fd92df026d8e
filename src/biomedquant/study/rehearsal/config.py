"""A study config's rehearsal: the same shape, tiny models, a few items, on this machine."""

from __future__ import annotations

import copy
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from biomedquant.common.files import write_json
from biomedquant.methods.kinds import method_kind
from biomedquant.models.shapes import ModelShape
from biomedquant.study.rehearsal.hf_cache import fixed_commit, put_in_cache
from biomedquant.study.rehearsal.tiny_models import FAMILIES, build_tiny_model

# Items per dataset: enough that every dataset has a gold answer to score and a few-shot pool
# to draw from; the rehearsal checks the plumbing, not the numbers.
DEFAULT_LIMIT = 2
# Generated tokens per answer: random weights never stop on their own, so every answer runs to
# its cap; a few tokens exercise parsing and scoring as well as the benchmark's caps would.
REHEARSAL_MAX_NEW_TOKENS = 8
# Calibration of the tiny models: the shipped English text (no download), in windows that give
# GPTQ more tokens than the stand-ins' widest layer input (2 x 128).
REHEARSAL_CALIBRATION = {"source": "generic", "n_samples": 8, "seq_len": 128}
REHEARSAL_RESAMPLES = 200


class RehearsalError(ValueError):
    """A study config the rehearsal cannot stand in for (the message names the model)."""


@dataclass
class Rehearsal:
    """What :func:`write_rehearsal` wrote and decided."""

    config_path: Path
    hf_home: Path
    config: dict[str, Any]
    # study model -> the rehearsal model that stands in for it (its family's)
    stand_ins: dict[str, str] = field(default_factory=dict)
    families: dict[str, str] = field(default_factory=dict)  # rehearsal model -> family
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it cannot run here
    data_note: str = ""
    notes: list[str] = field(default_factory=list)  # other changes to the study's settings

    def summary(self) -> dict[str, Any]:
        return {
            "config": str(self.config_path),
            "hf_home": str(self.hf_home),
            "models": {m: self.families[m] for m in self.config["models"]},
            "stand_ins": self.stand_ins,
            "methods_run": list(self.config["methods"]),
            "methods_skipped": self.skipped,
            "data": self.data_note,
            "notes": self.notes,
        }


def model_family(name: str, spec: dict[str, Any]) -> str:
    """The ``model_type`` of a study model, from its shipped shape (``hf`` ids) or its
    folder's ``config.json`` (``local``), without downloading anything."""
    from importlib import resources

    if spec.get("source") == "local":
        config_file = Path(str(spec.get("path", ""))) / "config.json"
    else:
        shipped = str(spec.get("id", "")).replace("/", "--") + ".json"
        config_file = Path(
            str(resources.files("biomedquant").joinpath("models", "configs", shipped))
        )
    if not config_file.is_file():
        raise RehearsalError(
            f"model {name}: its architecture is unknown here (no {config_file.name} among the"
            " shipped model shapes, src/biomedquant/models/configs): add its config.json facts"
            " there, or point the model at a local folder"
        )
    model_type = json.loads(config_file.read_text("utf-8")).get("model_type", "")
    if model_type not in FAMILIES:
        raise RehearsalError(
            f"model {name}: no rehearsal stand-in for model_type {model_type!r}"
            f" (families: {', '.join(FAMILIES)})"
        )
    return model_type


def why_not_here(method: dict[str, Any]) -> str | None:
    """Why this machine cannot run ``method`` (None: it can): the message its job would fail
    with, so a rehearsal reports it as skipped, not as a failure."""
    kind = method_kind(method)
    if kind.needs_fp8_gpu:
        from biomedquant.inference.engines.hardware import require_fp8_gpu

        try:
            require_fp8_gpu()
        except RuntimeError as exc:
            return str(exc)
    if kind.name == "awq":
        from biomedquant.quantization.awq import NEEDS_GPU

        if not _has_cuda():
            return NEEDS_GPU
    if kind.engine == "llama_cpp" and importlib.util.find_spec("llama_cpp") is None:
        return (
            "gguf methods run in llama.cpp: llama-cpp-python is not installed"
            " (pip install -e '.[llamacpp]')"
        )
    return None


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _rehearsal_method(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    if "calibration" in spec:
        spec["calibration"] = dict(REHEARSAL_CALIBRATION)
    return spec


def write_rehearsal(
    study: dict[str, Any],
    out_dir: str | Path,
    *,
    limit: int = DEFAULT_LIMIT,
    every_model: bool = False,
) -> Rehearsal:
    """Write the rehearsal of ``study`` (a config mapping) into ``out_dir``: ``config.yaml``
    and the stand-in models in ``hf_home/`` (a Hugging Face cache), plus ``rehearsal.json``.

    One stand-in per model family of the study (the first model of each family keeps its
    slug and id; ``every_model`` keeps every model, each with its own stand-in); the methods
    this machine cannot run are left out (:func:`why_not_here`).
    """
    out = Path(out_dir).resolve()
    hf_home = out / "hf_home"
    cfg = copy.deepcopy(study)
    families: dict[str, str] = {}
    stand_ins: dict[str, str] = {}
    first_of_family: dict[str, str] = {}
    models: dict[str, Any] = {}
    for name, spec in study["models"].items():
        family = model_family(name, spec)
        if not every_model and family in first_of_family:
            stand_ins[name] = first_of_family[family]
            continue
        first_of_family.setdefault(family, name)
        stand_ins[name] = name
        families[name] = family
        model_id = spec.get("id") or f"biomedquant-rehearsal/{name}"
        commit = fixed_commit(model_id, family)
        dtype = spec.get("dtype", "bfloat16")
        build = out / "build" / name
        build_tiny_model(build, FAMILIES[family], model_id, dtype=dtype)
        put_in_cache(hf_home, model_id, build, commit)
        shape = ModelShape.from_config(json.loads((build / "config.json").read_text("utf-8")))
        params = shape.params
        models[name] = {
            "source": "hf",
            "id": model_id,
            "revision": commit,
            "dtype": dtype,
            "params_b": round(params / 1e9, 6),
        }
    cfg["models"] = models
    skipped = {}
    methods = {}
    for name, spec in study["methods"].items():
        reason = why_not_here(spec)
        if reason:
            skipped[name] = reason
        else:
            methods[name] = _rehearsal_method(spec)
    cfg["methods"] = methods
    data = dict(cfg.get("data", {}))
    base = str(data.get("base_url", "demo"))
    note = f"every dataset from {base}, {limit} items each"
    if base.startswith(("http://", "https://")):
        data["base_url"] = "demo"
        note = f"the embedded demo files stand in for {base} ({limit} items per dataset)"
    data["limit"] = limit
    cfg["data"] = data
    inference = dict(cfg.get("inference", {}))
    notes = []
    if inference.get("backend", "transformers") != "transformers" and not _has_cuda():
        notes.append(
            f"inference.backend {inference['backend']} needs a CUDA GPU: the rehearsal runs"
            " transformers"
        )
        inference["backend"] = "transformers"
    if cfg.get("cpu_threads", "job") not in ("job", 1):
        notes.append(
            f"cpu_threads {cfg['cpu_threads']} -> 1: the stand-ins' jobs run side by side, one"
            " per core"
        )
    cfg["cpu_threads"] = 1
    caps = {task: REHEARSAL_MAX_NEW_TOKENS for task in ("ner", "re", "mlc", "qa")}
    inference["max_new_tokens"] = caps
    inference["cot_max_new_tokens"] = dict(caps)
    cfg["inference"] = inference
    scoring = dict(cfg.get("scoring", {}))
    scoring["bootstrap_resamples"] = REHEARSAL_RESAMPLES
    scoring["comparison_resamples"] = REHEARSAL_RESAMPLES
    cfg["scoring"] = scoring
    config_path = out / "config.yaml"
    header = (
        "# The rehearsal of a study config (biomedquant rehearse): its datasets, prompting\n"
        "# methods and methods, tiny stand-in models in hf_home/, a few items per dataset.\n"
    )
    config_path.write_text(header + yaml.safe_dump(cfg, sort_keys=False))
    rehearsal = Rehearsal(
        config_path, hf_home, cfg, stand_ins, families, skipped, note, notes=notes
    )
    write_json(out / "rehearsal.json", rehearsal.summary())
    return rehearsal
