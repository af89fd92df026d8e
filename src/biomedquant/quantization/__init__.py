"""Quantization: turn the fetched 16-bit model into a cached quantized artifact.

The workflow's ``quantize_model`` rule calls :func:`quantize_model`, which looks the method's
kind up in :mod:`biomedquant.methods.kinds` and calls the producer its record names. Every
producer has the same signature (source folder, output folder, method entry; keywords ``seed``,
``pools``, ``test_raws``, ``heldout``, ``gpus``) and starts the same way: :class:`SourceModel`
reads the fetched model's provenance and loads its tokenizer, and :func:`artifact_provenance`
writes what every artifact records (source, library versions, sizes, hashes). The modules:

* :mod:`~biomedquant.quantization.gptq`: ``gptq`` and ``rtn`` artifacts (one checkpoint
  format, one grid), with the per-layer quality check of :mod:`.quality`;
* :mod:`~biomedquant.quantization.rtn`: round-to-nearest on GPTQ's grid, GPTQ's control;
* :mod:`~biomedquant.quantization.awq`: AWQ through gptqmodel (a CUDA GPU to quantize);
* :mod:`~biomedquant.quantization.gguf` and :mod:`.gguf_convert`: llama.cpp GGUF files;
* :mod:`~biomedquant.quantization.quality`: each quantized layer's output error on held-out
  text beside round-to-nearest, and the quality table.

Calibration text comes from :mod:`biomedquant.quantization.calibration`. ``bnb-int8`` and
``bnb-nf4`` have no artifact: bitsandbytes quantizes while the 16-bit model loads (see
:func:`biomedquant.inference.engines.transformers.bnb_config`).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biomedquant.common.files import dir_size, read_json, sha256_tree
from biomedquant.common.provenance import now, peak_host_rss_bytes, versions
from biomedquant.methods.kinds import method_kind
from biomedquant.models.fetch import check_model_folder, trusts_remote_code

__all__ = ["SourceModel", "artifact_provenance", "quantize_model"]

log = logging.getLogger(__name__)

# What an artifact's provenance repeats of its source model's.
SOURCE_KEYS = ("model", "source", "spec", "revision", "weights_sha256")


@dataclass(frozen=True)
class SourceModel:
    """The fetched 16-bit model a producer starts from: its folder and provenance, and
    whether its config entry trusts the model's own code (loaders must be told)."""

    dir: Path
    provenance: dict[str, Any]
    trusted: bool

    @classmethod
    def open(cls, source_dir: str | Path) -> SourceModel:
        """The fetched model at ``source_dir``; a folder no loader could read (no config.json,
        pickle-only weights, a cut safetensors file) is refused here in one line naming the
        file, rather than by the loader minutes later."""
        folder = Path(source_dir)
        check_model_folder(folder)
        return cls(folder, read_json(folder / "provenance.json"), trusts_remote_code(folder))

    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.dir, trust_remote_code=self.trusted)


def artifact_provenance(
    method: dict[str, Any],
    source: SourceModel,
    folder: Path,
    *,
    seed: int,
    source_keys: tuple[str, ...] = SOURCE_KEYS,
    **fields: Any,
) -> dict[str, Any]:
    """What every artifact's ``provenance.json`` records, plus the producer's own ``fields``:
    the method, the source model, the seed, peak host memory, size and hash of the folder as
    written (call it once the weights are saved), the source's size and library versions."""
    return {
        "method": method,
        "source_model": {k: source.provenance.get(k) for k in source_keys},
        "seed": seed,
        **fields,
        "peak_host_rss_bytes": peak_host_rss_bytes(),
        "size_bytes": dir_size(folder),
        "weights_sha256": sha256_tree(folder),
        "source_size_bytes": source.provenance.get("size_bytes"),
        "versions": versions(),
        "written_at": now(),
    }


def quantize_model(
    source_dir: str | Path,
    out_dir: str | Path,
    method: dict[str, Any],
    *,
    seed: int = 0,
    pools: dict[str, str | Path] | None = None,
    test_raws: dict[str, str | Path] | None = None,
    heldout: list[str | Path] | None = None,
    gpus: int = 1,
) -> dict[str, Any]:
    """Quantize the 16-bit model in ``source_dir`` with ``method``; write the artifact.

    ``pools`` and ``test_raws`` (dataset -> file) are needed for in-domain calibration.
    ``heldout`` (prepared test JSON Lines) is the text of the quality check; without it the
    shipped generic text serves, unless it calibrated the model (then the check is skipped).
    ``gpus`` is how many GPUs the job was given (0: none); a producer uses those and no more.
    It changes speed, not the artifact, so no provenance hash holds it.
    """
    kind = method_kind(method)
    if kind.producer is None:
        raise ValueError(f"method kind {kind.name!r} has no quantization step")
    module, _, function = kind.producer.partition(":")
    produce = getattr(importlib.import_module(module), function)
    return produce(
        source_dir,
        out_dir,
        method,
        seed=seed,
        pools=pools,
        test_raws=test_raws,
        heldout=heldout,
        gpus=gpus,
    )
