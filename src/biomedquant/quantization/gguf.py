"""``gguf`` methods: the fetched 16-bit model as a llama.cpp GGUF file of a quantization type.

Steps: convert the safetensors folder to a GGUF F16 file (:mod:`.gguf_convert`),
optionally compute an importance matrix from calibration text, and quantize with llama.cpp's
own quantizer (``llama_model_quantize`` of llama-cpp-python), so the file is byte-for-byte
what ``llama-quantize`` makes. The artifact folder holds ``model.gguf``, the tokenizer and
config files of the source (prompts are built with the model's own chat template, as for
every other method) and ``provenance.json`` (type, imatrix source and hash, llama.cpp
version, per-tensor types, size).

The importance matrix is llama.cpp's: per input column of each linear layer, the mean of the
squared activations over the calibration tokens. It is computed here with the 16-bit model
in torch (forward hooks), from the same calibration windows as GPTQ, and handed to
the quantizer, which weighs each column's rounding error by it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from biomedquant.common.files import atomic_dir, read_json, sha256_text, write_json
from biomedquant.inference.engines.llama_cpp import GGUF_FILE, llama_cpp_module
from biomedquant.methods.gguf_layout import FILE_TYPES, method_file_type
from biomedquant.quantization import SourceModel, artifact_provenance

log = logging.getLogger(__name__)

# Files of the source folder that travel with the GGUF: tokenizer, chat template, config.
SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
)


def importance_matrix(
    source_dir: Path, windows: list[list[int]], n_layers: int, arch: str
) -> dict[str, Any]:
    """Mean squared input activation per column of every block linear, by GGUF tensor name."""
    import gguf
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        source_dir, dtype=torch.float32, use_safetensors=True
    )
    model.eval()
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.upper()), n_layers)
    sums: dict[str, Any] = {}
    counts: dict[str, int] = {}
    hooks = []
    for module_name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or ".layers." not in module_name:
            continue
        target = names.get_name(f"{module_name}.weight", try_suffixes=(".weight",))
        if target is None:
            continue

        def hook(_mod: Any, inputs: Any, _out: Any, key: str = target) -> None:
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
            sums[key] = sums.get(key, 0) + (x * x).sum(0)
            counts[key] = counts.get(key, 0) + x.shape[0]

        hooks.append(module.register_forward_hook(hook))
    with torch.inference_mode():
        for window in windows:
            model(input_ids=torch.tensor([window]))
    for h in hooks:
        h.remove()
    return {k: (sums[k] / counts[k]).float().numpy().astype(np.float32) for k in sums}


def _imatrix_param(llama_cpp: Any, matrix: dict[str, Any]) -> tuple[Any, list[Any]]:
    """A null-terminated ``llama_model_imatrix_data`` array (and the buffers it points into)."""
    entries = (llama_cpp.llama_model_imatrix_data * (len(matrix) + 1))()
    keep: list[Any] = []
    for i, (name, values) in enumerate(sorted(matrix.items())):
        raw = name.encode()
        keep.extend([raw, values])
        entries[i].name = raw
        entries[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[i].size = values.size
    entries[len(matrix)].name = None
    return entries, keep


def tensor_summary(path: Path) -> dict[str, Any]:
    """Tensor types of a GGUF file: count and bytes per type (what the fit estimator models)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    by_type: dict[str, dict[str, int]] = {}
    for t in reader.tensors:
        entry = by_type.setdefault(t.tensor_type.name, {"n_tensors": 0, "bytes": 0})
        entry["n_tensors"] += 1
        entry["bytes"] += int(t.n_bytes)
    return {
        "tensor_types": by_type,
        "tensor_bytes": sum(v["bytes"] for v in by_type.values()),
    }


def quantize_gguf(
    source_dir: str | Path,
    out_dir: str | Path,
    method: dict[str, Any],
    *,
    seed: int = 0,
    pools: dict[str, str | Path] | None = None,
    test_raws: dict[str, str | Path] | None = None,
    heldout: list[str | Path] | None = None,
    gpus: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    """Write the ``gguf`` artifact of ``method`` for the 16-bit model in ``source_dir``.

    ``heldout`` and ``gpus`` are accepted as every producer's are; the per-layer check against
    round-to-nearest (:mod:`.quality`) covers GPTQ-format artifacts only, and GGUF conversion
    and llama.cpp's quantizer run on the CPU (the kind's ``quantizes_on_cpu``).
    """
    from biomedquant.quantization.gguf_convert import convert_to_gguf

    llama_cpp = llama_cpp_module()
    file_type = method_file_type(method)
    start = time.time()
    source = SourceModel.open(source_dir)
    source_dir = source.dir
    with atomic_dir(out_dir) as tmp:
        f16 = tmp / "model-f16.gguf"
        conversion = convert_to_gguf(source_dir, f16)
        convert_seconds = time.time() - start
        imatrix_info: dict[str, Any] | None = None
        entries, keep = None, []
        if method.get("imatrix"):
            from biomedquant.quantization.calibration import calibration_windows

            windows, calib = calibration_windows(
                method.get("calibration", {}),
                source.tokenizer(),
                pools=pools,
                test_raws=test_raws,
                seed=seed,
            )
            config = read_json(source_dir / "config.json")
            matrix = importance_matrix(
                source_dir,
                windows,
                int(config["num_hidden_layers"]),
                conversion.get("architecture", "llama"),
            )
            entries, keep = _imatrix_param(llama_cpp, matrix)
            digest = sha256_text(json.dumps({k: v.tolist() for k, v in sorted(matrix.items())}))
            imatrix_info = {"calibration": calib, "n_tensors": len(matrix), "sha256": digest}
        target = tmp / GGUF_FILE
        if file_type == "F16":
            f16.rename(target)
        else:
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = FILE_TYPES[file_type][0]
            params.nthread = int(threads or 0)
            if entries is not None:
                params.imatrix = ctypes.cast(entries, type(params.imatrix))
            q_start = time.time()
            rc = llama_cpp.llama_model_quantize(
                str(f16).encode(), str(target).encode(), ctypes.byref(params)
            )
            del keep
            if rc != 0:
                raise RuntimeError(f"llama.cpp's quantizer failed ({rc}) for type {file_type}")
            log.info("quantized to %s in %.1f s", file_type, time.time() - q_start)
            f16.unlink()
        for name in SIDE_FILES:
            if (source_dir / name).is_file():
                shutil.copy2(source_dir / name, tmp / name)
        prov = artifact_provenance(
            method,
            source,
            tmp,
            seed=seed,
            gguf_type=file_type,
            llama_ftype=FILE_TYPES[file_type][0],
            dtype=source.provenance.get("dtype"),
            conversion=conversion,
            imatrix=imatrix_info,
            device="cpu",
            convert_seconds=round(convert_seconds, 2),
            quantize_seconds=round(time.time() - start, 2),
            file_bytes=target.stat().st_size,
            **tensor_summary(target),
            llama_cpp_python=getattr(llama_cpp, "__version__", None),
        )
        write_json(tmp / "provenance.json", prov)
        _write_modelfile(tmp)
    return prov


def _write_modelfile(folder: Path) -> None:
    """An Ollama Modelfile beside the GGUF file, where the model's chat template has a known
    family (:mod:`biomedquant.quantization.ollama_modelfile`); otherwise a log line says why not."""
    from biomedquant.quantization.ollama_modelfile import (
        MODELFILE,
        folder_chat_template,
        modelfile_text,
    )

    template = folder_chat_template(folder)
    if template is None:
        log.info("no Ollama Modelfile: the model folder has no chat template")
        return
    try:
        text = modelfile_text(template, gguf_file=GGUF_FILE)
    except ValueError as err:
        log.info("no Ollama Modelfile: %s", err)
        return
    (folder / MODELFILE).write_text(text, encoding="utf-8")
