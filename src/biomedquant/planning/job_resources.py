"""What one GPU job asks a scheduler for: host memory, GPU memory and wall time.

The GPU rules (``infer``, ``quantize_model``, ``perplexity``) take their ``mem_mb``,
``gpu_mem_mb`` and ``runtime`` from here (through ``workflow/rules/resources.smk``), so that
on a cluster a 70B job asks for what it needs and a 1B job does not hold a large GPU for
hours. A flat figure per rule would be wrong in one direction or the other for a study that
spans 0.1B to 72B parameters.

GPU memory is the fit estimator's (:func:`biomedquant.planning.estimator.estimate`), for the same
token budget the plan table uses, so ``snakemake -n`` and ``biomedquant plan`` agree. Host memory
and runtime are coarse models stated below with their constants; they are meant to be generous,
not tight, because a job that runs out of time or memory costs a whole retry. ``runtime``
grows with the attempt (and host memory by half of itself per attempt), so a job that hit a
limit asks for more when Snakemake retries it.

Runtime is :mod:`biomedquant.planning.throughput`'s model of the job's engine on the study's device
(``scheduling.gpu``; fitted rates from ``scheduling.throughput_file`` where a site has them),
spread over the job's GPUs: a CPU-only node (or the test cluster, which has fake GPUs) is one
to two orders of magnitude slower per token than the GPU the requests assume.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from biomedquant.common.gpus import GIB, GPU_COUNTS, gpus_needed
from biomedquant.inference.decoding import Decoding
from biomedquant.methods.engines import engine_for
from biomedquant.methods.kinds import linear_bytes_per_weight, method_kind
from biomedquant.models.shapes import ModelShape, shape_for_model
from biomedquant.planning.estimator import estimate, weight_bytes
from biomedquant.planning.throughput import BACKENDS, Throughput, work_seconds
from biomedquant.planning.tokens import (
    FALLBACK_ITEM_TOKENS,
    FALLBACK_TOKENS_PER_SHOT,
    PERPLEXITY_TEXTS,
    OutputLengths,
    output_prior,
    prompt_tokens,
)

MIB = 1024**2
Rule = Literal["infer", "quantize_model", "perplexity"]

# Host memory: the Python process with torch, CUDA libraries and tokenizer, before weights.
HOST_BASE_BYTES = 4 * GIB
# Reading weights from a shared filesystem (pessimistic: network storage under load).
LOAD_BYTES_PER_S = 250e6
# GPTQ: about 3 minutes per billion parameters on one data-centre GPU (Hessians and the
# column-by-column solve per layer dominate; calibration forward passes are minor).
GPTQ_SECONDS_PER_BILLION = 180
# Quantization done on the CPU (round-to-nearest, GGUF): bytes of 16-bit weights rounded
# and packed per second (numpy/torch or llama.cpp's quantizer on a many-core node), the
# effective float32 FLOP/s of that node, and the quality check's cost: about three forward
# passes over its held-out tokens (biomedquant.quantization.quality.heldout_tokens: at least
# the widest layer's inputs, the MLP's down projection, ModelShape.intermediate).
CPU_QUANTIZE_BYTES_PER_S = 200e6
CPU_FLOPS = 0.5e12
QUALITY_CHECK_PASSES = 3
QUALITY_CHECK_MIN_TOKENS = 1024
# What a job asks for: its estimate (the runtime model's load and work, plus a fixed start-up
# margin: queue-side start, imports, CUDA init) times a safety factor, rounded up to the minute,
# never more than 1.5 x the estimate on a first attempt and never the wall-time limit unless
# the estimate needs it. 1.3: the runtime model's refit to this project's CPU run records errs
# by at most 18% (median 7%, tests/planning/test_throughput.py), and the output lengths are a
# prior; a job killed at its limit loses nothing (its retry resumes from the saved batches and
# asks twice the time). A retry asks the first request times the attempt.
SAFETY = 1.3
STARTUP_MINUTES = 5
# When neither the shape nor params_b of a model is known.
UNKNOWN = {"mem_mb": 32 * 1024, "gpu_mem_mb": 40 * 1024, "runtime": 8 * 60}


@dataclass(frozen=True)
class Workload:
    """What one inference job computes: how many sequences, how long.

    ``new_tokens`` is the cap; ``item_tokens`` and ``shared_tokens`` the prompt tokens of an
    item and of the prefix all items share, ``stopped_tokens`` the prior length of an output
    that stops by itself and ``cap_share`` the share of outputs that run to the cap
    (:mod:`biomedquant.planning.tokens`). A workload built by hand without them costs every
    output at its cap with the old flat prompt figures (400 tokens per item and per shot).
    """

    items: int
    new_tokens: int
    shots: int = 0
    samples: int = 1
    batch_size: int = Decoding.batch_size
    batch_tokens: int = Decoding.batch_tokens
    continuous_rows: int = Decoding.continuous_rows
    item_tokens: float = FALLBACK_ITEM_TOKENS
    shared_tokens: float | None = None  # None: shots x the flat per-shot figure
    stopped_tokens: float | None = None  # None: every output at the cap
    cap_share: float = 1.0

    @property
    def forward_passes(self) -> int:
        """Sequential passes through the model, each reading every weight: per batch of rows,
        one prefill pass and one per new token (every output at its cap: an upper bound)."""
        rows = self.items * self.samples
        return math.ceil(rows / self.batch_size) * (1 + self.new_tokens)

    @property
    def shared(self) -> float:
        if self.shared_tokens is not None:
            return self.shared_tokens
        return float(self.shots * FALLBACK_TOKENS_PER_SHOT)

    @property
    def prefill_tokens(self) -> float:
        """Tokens prefilled: each item's own, the shared prefix once (prefix caching)."""
        return self.items * self.item_tokens + self.shared

    @property
    def output_tokens(self) -> float:
        """Expected tokens generated per row under the output prior (the cap without one)."""
        if self.stopped_tokens is None:
            return float(self.new_tokens)
        return (1 - self.cap_share) * self.stopped_tokens + self.cap_share * self.new_tokens


def infer_workload(
    dataset: str,
    prompt: str,
    *,
    limit: int | None = None,
    decoding: Decoding | None = None,
    lengths: Mapping[tuple[str, str], OutputLengths] | None = None,
) -> Workload:
    """The workload of one ``infer`` job, from the registry's facts, the decoding settings
    (default: :class:`~biomedquant.inference.decoding.Decoding`'s defaults) and the measured
    prompt tokens with the output prior (:mod:`biomedquant.planning.tokens`), as the job itself
    resolves them: items are the official test size (or ``limit``, when smaller), new tokens the
    cap or the task's default, rows the self-consistency chains per item. ``lengths``: output
    lengths measured by a finished study (a refit file's, :func:`read_output_lengths`), which
    replace the prior where they hold the dataset x prompting method.
    """
    from biomedquant.datasets.registry import get_dataset
    from biomedquant.inference.prompting import get_prompt_method

    decoding = decoding if decoding is not None else Decoding()
    spec = get_dataset(dataset)
    items = min(spec.test_size, limit) if limit else spec.test_size
    method = get_prompt_method(prompt)
    cap = decoding.max_new_tokens_for(spec.task, prompt)
    counts = prompt_tokens(dataset, prompt)
    stopped, share = output_prior(counts.answer, cap, method.chain_of_thought)
    measured = (lengths or {}).get((dataset, prompt))
    if measured is not None:
        stopped, share = min(float(cap), measured.stopped), measured.cap_share
    return Workload(
        items=items,
        new_tokens=cap,
        shots=method.shots,
        samples=decoding.samples(prompt),
        batch_size=decoding.batch_size,
        batch_tokens=decoding.batch_tokens,
        continuous_rows=decoding.continuous_rows,
        item_tokens=counts.own,
        shared_tokens=counts.shared,
        stopped_tokens=stopped,
        cap_share=share,
    )


def perplexity_workload(
    datasets: list[str], *, limit: int | None = None, max_length: int = 512
) -> Workload:
    """The workload of one ``perplexity`` job: one forward pass per distinct test text of
    every dataset (no generation), each up to ``max_length`` tokens: the measured share of
    distinct texts and their mean tokens (:data:`biomedquant.planning.tokens.PERPLEXITY_TEXTS`;
    a dataset without a measurement, every item at the flat item figure)."""
    from biomedquant.datasets.registry import get_dataset

    texts, tokens = 0, 0.0
    for name in datasets:
        n = get_dataset(name).test_size
        n = min(n, limit) if limit else n
        share, mean = PERPLEXITY_TEXTS.get(name, (1.0, FALLBACK_ITEM_TOKENS))
        k = max(1, round(n * share))
        texts += k
        tokens += k * min(float(max_length), mean)
    return Workload(
        items=texts,
        new_tokens=0,
        batch_size=1,
        batch_tokens=max_length,
        item_tokens=tokens / texts if texts else 0.0,
        shared_tokens=0.0,
    )


def _mib(n_bytes: float) -> int:
    return max(1, math.ceil(n_bytes / MIB))


def estimate_minutes(seconds: float) -> float:
    """A job's expected minutes: its modelled seconds and the start-up margin."""
    return seconds / 60 + STARTUP_MINUTES


def _minutes(seconds: float, attempt: int) -> int:
    """The runtime a job asks for on ``attempt``: the safety factor on its estimate, rounded
    up to the minute, times the attempt. The estimate holds the start-up margin, so it is at
    least 5 minutes, and 1.3 x it plus the rounding's minute stays within 1.5 x it."""
    return math.ceil(SAFETY * estimate_minutes(seconds)) * attempt


def _host_mb(n_bytes: float, attempt: int) -> int:
    return _mib((HOST_BASE_BYTES + n_bytes) * (1 + 0.5 * (attempt - 1)))


@dataclass(frozen=True)
class Runtime:
    """How a job's runtime is modelled: the engine, the rates it reaches on the study's
    device (:class:`biomedquant.planning.throughput.Throughput`) and the GPUs it runs on."""

    backend: str = "transformers"
    throughput: Throughput = Throughput()
    gpus: int = 1


def run_seconds(
    shape: ModelShape,
    method: dict[str, Any],
    works: Sequence[Workload],
    runtime: Runtime = Runtime(),
) -> tuple[float, float]:
    """(load, work) seconds of a job that loads the model once and runs it over ``works``
    (one per prompting method of a grouped inference job): reading the weights and starting
    the engine, then prefill and decoding (:func:`biomedquant.planning.throughput.work_seconds`)."""
    backend = engine_for(method, runtime.backend)
    load = _read_bytes(shape, method) / LOAD_BYTES_PER_S + BACKENDS[backend].start_s
    work = work_seconds(
        shape, method, works, backend=backend, throughput=runtime.throughput, gpus=runtime.gpus
    )
    return load, work


def _read_bytes(shape: ModelShape, method: dict[str, Any]) -> int:
    """Bytes a job reads to load the model: kinds quantized while loading (bitsandbytes,
    fp8) read the 16-bit weights, the others their own artifact."""
    if method_kind(method).load_time:
        return weight_bytes(shape, {"kind": "none"})
    return weight_bytes(shape, method)


def _run(
    shape: ModelShape,
    method: dict[str, Any],
    works: Sequence[Workload],
    attempt: int,
    shards: int = 1,
    runtime: Runtime = Runtime(),
) -> dict[str, int]:
    """A job that loads the model and runs it over its workloads (``infer``, ``perplexity``),
    ``1/shards`` of the work when the job is one of ``shards`` item shards."""
    est = estimate(shape, method, tokens=works[0].batch_tokens)
    load, work = run_seconds(shape, method, works, runtime)
    return {
        # transformers may stage the loaded weights in host memory before moving them over.
        "mem_mb": _host_mb(_read_bytes(shape, method), attempt),
        "gpu_mem_mb": _mib(est["total_gb"] * 1e9),
        "runtime": _minutes(load + work / shards, attempt),
    }


# A job that cannot finish within the wall-time limit runs time-boxed: it starts no new batch
# this long before its limit (room for the batch in flight, writing its files and the queue's
# own start), stops and is resubmitted, resuming from its saved batches.
TIME_BOX_MARGIN_MINUTES = 2 * STARTUP_MINUTES


def time_box_minutes(max_minutes: float) -> int:
    """Minutes after its start at which a time-boxed job starts no new batch: its request
    (the limit, rounded down to 5 minutes as requests are) less the margin."""
    return int(5 * math.floor(max_minutes / 5) - TIME_BOX_MARGIN_MINUTES)


@dataclass(frozen=True)
class InferenceSplit:
    """How a model x method inference job runs under a wall-time limit.

    ``attempts``: scheduler jobs it runs as, one after another, each on one model load (1: it
    fits the limit; more: it is time-boxed, stops before the limit and is resubmitted, and
    every attempt resumes where the last stopped). ``parts``: item shards that run side by
    side, each over the same slice of every dataset, each time-boxed in turn (1 for almost
    every job: only work that would need more than ``max_attempts`` attempts is cut).
    """

    parts: int = 1
    attempts: int = 1


def inference_split(
    model_spec: dict[str, Any],
    method_spec: dict[str, Any],
    workloads: Sequence[Workload],
    max_minutes: float,
    runtime: Runtime = Runtime(),
    max_attempts: int = 1,
) -> InferenceSplit:
    """The parts and attempts of a model x method inference job (every dataset and prompting
    method of the study on one load per attempt) so that no attempt asks for more than
    ``max_minutes`` and no part needs more than ``max_attempts`` attempts.

    An attempt of a time-boxed job generates for :func:`time_box_minutes` of the limit, of
    which the model load is paid each time; the work it gets through is counted with the
    safety factor, as requests are. Without a model shape the job is one attempt of one part
    (its runtime is a flat estimate, capped at the limit). A limit that leaves no time after the
    load is an error.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts counts from 1, got {max_attempts}")
    shape = shape_for_model(model_spec)
    if shape is None or not workloads:
        return InferenceSplit()
    load, work = run_seconds(shape, method_spec, workloads, runtime)
    if _minutes(load + work, 1) <= max_minutes:
        return InferenceSplit()
    budget = time_box_minutes(max_minutes) * 60 / SAFETY
    if budget <= load:
        raise ValueError(
            f"a wall-time limit of {max_minutes:g} min leaves no time to generate: loading the"
            f" model takes about {load / 60:.0f} min, and the safety factor {SAFETY:g} and"
            f" {TIME_BOX_MARGIN_MINUTES} min of margin come on top; raise"
            " scheduling.max_job_hours"
        )
    attempts = math.ceil(work / (budget - load))
    most = max(1, min(w.items for w in workloads))
    parts = min(most, math.ceil(attempts / max_attempts))
    return InferenceSplit(parts, math.ceil(work / parts / (budget - load)))


def job_gpus(
    model_spec: dict[str, Any],
    method_spec: dict[str, Any],
    rule: Rule,
    *,
    gpu_gib: float,
    max_gpus: int = GPU_COUNTS[-1],
    tokens: int = Decoding.batch_tokens,
) -> int:
    """GPUs one job asks for: 0 for quantization a kind does on the CPU (round-to-nearest,
    GGUF), 1 for the others (GPTQ and AWQ hold one block at a time); inference and perplexity
    as many as the fit estimate needs (``max_gpus`` when even those do not hold it: the
    study check refuses such a config before it runs). Without a model shape, 1."""
    kind = method_kind(method_spec)
    if rule == "quantize_model":
        return 0 if kind.quantizes_on_cpu else 1
    shape = shape_for_model(model_spec)
    if shape is None:
        return 1
    total = estimate(shape, method_spec, tokens=tokens)["total_gb"]
    return gpus_needed(total, gpu_gib, max_gpus) or max_gpus


def quantize_seconds(shape: ModelShape, method: dict[str, Any]) -> float:
    """Expected seconds of a ``quantize_model`` job (no safety margin): reading the 16-bit
    weights and writing the artifact, then GPTQ's solve on a GPU, or rounding (llama.cpp's
    quantizer) and the quality check's forward passes on the CPU."""
    sixteen_bit = weight_bytes(shape, {"kind": "none"})
    io_seconds = (sixteen_bit + weight_bytes(shape, method)) / LOAD_BYTES_PER_S
    if method_kind(method).quantizes_on_cpu:
        # quality.heldout_tokens, without importing the quantization package at plan time
        # (tests/planning/test_job_resources.py checks they agree)
        tokens = QUALITY_CHECK_PASSES * max(QUALITY_CHECK_MIN_TOKENS, shape.intermediate)
        check_flops = 2 * shape.params * tokens
        return io_seconds + sixteen_bit / CPU_QUANTIZE_BYTES_PER_S + check_flops / CPU_FLOPS
    return io_seconds + GPTQ_SECONDS_PER_BILLION * shape.params / 1e9


def _quantize(shape: ModelShape, method: dict[str, Any], attempt: int) -> dict[str, int]:
    sixteen_bit = weight_bytes(shape, {"kind": "none"})
    quantized = weight_bytes(shape, method)
    calib = method.get("calibration", {})
    seq_len = int(calib.get("seq_len", 512))
    calib_tokens = int(calib.get("n_samples", 12)) * seq_len
    # GPU working set of GPTQ: one transformer block in 16-bit, the Hessian (float32, inputs x
    # inputs) of each of its linear layers, the block's cached inputs and outputs for every
    # calibration token (16-bit, hidden wide), one window's activations inside the block
    # (float32, up to the MLP's width), the 16-bit embeddings, and the fixed runtime overhead.
    # The rest of the model may wait in host memory (device_map="auto" offloads it).
    hd = shape.dim_per_head
    block = 2 * shape.block_linear_params / shape.layers
    hessians = 4 * (5 * shape.hidden**2 + (shape.heads * hd) ** 2 + shape.intermediate**2)
    activations = 2 * 2 * calib_tokens * shape.hidden + 4 * 2 * seq_len * max(
        shape.hidden, shape.intermediate
    )
    embeddings = 2 * shape.embedding_params
    gpu = block + hessians + activations + embeddings + GIB
    seconds = quantize_seconds(shape, method)
    if method_kind(method).quantizes_on_cpu:
        return {
            "mem_mb": _host_mb(sixteen_bit + quantized, attempt),
            "gpu_mem_mb": 0,
            "runtime": _minutes(seconds, attempt),
        }
    return {
        # The 16-bit model, which waits in host memory while one block at a time is solved on
        # the GPU (gptqmodel and optimum's GPTQ offload the rest of the model to the CPU); each
        # solved block is packed in place of its 16-bit weights, so the quantized copy adds
        # no more than one block's packed weights at a time.
        "mem_mb": _host_mb(sixteen_bit + block, attempt),
        "gpu_mem_mb": _mib(gpu),
        "runtime": _minutes(seconds, attempt),
    }


def _from_params(params_b: float, method: dict[str, Any], attempt: int) -> dict[str, int]:
    """Without a shape: every parameter counted as a quantized linear weight, plus 20% for
    the KV cache and runtime, and the load/decode time of a 16-bit model of that size."""
    n_bytes = params_b * 1e9 * linear_bytes_per_weight(method)
    sixteen_bit = params_b * 2e9
    hours = max(1.0, params_b / 10)  # an hour per 10B: the shape-based model's rough scale
    return {
        "mem_mb": _host_mb(sixteen_bit, attempt),
        "gpu_mem_mb": _mib(1.2 * n_bytes + GIB),
        "runtime": _minutes(3600 * hours, attempt),
    }


def job_resources(
    model_spec: dict[str, Any],
    method_spec: dict[str, Any],
    rule: Rule,
    *,
    workload: Workload | Sequence[Workload] | None = None,
    attempt: int = 1,
    shards: int = 1,
    max_minutes: float | None = None,
    runtime: Runtime = Runtime(),
) -> dict[str, int]:
    """``mem_mb`` (host, MiB), ``gpu_mem_mb`` (MiB) and ``runtime`` (minutes) of one job.

    ``model_spec`` and ``method_spec`` are config entries. The model's shape comes from
    :func:`biomedquant.models.shapes.shape_for_model`; without one, ``params_b`` from the
    config gives a rougher estimate, and without that, :data:`UNKNOWN` (generous) figures are used.
    ``workload`` is needed for ``infer`` (one per prompting method of the grouped job, see
    :func:`infer_workload`) and ``perplexity`` (:func:`perplexity_workload`); ``shards`` is the
    job's item shard count (:func:`inference_split`'s parts); ``runtime`` the engine, device rates
    and GPUs its runtime is modelled with. ``max_minutes`` caps the runtime of
    every attempt (the study's wall-time limit): a retry of a killed inference job resumes
    where it stopped, so it needs no more than the limit.
    """
    if rule not in ("infer", "quantize_model", "perplexity"):
        raise ValueError(f"no resource model for rule {rule!r}")
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if shards < 1:
        raise ValueError(f"shards counts from 1, got {shards}")
    out = _job_resources(model_spec, method_spec, rule, workload, attempt, shards, runtime)
    if max_minutes is not None:
        out["runtime"] = min(out["runtime"], int(max_minutes))
    return out


def _job_resources(
    model_spec: dict[str, Any],
    method_spec: dict[str, Any],
    rule: Rule,
    workload: Workload | Sequence[Workload] | None,
    attempt: int,
    shards: int,
    runtime: Runtime,
) -> dict[str, int]:
    shape = shape_for_model(model_spec)
    if shape is None:
        if model_spec.get("params_b"):
            return _from_params(float(model_spec["params_b"]), method_spec, attempt)
        return {
            "mem_mb": math.ceil(UNKNOWN["mem_mb"] * (1 + 0.5 * (attempt - 1))),
            "gpu_mem_mb": UNKNOWN["gpu_mem_mb"],
            "runtime": UNKNOWN["runtime"] * attempt,
        }
    if rule == "quantize_model":
        return _quantize(shape, method_spec, attempt)
    if workload is None:
        raise ValueError(f"rule {rule!r} needs its workload")
    works = [workload] if isinstance(workload, Workload) else list(workload)
    if not works:
        raise ValueError(f"rule {rule!r} needs at least one workload")
    return _run(shape, method_spec, works, attempt, shards, runtime)


def gpu_constraint(gpu_mem_mb: int, tiers: str) -> str:
    """The Slurm feature of the smallest GPU that holds ``gpu_mem_mb``.

    ``tiers`` is a site's list of GPU memory sizes (GiB) and node features, e.g.
    ``"24:l4,40:a100_40g,80:a100_80g"``. When no GPU is large enough, the largest is named:
    the job then needs several GPUs or a smaller method, which the plan table shows.
    """
    pairs = []
    for item in tiers.split(","):
        size, sep, feature = item.strip().partition(":")
        if not sep or not feature or not size.strip().isdigit():
            raise ValueError(f"GPU tier {item!r}: expected GiB:feature, e.g. 80:a100_80g")
        pairs.append((int(size) * 1024, feature.strip()))
    if not pairs:
        raise ValueError("no GPU tiers given")
    pairs.sort()
    return next((f for mib, f in pairs if mib >= gpu_mem_mb), pairs[-1][1])
