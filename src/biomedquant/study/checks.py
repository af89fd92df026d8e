"""One check of a whole study, before any GPU is touched.

The Snakefile runs it when it parses the config, ``biomedquant plan`` before its table and
``biomedquant doctor`` among its findings, so the three report the same problems in the same
words. Every problem is one line naming the model, the method, the config key and the numbers,
with the fix; all of them are listed at once.

What is checked (the JSON schema has already checked types and names):

* GPTQ group sizes against each model's narrowest quantized layer.
* Calibration of every method that calibrates (GPTQ, AWQ): ``n_samples x seq_len`` tokens at
  least the widest quantized layer's input size of every model it quantizes (else GPTQ's
  Hessian is rank-deficient; the same rule the quantizer applies at run time), and a source
  that holds that many tokens. Text on disk is counted with the model's own tokenizer where
  its ``tokenizer.json`` is on disk; otherwise characters are counted and converted with
  stated bounds (:data:`CHARS_PER_TOKEN_FEW`, :data:`CHARS_PER_TOKEN_MANY`).
* A baseline (a method of kind ``none``) whenever a quantized method would be compared.
* A ``local`` model's folder exists and holds a model.
* Every method runs on an engine that runs it as specified
  (:func:`biomedquant.methods.engines.engine_for`): one warning line per method that runs under
  another engine than ``inference.backend`` (bitsandbytes, GPTQ-3 under vLLM: transformers),
  with the reason; an error for a method no engine runs.
* FP8 methods have a GPU that runs FP8 (where the run's GPUs are known), and every model x
  method fits the GPUs a job may ask for (``scheduling.gpu_gib``,
  ``scheduling.max_gpus_per_job``; on one machine also ``--resources gpu=N``).
* Models not pinned to a commit hash (a warning; under strict revisions a real run refuses).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from biomedquant.models.fetch import model_folder_problem
from biomedquant.models.shapes import ModelShape, shape_for_model
from biomedquant.planning.estimator import estimate
from biomedquant.study.config_checks import group_size_problem, unpinned_models

Level = Literal["error", "warning"]

# Characters per token of English and biomedical text under the study models' BPE tokenizers
# lie between these bounds (SmolLM2 reads the shipped generic text at 4.8 characters per
# token and the demo's biomedical samples at about 4.3; dense chemical names go lower).
# Without the model's tokenizer, text is enough when it holds enough tokens even at the
# few-tokens bound, and too short when it falls short even at the many-tokens bound; in
# between the check warns.
CHARS_PER_TOKEN_FEW = 5.0
CHARS_PER_TOKEN_MANY = 3.0
# Kinds that cut calibration windows (biomedquant.quantization.calibration.checked_windows).
CALIBRATED_KINDS = ("gptq", "awq")


class StudyError(ValueError):
    """A study config with problems that would fail its jobs (one line each)."""


@dataclass(frozen=True)
class Problem:
    """One problem of a study: ``error`` stops it, ``warning`` is reported only."""

    level: Level
    topic: str
    text: str

    def line(self) -> str:
        return f"{self.level}: {self.text}"


@dataclass(frozen=True)
class Hardware:
    """What the run's jobs may use, where the caller knows it.

    ``local_gpus``: GPUs one machine gives its jobs at once (``--resources gpu=N`` of a local
    run; None where a scheduler places jobs or nothing is known). ``fp8_gpu``: whether the
    GPUs that will run fp8 jobs support FP8 (None: unknown, e.g. planning on a login node).
    ``cluster``: jobs go to a scheduler, where fp8 jobs need a node constraint
    (``fp8_constraint``).
    """

    local_gpus: int | None = None
    fp8_gpu: bool | None = None
    cluster: bool = False
    fp8_constraint: str = ""


def widest_input(shape: ModelShape) -> tuple[int, str]:
    """Input size of the widest linear layer GPTQ quantizes in a block, and the layer: the
    same rule as :func:`biomedquant.quantization.calibration.widest_linear_input`, from a shape."""
    return max(
        (shape.hidden, "the attention and MLP inputs (hidden_size)"),
        (shape.heads * shape.dim_per_head, "self_attn.o_proj (heads x head_dim)"),
        (shape.intermediate, "mlp.down_proj (intermediate_size)"),
    )


def _calibration(method: dict[str, Any]) -> dict[str, Any]:
    """A method's calibration with the defaults filled in (a config that skipped the schema,
    such as a notebook's dict, gets the same ones the quantizer would apply)."""
    from biomedquant.quantization.calibration.windows import DEFAULTS

    return {**DEFAULTS, **method.get("calibration", {})}


def study_problems(
    config: dict[str, Any],
    *,
    workdir: str | Path = ".",
    hardware: Hardware | None = None,
) -> list[Problem]:
    """Every problem of ``config`` (validated against the schema, defaults filled), in the
    order a reader fixes them: models, methods, calibration, fit."""
    hardware = hardware or Hardware()
    workdir = Path(workdir)
    problems: list[Problem] = []
    problems += _model_problems(config)
    problems += _baseline_problems(config)
    problems += _deploy_prompt_problems(config)
    problems += _engine_problems(config)
    problems += _group_size_problems(config)
    problems += _calibration_problems(config, workdir)
    problems += _fp8_problems(config, hardware)
    problems += _fit_problems(config, hardware)
    problems += _revision_problems(config)
    return problems


def check_study(
    config: dict[str, Any],
    *,
    workdir: str | Path = ".",
    hardware: Hardware | None = None,
) -> list[Problem]:
    """Raise :class:`StudyError` listing every error; print the warnings to stderr."""
    problems = study_problems(config, workdir=workdir, hardware=hardware)
    for p in problems:
        if p.level == "warning":
            print(p.line(), file=sys.stderr)
    errors = [p.line() for p in problems if p.level == "error"]
    if errors:
        raise StudyError(f"the study config has {len(errors)} problem(s):\n" + "\n".join(errors))
    return problems


# --- models and methods ------------------------------------------------------------------


def _deploy_prompt_problems(config: dict[str, Any]) -> list[Problem]:
    """The recommendation's claim holds under the deployed prompting methods: each must be one
    the study runs, or no candidate could ever have the evidence to pass."""
    deployed = (config.get("recommendation") or {}).get("deploy_prompts") or []
    prompts = list(config.get("prompts") or [])
    return [
        Problem(
            "error",
            "recommendation",
            f"recommendation.deploy_prompts names {p!r}, which the study does not run"
            f" (prompts: {', '.join(prompts)}): add it to prompts or drop it",
        )
        for p in deployed
        if p not in prompts
    ]


def _model_problems(config: dict[str, Any]) -> list[Problem]:
    out = []
    for name, spec in config.get("models", {}).items():
        if spec.get("source") != "local":
            continue
        # the question fetch-model asks too: a folder refused here is refused there
        problem = model_folder_problem(Path(str(spec.get("path", ""))))
        if problem:
            out.append(Problem("error", "model", f"models.{name}.path {problem}"))
    return out


def _baseline_problems(config: dict[str, Any]) -> list[Problem]:
    methods = config.get("methods", {})
    quantized = [m for m, spec in methods.items() if spec.get("kind") != "none"]
    if quantized and not any(spec.get("kind") == "none" for spec in methods.values()):
        return [
            Problem(
                "error",
                "baseline",
                f"methods: no method of kind none (the 16-bit baseline), so the"
                f" {len(quantized)} quantized method(s) ({', '.join(quantized[:4])}"
                f"{', ...' if len(quantized) > 4 else ''}) are compared with nothing: no"
                " comparison, verdict or recommendation would be made; add"
                " `none: {kind: none}` to methods",
            )
        ]
    return []


def _engine_problems(config: dict[str, Any]) -> list[Problem]:
    """Methods the configured backend does not run as specified: a warning naming the engine
    that runs each instead and why (never a silent substitution), or an error when none does."""
    from biomedquant.methods.engines import EngineRefused, substitution

    backend = config.get("inference", {}).get("backend", "transformers")
    out = []
    for name, spec in config.get("methods", {}).items():
        try:
            moved = substitution(spec, backend)
        except EngineRefused as exc:
            out.append(Problem("error", "engine", f"methods.{name}: {exc}; drop it"))
            continue
        if moved:
            out.append(Problem("warning", "engine", f"methods.{name}: {moved}"))
    return out


def _shaped_pairs(
    config: dict[str, Any],
) -> Iterator[tuple[str, ModelShape, str, dict[str, Any]]]:
    """(model, shape, method, method spec) of every model x method whose shape is known
    (the others are checked against the fetched model's config.json when they run)."""
    for model, mspec in config.get("models", {}).items():
        shape = shape_for_model(mspec)
        if shape is not None:
            for method, spec in config.get("methods", {}).items():
                yield model, shape, method, spec


def _group_size_problems(config: dict[str, Any]) -> list[Problem]:
    return [
        Problem("error", "gptq", text)
        for model, shape, method, spec in _shaped_pairs(config)
        if (text := group_size_problem(model, shape, method, spec))
    ]


def _revision_problems(config: dict[str, Any]) -> list[Problem]:
    unpinned = unpinned_models(config)
    if not unpinned or not config.get("strict_revisions"):
        return []
    names = ", ".join(name for name, _ in unpinned[:6]) + ("..." if len(unpinned) > 6 else "")
    return [
        Problem(
            "warning",
            "revisions",
            f"strict_revisions is on and {len(unpinned)} model(s) are not pinned to a commit"
            f" hash ({names}): a run (not a dry run) will refuse to start; set each"
            " models.<name>.revision to a commit hash (docs/guide/gpus.md, 'Pinning model"
            " revisions')",
        )
    ]


# --- calibration -------------------------------------------------------------------------


def _calibration_problems(config: dict[str, Any], workdir: Path) -> list[Problem]:
    out: list[Problem] = []
    models = config.get("models", {})
    shapes = {name: shape_for_model(spec) for name, spec in models.items()}
    uncached: dict[str, list[tuple[str, int]]] = {}
    for method, spec in config.get("methods", {}).items():
        if spec.get("kind") not in CALIBRATED_KINDS:
            continue
        calib = _calibration(spec)
        n, seq = int(calib["n_samples"]), int(calib["seq_len"])
        need = n * seq
        key = f"methods.{method}.calibration"
        # Rank: at least the widest quantized layer's input size of every model.
        short = [
            (name, *widest_input(shape))
            for name, shape in shapes.items()
            if shape is not None and widest_input(shape)[0] > need
        ]
        if short and not calib.get("allow_rank_deficient"):
            widest = max(short, key=lambda t: t[1])
            names = ", ".join(f"{m} {size}" for m, size, _ in short[:4])
            out.append(
                Problem(
                    "error",
                    "calibration",
                    f"{key}: n_samples x seq_len = {n} x {seq} = {need} tokens, fewer than the"
                    f" widest quantized layer's input of {len(short)} model(s) ({names}"
                    f"{', ...' if len(short) > 4 else ''}; {widest[0]}: {widest[2]}): GPTQ's"
                    f" Hessian would be rank-deficient; raise n_samples x seq_len to at least"
                    f" {widest[1]} (e.g. n_samples {-(-widest[1] // seq)} at seq_len {seq};"
                    " GPTQ's reference is 128 x 2048), or set allow_rank_deficient: true",
                )
            )
        if calib["source"] == "hf_dataset":
            if not _hf_dataset_readable(str(calib.get("dataset", ""))):
                uncached.setdefault(str(calib.get("dataset", "")), []).append((method, need))
            continue
        out += _source_problems(key, calib, need, config, workdir)
    for name, users in uncached.items():
        from huggingface_hub import constants

        listed = ", ".join(f"methods.{m}.calibration ({need} tokens)" for m, need in users)
        out.append(
            Problem(
                "warning",
                "calibration",
                f"{listed}: the dataset {name} is not in this machine's Hugging Face cache"
                f" ({constants.HF_HUB_CACHE}), so its tokens are counted only when"
                " quantize_model reads it, which then needs the Hub: fill the cache first"
                " (docs/design/methods.md, 'Calibration'), or point dataset at a save_to_disk"
                " folder",
            )
        )
    return out


@dataclass(frozen=True)
class SourceText:
    """What a calibration source holds before the run: its texts (a function, so that each
    model's count reads them afresh), or only a lower bound on its characters."""

    what: str
    texts: Callable[[], Iterable[str]] | None = None
    chars_at_least: int | None = None


def _source_problems(
    key: str, calib: dict[str, Any], need: int, config: dict[str, Any], workdir: Path
) -> list[Problem]:
    """Whether the calibration source holds ``need`` tokens, for every model it quantizes."""
    source = calib["source"]
    if source == "file" and not Path(str(calib.get("path", ""))).is_file():
        return [
            Problem(
                "error",
                "calibration",
                f"{key}.path {calib.get('path')} does not exist: give a .txt (paragraphs) or"
                " .jsonl file",
            )
        ]
    text = _source_text(calib, config, workdir)
    what = f"{key} (source {source}{text.what})"
    if text.texts is None:
        few = (text.chars_at_least or 0) / CHARS_PER_TOKEN_FEW
        if few >= need:
            return []
        return [
            Problem(
                "warning",
                "calibration",
                f"{what}: the pools are not prepared yet and their measured sizes guarantee"
                f" only about {few:,.0f} tokens of the {need} needed: they are counted when"
                " the datasets are prepared (run the study's prepare jobs, then plan again)",
            )
        ]
    out = []
    for model, spec in config.get("models", {}).items():
        counter = _tokenizer_counter(model, spec, workdir)
        if counter is not None:
            held = counter(text.texts(), need)
            if held < need:
                out.append(_too_few(what, need, f"{held} tokens by {model}'s tokenizer"))
            continue
        chars = _chars(text.texts(), int(need * CHARS_PER_TOKEN_FEW))
        few, many = chars / CHARS_PER_TOKEN_FEW, chars / CHARS_PER_TOKEN_MANY
        if many < need:
            out.append(
                _too_few(
                    what,
                    need,
                    f"{chars:,} characters, at most about {many:,.0f} tokens"
                    f" ({CHARS_PER_TOKEN_MANY:g} characters per token)",
                )
            )
        elif few < need:
            out.append(
                Problem(
                    "warning",
                    "calibration",
                    f"{what}: holds {chars:,} characters, {few:,.0f} to {many:,.0f} tokens,"
                    f" for n_samples x seq_len = {need} tokens: it may be too short for"
                    f" {model} (counted exactly once its tokenizer is on disk: fetch the model"
                    " first, or lower n_samples)",
                )
            )
    return list(dict.fromkeys(out))  # a character count's verdict is the same for every model


def _too_few(what: str, need: int, held: str) -> Problem:
    return Problem(
        "error",
        "calibration",
        f"{what}: holds {held}, fewer than n_samples x seq_len = {need}: lower n_samples or"
        " seq_len (not below the widest layer's input), or use a larger source (in_domain,"
        " hf_dataset allenai/c4 as config/paper.yaml does, or a file)",
    )


def _source_text(calib: dict[str, Any], config: dict[str, Any], workdir: Path) -> SourceText:
    """The texts of a generic, file or in_domain source as far as they can be read now."""
    from biomedquant.quantization.calibration.sources import file_texts, generic_calibration_texts

    source = calib["source"]
    if source == "generic":
        return SourceText("", generic_calibration_texts)
    if source == "file":
        return SourceText("", lambda: file_texts(calib["path"], calib.get("text_field", "text")))
    # in_domain: the prepared pools (or the demo's shipped files) where all are present, else
    # the registry's measured sizes of the splits the pools are cut from.
    from biomedquant.datasets.registry import get_dataset

    names = calib.get("datasets") or config.get("datasets", [])
    files = _pool_files(names, config, workdir)
    if files is not None:
        return SourceText(", train/dev texts", lambda: _pool_texts(files))
    measured = sum(get_dataset(n).pool_chars_at_least or 0 for n in names)
    return SourceText(", train/dev texts", chars_at_least=measured)


def _pool_files(
    names: Iterable[str], config: dict[str, Any], workdir: Path
) -> list[tuple[Path, str | None]] | None:
    """(file, reader) of each in-domain pool readable now: prepared JSON Lines in the working
    directory (reader None), else the demo's shipped source file; None when any is missing."""
    from biomedquant.datasets.download import DEMO_SOURCE, demo_root
    from biomedquant.datasets.prepare import fewshot_split
    from biomedquant.datasets.registry import get_dataset

    base = config.get("data", {}).get("base_url", "")
    out: list[tuple[Path, str | None]] = []
    for name in names:
        try:
            split = fewshot_split(name, base)
        except KeyError:
            return None
        prepared = workdir / "resources" / "datasets" / name / f"{split}.jsonl"
        source = get_dataset(name).files[split]
        if prepared.is_file():
            out.append((prepared, None))
        elif base == DEMO_SOURCE and (demo_root() / source.path).is_file():
            out.append((demo_root() / source.path, source.reader))
        else:
            return None
    return out


def _pool_texts(files: list[tuple[Path, str | None]]) -> Iterator[str]:
    from biomedquant.common.files import read_jsonl
    from biomedquant.datasets.readers import read_source
    from biomedquant.datasets.texts import record_text

    for path, reader in files:
        records = read_jsonl(path) if reader is None else read_source(path, reader)
        for rec in records:
            if text := record_text(rec).strip():
                yield text


def _chars(texts: Iterable[str], enough: int) -> int:
    total = 0
    for t in texts:
        total += len(t) + 1
        if total >= enough:
            break
    return total


def _tokenizer_counter(model: str, spec: dict[str, Any], workdir: Path) -> Any:
    """A function counting tokens of texts (stopping at a need) with the model's own
    tokenizer when its ``tokenizer.json`` is on disk, else None."""
    path = _tokenizer_file(model, spec, workdir)
    if path is None:
        return None
    try:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
    except Exception:  # noqa: BLE001 - an unreadable file: fall back to the estimate
        return None

    def count(texts: Iterable[str], need: int) -> int:
        total = 0
        for t in texts:
            total += len(tok.encode(t, add_special_tokens=False).ids) + 1  # + separator
            if total >= need:
                break
        return total

    return count


def _tokenizer_file(model: str, spec: dict[str, Any], workdir: Path) -> Path | None:
    fetched = workdir / "resources" / "models" / model / "none" / "tokenizer.json"
    if fetched.is_file():
        return fetched
    if spec.get("source") == "local":
        local = Path(str(spec.get("path", ""))) / "tokenizer.json"
        return local if local.is_file() else None
    if spec.get("source") == "hf":
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - a dependency
            return None
        hit = try_to_load_from_cache(spec["id"], "tokenizer.json", revision=spec.get("revision"))
        return Path(hit) if isinstance(hit, str) else None
    return None


def _hf_dataset_readable(name: str) -> bool:
    """Whether a Hugging Face dataset can be read without the Hub: a save_to_disk folder, or
    files of it in the Hub's cache (its tokens are counted when quantize_model reads it)."""
    if Path(name).is_dir():
        return True
    from huggingface_hub import constants

    return (Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}").is_dir()


# --- hardware ----------------------------------------------------------------------------


def _fp8_problems(config: dict[str, Any], hardware: Hardware) -> list[Problem]:
    from biomedquant.inference.engines.hardware import FP8_MIN_CAPABILITY
    from biomedquant.methods.kinds import method_kind

    fp8 = [m for m, s in config.get("methods", {}).items() if method_kind(s).needs_fp8_gpu]
    if not fp8:
        return []
    need = ".".join(map(str, FP8_MIN_CAPABILITY))
    names = ", ".join(fp8)
    if hardware.fp8_gpu is False:
        return [
            Problem(
                "error",
                "fp8",
                f"methods {names}: fp8 needs a GPU of compute capability {need} or newer (L4,"
                " L40S, H100, H200) and this machine's GPUs are not: run them on such GPUs"
                " (the SLURM profile with BIOMEDQUANT_SLURM_FP8_FEATURE) or drop them",
            )
        ]
    if hardware.cluster and not hardware.fp8_constraint:
        return [
            Problem(
                "warning",
                "fp8",
                f"methods {names}: fp8 jobs carry no node constraint, so the scheduler may"
                f" place them on GPUs older than compute capability {need}, where they stop at"
                " once: export BIOMEDQUANT_SLURM_FP8_FEATURE=<your FP8 nodes' feature>",
            )
        ]
    return []


def _fit_problems(config: dict[str, Any], hardware: Hardware) -> list[Problem]:
    from biomedquant.common.gpus import gpus_needed
    from biomedquant.inference.decoding import Decoding
    from biomedquant.planning.throughput import gpu_memory_gib

    scheduling = config.get("scheduling", {})
    try:  # the GPU the jobs are sized for: scheduling.gpu's memory, as the requests use it
        gpu_gib = gpu_memory_gib(scheduling)
    except ValueError:  # gpu and gpu_gib disagree: refused on its own, in its own words
        return []
    max_gpus = int(scheduling.get("max_gpus_per_job", 8))
    tokens = Decoding.from_config(config).batch_tokens
    out = []
    for model, shape, method, spec in _shaped_pairs(config):
        total = estimate(shape, spec, tokens=tokens)["total_gb"]
        gpus = gpus_needed(total, gpu_gib, max_gpus)
        if gpus is None:
            out.append(
                Problem(
                    "error",
                    "fit",
                    f"{model} x {method} needs about {total:.3g} GB of GPU memory, more"
                    f" than scheduling.max_gpus_per_job = {max_gpus} GPUs of"
                    f" scheduling.gpu_gib = {gpu_gib:g} GiB hold: raise either, or drop"
                    " this model x method (biomedquant plan lists what fits)",
                )
            )
        elif hardware.local_gpus is not None and gpus > hardware.local_gpus:
            out.append(
                Problem(
                    "error",
                    "fit",
                    f"{model} x {method} needs {gpus} GPUs of {gpu_gib:g} GiB (about"
                    f" {total:.3g} GB) but this run gives a job at most gpu="
                    f"{hardware.local_gpus} (--resources): raise it on a machine with"
                    f" {gpus} GPUs, run on a cluster (the SLURM profile), or drop it",
                )
            )
    return out


def parse_hardware(workflow: Any) -> Hardware:
    """What is known of a Snakemake run's hardware while the Snakefile is parsed (its
    ``workflow`` object): the GPUs ``--resources gpu=N`` lets one machine's jobs use at once
    (None when not given, as under a scheduler). Whether the run is a dry run, and on which
    executor, is known only when it starts: see :func:`check_run_hardware`."""
    gpus = workflow.global_resources.get("gpu")
    value = getattr(gpus, "value", gpus)
    return Hardware(local_gpus=int(value) if isinstance(value, int) else None)


def check_run_hardware(config: dict[str, Any], workflow: Any) -> None:
    """At the start of a real run (Snakemake's ``onstart``): fp8 methods need this machine's
    GPU to run FP8 when jobs run here, and a node constraint when a scheduler places them."""
    if not _has_fp8_methods(config):
        return
    if workflow.local_exec:
        from biomedquant.inference.engines.hardware import FP8_MIN_CAPABILITY, cuda_capability

        cap = cuda_capability()
        hardware = Hardware(fp8_gpu=cap is not None and cap >= FP8_MIN_CAPABILITY)
    else:
        hardware = Hardware(cluster=True, fp8_constraint=fp8_feature())
    problems = _fp8_problems(config, hardware)
    for p in problems:
        if p.level == "warning":
            print(p.line(), file=sys.stderr)
    errors = [p.line() for p in problems if p.level == "error"]
    if errors:
        raise StudyError("\n".join(errors))


def fp8_feature() -> str:
    """The node feature of GPUs that run FP8 (``BIOMEDQUANT_SLURM_FP8_FEATURE``; '' unset)."""
    import os

    return os.environ.get("BIOMEDQUANT_SLURM_FP8_FEATURE", "").strip()


def _has_fp8_methods(config: dict[str, Any]) -> bool:
    from biomedquant.methods.kinds import method_kind

    return any(method_kind(s).needs_fp8_gpu for s in config.get("methods", {}).values())
