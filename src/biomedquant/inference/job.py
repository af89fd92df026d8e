"""The inference job: one model x method, every dataset and prompting method on one loaded model.

Loading a model costs more than generating for many runs (a 70B model takes minutes to read
from a shared filesystem, vLLM's engine start tens of seconds more), so one job runs every
dataset and configured prompting method on one engine (:func:`run_inference_datasets`): under
vLLM it hands a dataset's runs' requests to the engine together (continuous batching across
prompting methods); under the other engines the runs go one after another with the model kept
in memory. A job too long for a queue's limit is time-boxed (``stop_at``) and resumed.

Each run (one prompting method) builds its prompts, takes what it can from the generation
cache, from the partial file of an interrupted run and from the parts other shards of the job
wrote, hands the rest to the engine (:mod:`biomedquant.inference.engines`), persists every finished
batch, and writes its generations file and run record, exactly as a job of one run would.
The model is loaded once, and only when some run has something left to generate. Decoding
settings come from one place, :class:`biomedquant.inference.decoding.Decoding`. Predictions are
written in the dataset's order.

A job too long for a queue's time limit is cut into item shards (:class:`Shard`): contiguous
slices of the dataset, all prompting methods each. Every shard but the last writes a part
(the partial format: item key and generation) per run; the last shard generates its own
slice and joins the parts into the per-run files, which are then those of an unsharded run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomedquant.common.files import read_json, read_jsonl, sha256_text, write_json, write_jsonl
from biomedquant.common.provenance import hardware, now, peak_host_rss_bytes, versions
from biomedquant.datasets.registry import get_dataset
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.engines import engine_for, get_engine, require_hardware
from biomedquant.inference.engines.base import decoding_identity
from biomedquant.inference.engines.gpu_peaks import GpuPeaks
from biomedquant.inference.prompting import DEFAULT_SYSTEM_PROMPT, builder, stop_strings
from biomedquant.models.fetch import trusts_remote_code
from biomedquant.models.shapes import shape_facts

log = logging.getLogger(__name__)


def read_partial(path: Path) -> dict[str, dict[str, Any]]:
    """Finished generations of an interrupted run (or a shard's part), by item key; a torn
    last line (the job was killed while writing it) is ignored."""
    found: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return found
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "key" in record and "generation" in record:
                found[record["key"]] = record["generation"]
    return found


class TimeBudgetReached(Exception):
    """A time-boxed job reached its stop time: every finished batch is saved (partial files,
    generation cache), and a rerun of the same job resumes from them."""


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` (from 0) of ``count`` contiguous, near-equal slices of a dataset, or,
    with ``index == count``, the job that joins all ``count`` slices and answers none itself.

    Contiguous in the dataset's order, so the parts join in order and a shard's items are the
    same whatever else changed; written ``k-of-n`` with k from 1 in paths and on the command
    line (``1-of-1`` is the whole dataset), and ``join-of-n`` for the joining job. The last
    shard of a dataset joins the others' parts itself; a joining job takes every shard's
    parts (a job over several datasets whose shards all ran as jobs of their own).
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index <= self.count:
            raise ValueError(f"shard {self.index + 1} of {self.count}: no such shard")

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = re.fullmatch(r"(\d+|join)-of-(\d+)", text.strip())
        if not m:
            raise ValueError(f"shard {text!r}: expected k-of-n or join-of-n, e.g. 2-of-3")
        count = int(m.group(2))
        if m.group(1) == "join":
            return cls(count, count)
        if not 1 <= int(m.group(1)) <= count:
            raise ValueError(f"shard {text!r}: no such shard (k runs from 1 to n)")
        return cls(int(m.group(1)) - 1, count)

    @property
    def label(self) -> str:
        return f"join-of-{self.count}" if self.joins else f"{self.index + 1}-of-{self.count}"

    @property
    def joins(self) -> bool:
        """The joining job: every shard's parts, no items of its own."""
        return self.index == self.count

    @property
    def last(self) -> bool:
        return self.index == self.count - 1

    @property
    def writes_part(self) -> bool:
        """A shard whose outputs are parts for another job to join."""
        return not self.joins and not self.last

    @property
    def parts_joined(self) -> int:
        """How many other shards' parts this job joins."""
        if self.joins:
            return self.count
        return self.count - 1 if self.last else 0

    def items(self, n: int) -> range:
        """Indices of this shard's items among ``n`` (none for the joining job)."""
        if self.joins:
            return range(0)
        return range(self.index * n // self.count, (self.index + 1) * n // self.count)


class SharedEngine:
    """One model load for every dataset of an inference job: the engine is loaded when a
    dataset first has something to generate (not at all when the cache holds everything),
    kept for the datasets after it, and closed when the job ends."""

    def __init__(
        self,
        model_dir: str | Path,
        method: dict[str, Any],
        backend: str,
        decoding: Decoding,
        *,
        gpus: int = 1,
        loader: Callable[..., Any] | None = None,
        context_tokens: Callable[[], int] | None = None,
    ) -> None:
        self._args = (model_dir, method, decoding)
        self._gpus = gpus
        require_hardware(method)
        self.engine_name = engine_for(method, backend)
        self._load = loader or get_engine(self.engine_name).load
        # vLLM sizes its KV cache for one request of max_model_len tokens: the job's own
        # longest prompt plus its cap (job_context_tokens), counted only when it loads
        self._context_tokens = context_tokens
        self.engine: Any = None
        self.loads = 0
        self.info: dict[str, Any] = {}
        # the engine's GPU peaks without out-of-memory attempts (None: torch's counters)
        self.peaks: Any = None
        self.loaded_for: list[str] = []  # "<dataset>/<prompt>" of the runs that needed it

    def get(self, needed_by: Sequence[str]) -> Any:
        if self.engine is None:
            extra = {}
            if self.engine_name == "vllm" and self._context_tokens is not None:
                extra["max_model_len"] = self._context_tokens()
            self.engine = self._load(*self._args, gpus=self._gpus, **extra)
            self.loads += 1
            self.info = dict(self.engine.info)
            self.peaks = getattr(self.engine, "gpu_peaks", None)
        self.loaded_for += list(needed_by)
        return self.engine

    def close(self) -> None:
        if self.engine is not None and hasattr(self.engine, "close"):
            self.engine.close()
        self.engine = None


@dataclass(frozen=True)
class RunSpec:
    """One prompting method of a job, where its files go and its decoding settings.

    ``parts`` are the part files other shards wrote for this run (joined by the last shard).
    For a shard that is not the last, ``out_path`` is its part and ``run_path`` the part's
    record. ``partial_path`` is where finished batches wait for the run to end (default:
    ``<out_path>.partial``); it must lie outside what Snakemake deletes when a job fails, so
    a shard whose outputs are one folder keeps its partial files beside that folder.
    """

    prompt_method: str
    out_path: Path
    run_path: Path
    decoding: Decoding = field(default_factory=Decoding)
    parts: tuple[Path, ...] = ()
    partial_path: Path | None = None


@dataclass
class _Run:
    """A run's state inside the job: prompts, keys, what is known and what is left."""

    spec: RunSpec
    prompts: list[str]
    keys: list[str]
    sampling: Any
    identity: dict[str, Any]
    own: range  # the items this shard answers for
    gens: dict[str, dict[str, Any]]
    from_cache: int
    resumed: int
    from_parts: int
    todo: list[int]
    partial_path: Path
    cache: Any
    stats: dict[str, Any] = field(default_factory=dict)
    gen_seconds: float = 0.0
    generated_with: list[str] = field(default_factory=list)
    deadline: float | None = None  # time.monotonic() after which no batch is started


def run_inference(
    *,
    model_dir: str | Path,
    method: dict[str, Any],
    dataset: str,
    data_path: str | Path,
    prompt_method: str,
    out_path: str | Path,
    run_path: str | Path,
    pool_path: str | Path | None = None,
    decoding: Decoding | None = None,
    seed: int = 0,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    cache_dir: str | Path | None = None,
    backend: str = "transformers",
    gpus: int = 1,
) -> dict[str, Any]:
    """Generate and record the raw outputs for one (model, method, dataset, prompt): a job of
    one run (see :func:`run_inference_job`, which documents the files)."""
    run = RunSpec(
        prompt_method,
        Path(out_path),
        Path(run_path),
        decoding if decoding is not None else Decoding(),
    )
    return run_inference_job(
        model_dir=model_dir,
        method=method,
        dataset=dataset,
        data_path=data_path,
        runs=[run],
        pool_path=pool_path,
        seed=seed,
        system_prompt=system_prompt,
        cache_dir=cache_dir,
        backend=backend,
        gpus=gpus,
    )[0]


@dataclass(frozen=True)
class DatasetJob:
    """One dataset of an inference job: its data, few-shot pool, runs and item shard."""

    dataset: str
    data_path: Path
    runs: tuple[RunSpec, ...]
    pool_path: Path | None = None
    shard: Shard = field(default_factory=Shard)


def run_inference_datasets(
    *,
    model_dir: str | Path,
    method: dict[str, Any],
    datasets: Sequence[DatasetJob],
    seed: int = 0,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    cache_dir: str | Path | None = None,
    backend: str = "transformers",
    engine_loader: Callable[..., Any] | None = None,
    gpus: int = 1,
    stop_at: float | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every dataset of one model x method on one model load (the workflow's inference job):
    :func:`run_inference_job` per dataset, in order, sharing the engine, which is loaded when
    the first dataset has something to generate and closed at the end. Returns each
    dataset's run records. The run records' ``model_load`` says which runs used the load.

    ``stop_at`` (a :func:`time.monotonic` time) time-boxes the job: once it has passed, no
    new batch starts and :class:`TimeBudgetReached` is raised. It is checked after each
    saved batch, so every attempt saves at least one (a job whose load alone outlasts its
    time box still moves on). The partial files of every
    dataset, finished ones included, are kept until the whole job has succeeded, so that a
    rerun after a stop (whose finished files Snakemake deletes) resumes from them even with
    the generation cache off.
    """
    if not datasets:
        raise ValueError("an inference job needs at least one dataset")
    names = [d.dataset for d in datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"datasets repeated in one job: {names}")
    if any(not d.runs for d in datasets):
        raise ValueError("every dataset of an inference job needs at least one run")
    shared = SharedEngine(
        model_dir,
        method,
        backend,
        datasets[0].runs[0].decoding,
        gpus=gpus,
        loader=engine_loader,
        context_tokens=lambda: max(
            job_context_tokens(model_dir, datasets, seed=seed, system_prompt=system_prompt).values()
        ),
    )
    out: dict[str, list[dict[str, Any]]] = {}
    finished_partials: list[Path] = []
    try:
        for job in datasets:
            out[job.dataset] = run_inference_job(
                model_dir=model_dir,
                method=method,
                dataset=job.dataset,
                data_path=job.data_path,
                runs=job.runs,
                pool_path=job.pool_path,
                seed=seed,
                system_prompt=system_prompt,
                cache_dir=cache_dir,
                backend=backend,
                shard=job.shard,
                gpus=gpus,
                engine=shared,
                stop_at=stop_at,
                finished_partials=finished_partials,
            )
    finally:
        shared.close()
    for path in finished_partials:
        _remove_partial(path)
    return out


def _prompt_ids(tokenizer: Any, prompts: Sequence[str]) -> Iterator[list[int]]:
    """Each prompt's token ids as vLLM is handed them (one BOS where the tokenizer adds one)."""
    from biomedquant.inference.engines.vllm import prompt_token_ids

    for prompt in prompts:
        yield prompt_token_ids(tokenizer, prompt)


def job_context_tokens(
    model_dir: str | Path,
    datasets: Sequence[DatasetJob],
    *,
    seed: int = 0,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
) -> dict[str, int]:
    """Per ``<dataset>/<prompting method>`` of a job, its longest prompt (in the model's
    tokens, as the vLLM engine hands them over) plus its new-token cap: the context one of its
    requests may fill. vLLM's ``max_model_len`` is their maximum (vLLM sizes its KV cache so
    that one request of that length fits; its default, the model's full context, does not fit
    beside a 70B model's weights). Built from the job's own prompts, as its runs build them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, padding_side="left", trust_remote_code=trusts_remote_code(model_dir)
    )
    out: dict[str, int] = {}
    for job in datasets:
        spec = get_dataset(job.dataset)
        records = read_jsonl(job.data_path)
        pool = read_jsonl(job.pool_path) if job.pool_path else None
        for run in job.runs:
            build = builder(
                run.prompt_method,
                tokenizer,
                pool=pool,
                spec=spec,
                seed=seed,
                system_prompt=system_prompt,
            )
            longest = max(
                (len(ids) for ids in _prompt_ids(tokenizer, [build(spec, r) for r in records])),
                default=0,
            )
            cap = run.decoding.sampling(spec.task, run.prompt_method, seed=seed).max_new_tokens
            out[f"{job.dataset}/{run.prompt_method}"] = longest + cap
    return out


def _check_model_dir(model_dir: str | Path) -> None:
    """A model folder that is not there is named as such (transformers would read the path as
    a Hub repository id and complain about its characters)."""
    if not Path(model_dir).is_dir():
        raise ValueError(
            f"model folder {model_dir} does not exist: give a fetched or quantized model's"
            " folder (the workflow's resources/models/<model>/<method>)"
        )


def _check_deadline(stop_at: float | None, where: str) -> None:
    if stop_at is not None and time.monotonic() >= stop_at:
        raise TimeBudgetReached(
            f"stopped at the job's time box ({where}): every finished batch is saved, and"
            " the job's next attempt resumes from them"
        )


def _remove_partial(path: Path) -> None:
    """Remove a finished run's partial file, and the folders of partial files it leaves empty
    (``<job output>.partial/<dataset>/``)."""
    path.unlink(missing_ok=True)
    for folder in (path.parent, path.parent.parent):
        if not (folder.name.endswith(".partial") or folder.parent.name.endswith(".partial")):
            continue
        with contextlib.suppress(OSError):  # not empty: another run's partial files wait
            folder.rmdir()


def run_inference_job(
    *,
    model_dir: str | Path,
    method: dict[str, Any],
    dataset: str,
    data_path: str | Path,
    runs: Sequence[RunSpec],
    pool_path: str | Path | None = None,
    seed: int = 0,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    cache_dir: str | Path | None = None,
    backend: str = "transformers",
    shard: Shard | None = None,
    engine_loader: Callable[..., Any] | None = None,
    gpus: int = 1,
    engine: SharedEngine | None = None,
    stop_at: float | None = None,
    finished_partials: list[Path] | None = None,
) -> list[dict[str, Any]]:
    """Generate and record the raw outputs of every run (prompting method) of one dataset,
    on one model load; returns the runs' records in the order of ``runs``.

    Each generations file holds, per item, the prompt and its hash, the raw output(s), why
    generation stopped and the token counts; it is not parsed here. Parsing is its own step
    (:mod:`biomedquant.evaluation.parsing`, run by :mod:`biomedquant.evaluation.job`), so a parser
    fix re-reads stored outputs and never costs a GPU-hour.

    Generations come, in this order, from the generation cache (``cache_dir``; None turns it
    off), from the partial file of an interrupted run (``<out>.partial``), from the parts of
    the other shards (``RunSpec.parts``), and only then from the model, which is loaded once
    for all runs and not at all when nothing is left to generate. Every finished batch is
    appended to the partial file (flushed and synced) and to the cache; a run's file appears,
    atomically, only when all its items are done. The run records say what the one load cost
    and which runs shared it (``model_load``).

    ``shard`` (default: the whole dataset) names the slice this job generates; a shard that is
    not the last writes its runs' parts, the last one joins them. Each run's decoding settings
    give its token cap, self-consistency chains and batch shape (the batch shape is the job's:
    the first run's). ``engine_loader`` replaces the engine class's ``load`` (tests count loads
    through it). ``gpus`` is how many GPUs the job was given (the engine's ``load`` uses those):
    a resource, like the CPU threads, so it changes speed, not generations, and is in no key;
    the run records say how many were used (``gpus``). ``engine``: the job's one model load
    when it runs several datasets (:func:`run_inference_datasets`); the caller closes it.
    ``stop_at`` time-boxes the job (see :func:`run_inference_datasets`); a run's partial file
    is removed when its file is written, or, with ``finished_partials``, listed there for the
    caller to remove when its whole job has succeeded.
    """
    from transformers import AutoTokenizer, set_seed

    from biomedquant.inference.cache import GenerationCache, model_key

    if not runs:
        raise ValueError("an inference job needs at least one run (prompting method)")
    _check_model_dir(model_dir)
    names = [r.prompt_method for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"prompting methods repeated in one job: {names}")
    shard = shard if shard is not None else Shard()
    if shard.parts_joined:
        missing = [r.prompt_method for r in runs if len(r.parts) != shard.parts_joined]
        if missing:
            raise ValueError(
                f"shard {shard.label} joins the parts of {shard.parts_joined} shard(s): runs"
                f" {missing} name a different number of parts"
            )
    set_seed(seed)
    spec = get_dataset(dataset)
    records = read_jsonl(data_path)
    pool = read_jsonl(pool_path) if pool_path else None
    if pool is not None and Path(pool_path).resolve() == Path(data_path).resolve():
        raise ValueError(f"few-shot pool {pool_path} is the evaluated split itself")
    require_hardware(method)  # fp8 without an FP8 GPU stops before anything loads
    backend = engine_for(method, backend)  # the table's engine (gguf: llama.cpp)
    engine_class = get_engine(backend)
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, padding_side="left", trust_remote_code=trusts_remote_code(model_dir)
    )
    # Stop strings only for the plain prompt format: a chat template's own end-of-turn token
    # ends the answer, and its generation prompt may end with a newline that, followed by an
    # echoed "Sentence:", would look like a next example's header.
    stops = [] if getattr(tokenizer, "chat_template", None) else stop_strings(spec)
    # The model key is part of every item key, so neither the cache, nor the partial file of
    # an interrupted run, nor a shard's part can hand over generations of another model.
    mkey = model_key(model_dir, method, backend)
    own = shard.items(len(records))
    # One cache file per model key: every run of the job reads and writes it (and is closed
    # whatever happens: a time-boxed attempt that stops, or a failed batch).
    cache = GenerationCache(cache_dir, mkey) if cache_dir else None
    try:
        state = [
            _prepare_run(
                run_spec,
                dataset=dataset,
                spec=spec,
                records=records,
                pool=pool,
                tokenizer=tokenizer,
                stops=stops,
                engine_class=engine_class,
                mkey=mkey,
                own=own,
                shard=shard,
                cache=cache,
                seed=seed,
                system_prompt=system_prompt,
                stop_at=stop_at,
            )
            for run_spec in runs
        ]
        pending = [r for r in state if r.todo]
        own_engine = engine is None
        shared = (
            SharedEngine(
                model_dir,
                method,
                backend,
                runs[0].decoding,
                gpus=gpus,
                loader=engine_loader,
                context_tokens=lambda: max(
                    len(ids) + r.sampling.max_new_tokens
                    for r in state
                    for ids in _prompt_ids(tokenizer, r.prompts)
                ),
            )
            if own_engine
            else engine
        )
        try:
            if pending:
                loaded = shared.get([f"{dataset}/{p.spec.prompt_method}" for p in pending])
                if hasattr(loaded, "generate_runs") and len(pending) > 1:
                    _generate_together(loaded, pending, dataset)
                else:
                    for r in pending:
                        # Sampled chains follow torch's global seed: each run starts from the job
                        # seed, as it would in a job of its own.
                        set_seed(seed)
                        _generate_run(loaded, r, dataset)
        finally:
            if own_engine:
                shared.close()
        measured = _measurement(shared.loads, shared.info, cache, shared.peaks)
    finally:
        if cache is not None:
            cache.close()

    sharing = [r.spec.prompt_method for r in state]
    out = []
    for r in state:
        model_load = {
            "loads_in_job": shared.loads,
            "seconds": shared.info.get("load_seconds"),
            # the runs of this dataset that needed the model, and every run that used the
            # load so far (a job over several datasets shares one)
            "loaded_for": [p.spec.prompt_method for p in pending],
            "used_by": list(shared.loaded_for),
            "shared_by": sharing,
            "shard": shard.label,
        }
        out.append(
            _finish_run(
                r,
                records,
                model_dir=model_dir,
                method=method,
                dataset=dataset,
                data_path=data_path,
                pool_path=pool_path,
                backend=backend,
                seed=seed,
                shard=shard,
                measured=measured,
                model_load=model_load,
            )
        )
        if finished_partials is None:
            _remove_partial(r.partial_path)
        else:
            finished_partials.append(r.partial_path)
    return out


def _prepare_run(
    run_spec: RunSpec,
    *,
    dataset: str,
    spec: Any,
    records: list[dict[str, Any]],
    pool: list[dict[str, Any]] | None,
    tokenizer: Any,
    stops: list[str],
    engine_class: Any,
    mkey: str,
    own: Sequence[int],
    shard: Shard,
    cache: Any,
    seed: int,
    system_prompt: str,
    stop_at: float | None,
) -> _Run:
    """One run's prompts and keys, and what of it is already generated: from the cache, an
    interrupted attempt, or the parts of other shards; what is left is its to-do list."""
    from biomedquant.inference.cache import entry_key

    build = builder(
        run_spec.prompt_method,
        tokenizer,
        pool=pool,
        spec=spec,
        seed=seed,
        system_prompt=system_prompt,
    )
    prompts = [build(spec, rec) for rec in records]
    sampling = run_spec.decoding.sampling(spec.task, run_spec.prompt_method, seed=seed, stop=stops)
    identity = decoding_identity(sampling, engine_class)
    keys = [entry_key(p, {**identity, "model": mkey}) for p in prompts]
    needed = {keys[i] for i in own}
    gens: dict[str, dict[str, Any]] = {}
    if cache is not None:
        gens.update(cache.get_many(sorted(needed)))
    from_cache = len(gens)
    partial_path = run_spec.partial_path or Path(f"{run_spec.out_path}.partial")
    resumed = {k: v for k, v in read_partial(partial_path).items() if k in needed and k not in gens}
    gens.update(resumed)
    from_parts = _join_parts(run_spec, keys, own, gens)
    todo = sorted({keys[i]: i for i in own if keys[i] not in gens}.values())
    log.info(
        "%s %s%s: %d items, %d from the cache, %d from an interrupted run, %d from other"
        " shards, %d to generate",
        dataset,
        run_spec.prompt_method,
        f" (shard {shard.label})" if shard.count > 1 else "",
        len(own),
        from_cache,
        len(resumed),
        from_parts,
        len(todo),
    )
    return _Run(
        run_spec,
        prompts,
        keys,
        sampling,
        identity,
        own,
        gens,
        from_cache,
        len(resumed),
        from_parts,
        todo,
        partial_path,
        cache,
        deadline=stop_at,
    )


def _measurement(
    loads: int, load_info: dict[str, Any], cache: Any, peaks: Any = None
) -> dict[str, Any]:
    """What the job's model load measured: this job's, kept in the cache for later jobs; or,
    when this job loaded nothing (every generation cached), the last measuring job's from the
    cache, so that a rerun served from the cache still reports the memory and load time the
    tables and figures need. ``measured_in`` says which (None: nothing measured, anywhere).
    GPU peaks, summed over the visible GPUs (None without one), are the engine's ``peaks``
    where it keeps them (batches that ran out of memory left out,
    :mod:`biomedquant.inference.engines.gpu_peaks`), else torch's counters since the load."""
    if loads:
        peaks = peaks if peaks is not None else GpuPeaks()
        facts = {
            "load_info": load_info,
            "peak_gpu_allocated_bytes": peaks.total("allocated"),
            "peak_gpu_reserved_bytes": peaks.total("reserved"),
            "peak_host_rss_bytes": peak_host_rss_bytes(),
            "hardware": hardware(),
            "measured_at": now(),
        }
        if cache is not None:
            cache.put_measurement(facts)
        return {**facts, "measured_in": "this job"}
    earlier = cache.measurement() if cache is not None else None
    if earlier is None:
        return {"load_info": {}, "measured_in": None}
    return {**earlier, "measured_in": "an earlier job (generation cache)"}


def _join_parts(
    run_spec: RunSpec, keys: list[str], own: range, gens: dict[str, dict[str, Any]]
) -> int:
    """Take the other shards' generations of this run into ``gens``; every item outside this
    shard's slice must be in a part (else the parts belong to another model or settings)."""
    if not run_spec.parts:
        return 0
    found: dict[str, dict[str, Any]] = {}
    for part in run_spec.parts:
        if not Path(part).exists():
            raise FileNotFoundError(f"shard part {part} of {run_spec.prompt_method} is missing")
        found.update(read_partial(Path(part)))
    others = [i for i in range(len(keys)) if i not in own]
    lacking = [i for i in others if keys[i] not in found]
    if lacking:
        raise ValueError(
            f"{run_spec.prompt_method}: the shard parts {[str(p) for p in run_spec.parts]}"
            f" lack {len(lacking)} of the other shards' {len(others)} items (first: item"
            f" {lacking[0]}); they were written for another model, method or decoding:"
            " rerun the shards"
        )
    taken = 0
    for i in others:
        if keys[i] not in gens:
            gens[keys[i]] = found[keys[i]]
            taken += 1
    return taken


def _persister(r: _Run, partial: Any) -> Callable[[dict[int, dict[str, Any]]], None]:
    """The ``on_batch`` of one run: append the batch to its partial file (synced) and cache."""

    def persist(done: dict[int, dict[str, Any]]) -> None:
        batch = {r.keys[r.todo[j]]: gen for j, gen in done.items()}
        for key, gen in batch.items():
            partial.write(json.dumps({"key": key, "generation": gen}) + "\n")
        partial.flush()
        os.fsync(partial.fileno())
        if r.cache is not None:
            r.cache.put_many(batch)
        r.gens.update(batch)
        _check_deadline(r.deadline, f"{r.spec.prompt_method}: {len(r.gens)} items saved")

    return persist


def _generate_run(engine: Any, r: _Run, dataset: str) -> None:
    """One run's missing generations, on the loaded engine."""
    r.partial_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(r.partial_path, "a", encoding="utf-8") as partial,
        _progress(len(r.todo), f"{dataset} {r.spec.prompt_method}") as bar,
    ):
        start = time.time()
        engine.generate(
            [r.prompts[i] for i in r.todo],
            r.sampling,
            on_batch=_persister(r, partial),
            stats=r.stats,
            progress=bar,
        )
        r.gen_seconds = time.time() - start
    r.generated_with = [r.spec.prompt_method]


def _generate_together(engine: Any, pending: list[_Run], dataset: str) -> None:
    """Every run's missing generations handed to the engine at once (an engine that batches
    continuously keeps the GPU full across prompting methods); each run's batches still go
    to its own partial file and cache."""
    with contextlib.ExitStack() as stack:
        persisters = []
        for r in pending:
            r.partial_path.parent.mkdir(parents=True, exist_ok=True)
            partial = stack.enter_context(open(r.partial_path, "a", encoding="utf-8"))
            persisters.append(_persister(r, partial))
        total = sum(len(r.todo) for r in pending)
        bar = stack.enter_context(_progress(total, f"{dataset} (all prompting methods)"))
        stats = [r.stats for r in pending]
        start = time.time()
        engine.generate_runs(
            [([r.prompts[i] for i in r.todo], r.sampling) for r in pending],
            on_batch=persisters,
            stats=stats,
            progress=bar,
        )
        seconds = time.time() - start
    together = [r.spec.prompt_method for r in pending]
    for r in pending:
        r.gen_seconds = seconds
        r.generated_with = together


def _finish_run(
    r: _Run,
    records: list[dict[str, Any]],
    *,
    model_dir: str | Path,
    method: dict[str, Any],
    dataset: str,
    data_path: str | Path,
    pool_path: str | Path | None,
    backend: str,
    seed: int,
    shard: Shard,
    measured: dict[str, Any],
    model_load: dict[str, Any],
) -> dict[str, Any]:
    """Write one run's generations (a shard's part, or the whole run) and its run record.

    The load facts and peak memory are the job's (``measured``, see :func:`_measurement`):
    the model is loaded once for all runs of the job, so they belong to none of them alone."""
    load_info = measured["load_info"]
    decoding = r.spec.decoding
    samples = r.sampling.samples
    part = shard.writes_part
    if part:
        # A part is the partial format, complete for this shard's slice, in the dataset's order.
        lines = [
            {"key": r.keys[i], "id": records[i]["id"], "generation": r.gens[r.keys[i]]}
            for i in r.own
        ]
        write_jsonl(r.spec.out_path, lines)
        items = list(r.own)
    else:
        preds = []
        for rec, prompt, key in zip(records, r.prompts, r.keys, strict=True):
            gen = r.gens[key]
            # cache entries written before engines recorded stop reasons have none
            reasons = gen.get("stop_reasons") or [None] * len(gen["outputs"])
            preds.append(
                {
                    "id": rec["id"],
                    "prompt_sha256": sha256_text(prompt),
                    "prompt": prompt,
                    "output": gen["outputs"][0] if samples == 1 else gen["outputs"],
                    "stop_reason": reasons[0] if samples == 1 else reasons,
                    "n_prompt_tokens": gen["n_prompt_tokens"],
                    "n_new_tokens": gen["n_new_tokens"],
                }
            )
        write_jsonl(r.spec.out_path, preds)
        items = list(range(len(records)))
    reasons_seen = Counter(
        str(reason)
        for i in items
        for reason in (
            r.gens[r.keys[i]].get("stop_reasons") or [None] * len(r.gens[r.keys[i]]["outputs"])
        )[:samples]
    )
    n_generated = len(r.todo)
    new_tokens = sum(r.gens[r.keys[i]]["n_new_tokens"] for i in r.todo)
    gen_seconds = r.gen_seconds
    model_prov_path = Path(model_dir) / "provenance.json"
    stats = dict(r.stats)
    shards = _shard_summaries(r.spec.parts) if r.spec.parts else None
    run = {
        "dataset": dataset,
        "prompt_method": r.spec.prompt_method,
        "method": method,
        "backend": backend,
        "model_dir": str(model_dir),
        "model_weights": read_json(model_prov_path) if model_prov_path.exists() else None,
        "data_path": str(data_path),
        "fewshot_pool": str(pool_path) if pool_path else None,
        "n_items": len(items),
        "stop_reason": dict(reasons_seen),
        "n_generated": n_generated,
        "n_from_cache": r.from_cache,
        "n_resumed": r.resumed,
        "n_from_shards": r.from_parts,
        # None when off, or turned off by a full disk or a read-only folder (one warning)
        "generation_cache": str(r.cache.path) if r.cache is not None and r.cache.enabled else None,
        "batch_size": decoding.batch_size,
        "batch_tokens": decoding.batch_tokens,
        **stats.pop("engine_metrics", {}),
        **{f"batch_{k}": v for k, v in stats.items()},
        "max_new_tokens": r.sampling.max_new_tokens,
        "decoding": r.identity,
        "seed": seed,
        **load_info,
        "model_load": model_load,
        # the model's size as the runtime model counts it (biomedquant.planning.throughput.refit)
        "model_shape": shape_facts(model_dir, load_info.get("compute_dtype")),
        "shards": shards,
        "generate_seconds": round(gen_seconds, 3),
        # under an engine that took every run's requests at once, the seconds are theirs
        "generated_with": r.generated_with,
        "items_per_second": round(n_generated / gen_seconds, 4) if gen_seconds else None,
        "new_tokens": new_tokens,
        "new_tokens_per_second": round(new_tokens / gen_seconds, 3) if gen_seconds else None,
        "peak_gpu_allocated_bytes": measured.get("peak_gpu_allocated_bytes"),
        "peak_gpu_reserved_bytes": measured.get("peak_gpu_reserved_bytes"),
        "peak_host_rss_bytes": measured.get("peak_host_rss_bytes", peak_host_rss_bytes()),
        # where the load facts and peaks above were measured, and on what
        "measured_in": measured["measured_in"],
        "measured_at": measured.get("measured_at"),
        "measured_on": measured.get("hardware"),
        "hardware": hardware(),
        "versions": versions(),
        "written_at": now(),
    }
    write_json(r.spec.run_path, run)
    log.info(
        "%s %s: %d items (%d generated in %.1fs: %.2f items/s, %.1f new tokens/s)",
        dataset,
        r.spec.prompt_method,
        len(items),
        n_generated,
        gen_seconds,
        run["items_per_second"] or 0,
        run["new_tokens_per_second"] or 0,
    )
    return run


def part_record_path(part: str | Path) -> Path:
    """The run record beside a shard's part file (``<prompt>.jsonl`` -> ``<prompt>.run.json``)."""
    part = Path(part)
    return part.with_name(part.name.removesuffix(".jsonl") + ".run.json")


def _shard_summaries(parts: Sequence[Path]) -> list[dict[str, Any]]:
    """What each other shard's record says of its work (for the joined run record)."""
    out = []
    for part in parts:
        record_path = part_record_path(part)
        if not record_path.exists():
            continue
        rec = read_json(record_path)
        out.append(
            {
                "shard": (rec.get("model_load") or {}).get("shard"),
                "n_items": rec.get("n_items"),
                "n_generated": rec.get("n_generated"),
                "generate_seconds": rec.get("generate_seconds"),
                "load_seconds": rec.get("load_seconds"),
                "new_tokens": rec.get("new_tokens"),
                "hardware": rec.get("hardware"),
            }
        )
    return out


def runs_from_settings(
    settings: Mapping[str, Any], outputs: Sequence[tuple[str, str, str]], parts: Sequence[str]
) -> list[RunSpec]:
    """The job's runs from the workflow's settings (``runs``: per prompting method, its
    decoding keys) and the output paths given per prompting method; ``parts`` are the folders
    of the other shards' parts (each holds ``<prompt>.jsonl``)."""
    per_run = settings.get("runs") or {}
    common = {k: settings.get(k) for k in ("batch_size", "batch_tokens")}
    specs = []
    for prompt, out, record in outputs:
        decoding = Decoding.from_settings({**common, **(per_run.get(prompt) or {})})
        specs.append(
            RunSpec(
                prompt,
                Path(out),
                Path(record),
                decoding,
                tuple(Path(folder) / f"{prompt}.jsonl" for folder in parts),
            )
        )
    return specs


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Any]:
    """A tqdm bar on stderr (the job log): items, items/s and the last batch's tokens."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="item", mininterval=5, file=sys.stderr)
    try:
        yield bar
    finally:
        bar.close()
