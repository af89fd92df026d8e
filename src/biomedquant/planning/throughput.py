"""How long inference takes, per backend and device: the runtime model of the job requests and
of ``biomedquant plan --cost``, and its refit from a finished study's run records.

One inference run is a prefill of its prompt tokens and a number of decode steps. Each step
reads every weight once and the KV cache of the rows in flight, and does two FLOPs per
parameter per row; nothing is assumed to overlap, so the model is an upper bound::

    seconds = compute / F  +  steps x overhead  +  bytes / B
    compute = 2 x params x (prefill tokens + row steps)
    bytes   = steps x weight bytes + row steps x context x KV bytes per token

``F`` (FLOP/s), ``overhead`` (seconds per step) and ``B`` (bytes/s) are a backend's effective
figures on a device. For GPUs they are a share of the device's peak (:data:`DEVICES`, from the
vendors' datasheets) given by the backend (:data:`BACKENDS`, from published decode speeds);
for the CPU, and for any device a site has measured, they are fitted to run records
(:func:`refit`, the ``biomedquant refit-throughput`` command) and read from the fitted file
(``scheduling.throughput_file``), so a second study asks for what its first one measured.
How many rows decode together is the backend's: a static batch of ``batch_size`` for
transformers (steps = batches x new tokens), one row for llama.cpp, and up to
``continuous_rows`` continuously refilled slots for vLLM (steps = row steps / slots).
Prompt tokens are measured (:mod:`biomedquant.planning.tokens`: each item's own, the prefix
every item shares once per job, as prefix caching serves it), and outputs are counted at the
lengths of a stated prior (the gold answers' lengths, a reasoning length for chains of
thought, and a share at the cap), not every output at its cap. Methods whose kernels are
slower than the bytes they read say (bitsandbytes, 3-bit GPTQ) are slowed by a measured or
published factor (:func:`method_slowdown`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomedquant.common.registry import Registry
from biomedquant.models.shapes import kv_bytes_per_token

if TYPE_CHECKING:
    from biomedquant.models.shapes import ModelShape
    from biomedquant.planning.job_resources import Workload

# Several GPUs under tensor parallelism: each doubling loses about 15% to communication.
TENSOR_PARALLEL_EFFICIENCY = 0.85


@dataclass(frozen=True)
class Device:
    """One accelerator's peak figures (``bandwidth`` bytes/s, dense 16-bit ``flops``)."""

    name: str
    title: str
    bandwidth: float
    flops: float
    memory_gib: int
    source: str
    compute_capability: tuple[int, int]  # CUDA's: which method kinds run (FP8 needs 8.9)


DEVICES: Registry[Device] = Registry(
    "device",
    (
        (d.name, d)
        for d in (
            Device(
                "h100", "NVIDIA H100 SXM 80GB", 3.35e12, 989e12, 80, "NVIDIA H100 datasheet", (9, 0)
            ),
            Device(
                "h200",
                "NVIDIA H200 SXM 141GB",
                4.8e12,
                989e12,
                141,
                "NVIDIA H200 datasheet",
                (9, 0),
            ),
            Device(
                "a100_80g",
                "NVIDIA A100 SXM 80GB",
                2.039e12,
                312e12,
                80,
                "NVIDIA A100 datasheet",
                (8, 0),
            ),
            Device(
                "a100_40g",
                "NVIDIA A100 SXM 40GB",
                1.555e12,
                312e12,
                40,
                "NVIDIA A100 datasheet",
                (8, 0),
            ),
            Device(
                "l40s", "NVIDIA L40S 48GB", 0.864e12, 362e12, 48, "NVIDIA L40S datasheet", (8, 9)
            ),
            Device("l4", "NVIDIA L4 24GB", 0.300e12, 121e12, 24, "NVIDIA L4 datasheet", (8, 9)),
        )
    ),
)


# One GPU's memory when the jobs are costed on the CPU (scheduling.gpu: cpu) and the config
# names no gpu_gib: the A100 80GB / H100 size, the schema's default device.
CPU_STUDY_GPU_GIB = 80


def gpu_memory_gib(scheduling: Mapping[str, Any]) -> float:
    """The memory (GiB) of one GPU that jobs are sized for: ``scheduling.gpu``'s, from its
    datasheet (:data:`DEVICES`). An explicit ``scheduling.gpu_gib`` must agree with it, else
    it is refused: a study sized for one GPU and costed for another (``gpu: l4`` with 80 GiB
    GPUs asks an L4 cluster for jobs none of its GPUs holds). With ``gpu: cpu`` (the rates
    fitted to CPU runs, or a test cluster's stand-in GPUs), ``gpu_gib`` alone sets it."""
    device = scheduling.get("gpu", "a100_80g")
    given = scheduling.get("gpu_gib")
    if device == "cpu":
        return float(given) if given is not None else float(CPU_STUDY_GPU_GIB)
    memory = DEVICES[device].memory_gib
    if given is not None and float(given) != memory:
        raise ValueError(
            f"scheduling.gpu_gib is {float(given):g} GiB but scheduling.gpu is {device}, a"
            f" {memory} GiB GPU: drop gpu_gib (scheduling.gpu sets it) or name the GPU the jobs"
            " run on"
        )
    return float(memory)


@dataclass(frozen=True)
class Rates:
    """Effective figures of one backend on one device: what the runtime model computes with."""

    flops: float  # FLOP/s
    step_overhead_s: float  # fixed cost of one decode step (kernel launches, Python)
    bandwidth: float  # bytes/s

    def seconds(self, compute: float, steps: float, n_bytes: float) -> float:
        return compute / self.flops + steps * self.step_overhead_s + n_bytes / self.bandwidth


@dataclass(frozen=True)
class Backend:
    """What an inference engine reaches of a GPU's peak, and how it batches.

    ``bandwidth_share`` and ``flops_share`` are fractions of :class:`Device` peaks; a decode
    step reads the method's packed weights when ``reads_quantized`` says its kernels do (else
    the 16-bit size); ``start_s`` is the engine's start after the weights are read.
    """

    name: str
    bandwidth_share: float
    flops_share: float
    step_overhead_s: float
    start_s: float
    batching: str  # "static" (batch_size rows), "continuous" (continuous_rows slots), "single"
    reads_quantized: Callable[[Mapping[str, Any]], bool]
    source: str

    def rates(self, device: Device) -> Rates:
        return Rates(
            device.flops * self.flops_share,
            self.step_overhead_s,
            device.bandwidth * self.bandwidth_share,
        )

    @property
    def continuous(self) -> bool:
        return self.batching == "continuous"

    def rows(self, work: Workload) -> int:
        """Rows decoding together: the static batch, vLLM's slots, or one sequence."""
        width = {"static": work.batch_size, "continuous": work.continuous_rows, "single": 1}
        return max(1, min(work.items * work.samples, width[self.batching]))


def _kernels_read_packed(method: Mapping[str, Any]) -> bool:
    """vLLM's GPTQ/AWQ (Marlin) and FP8 kernels read the packed weights; bitsandbytes
    dequantizes per step, so its steps cost what 16-bit ones do."""
    return method.get("kind") in ("gptq", "rtn", "awq", "fp8", "gguf")


BACKENDS: Registry[Backend] = Registry(
    "backend",
    (
        (b.name, b)
        for b in (
            Backend(
                "transformers",
                bandwidth_share=0.25,
                flops_share=0.35,
                step_overhead_s=0.03,
                start_s=10,
                batching="static",
                reads_quantized=lambda _method: False,
                source=(
                    "Hugging Face generate, eager mode: an 8B 16-bit model decodes about 30"
                    " tokens/s at batch 1 on an A100 80GB (a quarter of its 2 TB/s), with 20-30 ms"
                    " of Python and launch overhead per step; dequantizing kernels seldom beat"
                    " 16-bit ones in generate"
                ),
            ),
            Backend(
                "vllm",
                bandwidth_share=0.75,
                flops_share=0.5,
                step_overhead_s=0.002,
                start_s=90,
                batching="continuous",
                reads_quantized=_kernels_read_packed,
                source=(
                    "vLLM with CUDA graphs: batch-1 decode reaches 70-80% of HBM bandwidth (an 8B"
                    " 16-bit model at 120-150 tokens/s on an H100) with 1-2 ms of launch cost per"
                    " step, prefill about half the tensor cores' peak; engine start (profiling,"
                    " CUDA graph capture) about 1-2 minutes"
                ),
            ),
            Backend(
                "llama_cpp",
                bandwidth_share=0.6,
                flops_share=0.3,
                step_overhead_s=0.005,
                start_s=5,
                batching="single",
                reads_quantized=_kernels_read_packed,
                source=(
                    "llama.cpp CUDA: an 8B Q4_K_M model (4.9 GB) decodes about 130 tokens/s on a"
                    " 1 TB/s RTX 4090, about 60% of its bandwidth; one sequence at a time here"
                ),
            ),
        )
    ),
)

# The CPU, fitted by `biomedquant refit-throughput tests/data/run_records/*.run.json` to this
# project's own run records (the demo model in float32 on a 2-core x86-64 machine: 24 runs,
# largest error 18%, median 7%). The step overhead fitted to zero: on a CPU it hides in the
# bandwidth term.
CPU_RATES = {
    "transformers": Rates(flops=1.117e11, step_overhead_s=0.0, bandwidth=6.226e9),
}


@dataclass(frozen=True)
class Throughput:
    """The rates the runtime model uses: each backend on the study's device, with fitted
    figures (a refit file) taking precedence over the share-of-peak defaults."""

    device: str = "a100_80g"
    fitted: Mapping[str, Mapping[str, Rates]] | None = None

    def rates(self, backend: str, device: str | None = None) -> Rates:
        device = device or self.device
        fitted = (self.fitted or {}).get(backend, {}).get(device)
        if fitted is not None:
            return fitted
        if device == "cpu":
            if backend not in CPU_RATES:
                raise ValueError(
                    f"no CPU rates for backend {backend!r}: refit them from CPU run records"
                    " (biomedquant refit-throughput)"
                )
            return CPU_RATES[backend]
        return BACKENDS[backend].rates(DEVICES[device])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Throughput:
        scheduling = config.get("scheduling", {})
        path = scheduling.get("throughput_file")
        return cls(scheduling.get("gpu", "a100_80g"), read_rates(path) if path else None)


@dataclass(frozen=True)
class RunCounts:
    """What one run computes, in the units of the runtime model."""

    prefill_tokens: float
    steps: float
    row_steps: float
    context_tokens: float  # mean tokens in a row's KV cache while it decodes

    def features(self, params: float, step_bytes: float, kv_per_token: float) -> tuple:
        compute = 2 * params * (self.prefill_tokens + self.row_steps)
        n_bytes = self.steps * step_bytes + self.row_steps * self.context_tokens * kv_per_token
        return compute, self.steps, n_bytes


@lru_cache(maxsize=4096)
def planned_counts(work: Workload, backend: Backend) -> RunCounts:
    """A workload's counts under a backend's batching, its outputs at their expected lengths
    (:attr:`Workload.output_tokens`). A continuous batcher refills a slot as soon as its row
    stops, so its steps follow the rows' total length; a static batch runs until its longest
    row stops (:func:`biomedquant.planning.tokens.batch_steps`); one row at a time, each row's
    own length. Cached: the same for every model and method, and a study plans each workload
    for each of them."""
    from biomedquant.planning.tokens import batch_steps

    rows = work.items * work.samples
    width = backend.rows(work)
    row_steps = rows * work.output_tokens
    if work.new_tokens == 0:
        # no generation (held-out perplexity): one forward pass per batch, each reading every
        # weight once, counted as a step
        return RunCounts(work.prefill_tokens, math.ceil(rows / width), 0.0, 0.0)
    if backend.continuous or width == 1:
        steps = math.ceil(row_steps / width)
    elif work.stopped_tokens is None:
        steps = math.ceil(rows / width) * work.new_tokens
    else:
        per_batch = batch_steps(width, work.stopped_tokens, work.cap_share, work.new_tokens)
        steps = math.ceil(rows / width) * per_batch
    context = work.item_tokens + work.shared + work.output_tokens / 2
    return RunCounts(work.prefill_tokens, steps, row_steps, context)


# Methods slower than the bytes their steps read: multiplies a job's prefill and decode time.
# bitsandbytes dequantizes its weights at every step (no packed-weight GEMM kernel):
# - NF4: about 1.6x the 16-bit time, measured under vLLM (issue 49's measurement, in line with
#   vLLM's docs, which list in-flight bitsandbytes as the slow option beside GPTQ/AWQ kernels);
#   the same library and kernels under transformers' generate, so the same factor there.
# - LLM.int8(): slower still (the outlier decomposition splits every matmul in two; Dettmers et
#   al. 2022, section on inference speed, and the bitsandbytes README report the slowdown
#   growing as models shrink): 2.0x, an estimate for 7-70B models at small batches.
# - GPTQ at 3 bits: no Marlin or ExLlama kernel (those take 4 and 8 bits; vLLM refuses 3-bit
#   GPTQ, see docs/guide/engines.md), so gptqmodel's torch/triton kernels dequantize at every
#   step: 1.5x, an estimate.
METHOD_SLOWDOWN = {"bnb-nf4": 1.6, "bnb-int8": 2.0}
GPTQ_3BIT_SLOWDOWN = 1.5


def method_slowdown(method: Mapping[str, Any]) -> float:
    """How many times a method's steps take what the bytes they read say (1 for most)."""
    kind = method.get("kind")
    if kind == "gptq" and int(method.get("bits", 4)) == 3:
        return GPTQ_3BIT_SLOWDOWN
    return METHOD_SLOWDOWN.get(str(kind), 1.0)


def step_bytes(shape: ModelShape, method: Mapping[str, Any], backend: Backend) -> float:
    from biomedquant.planning.estimator import weight_bytes

    return weight_bytes(
        shape, dict(method) if backend.reads_quantized(method) else {"kind": "none"}
    )


def work_seconds(
    shape: ModelShape,
    method: Mapping[str, Any],
    works: Sequence[Workload],
    *,
    backend: str,
    throughput: Throughput,
    gpus: int = 1,
) -> float:
    """Seconds of prefill and decoding of a job's workloads (no load) on ``gpus`` GPUs."""
    engine = BACKENDS[backend]
    rates = throughput.rates(backend)
    scale = gpus * (TENSOR_PARALLEL_EFFICIENCY ** math.log2(gpus)) if gpus > 1 else 1.0
    # the same for every workload of the job: the bytes one decoding step reads
    read_per_step = step_bytes(shape, method, engine)
    kv_per_token = kv_bytes_per_token(shape)
    total = 0.0
    for work in works:
        counts = planned_counts(work, engine)
        compute, steps, n_bytes = counts.features(shape.params, read_per_step, kv_per_token)
        total += rates.seconds(compute / scale, steps, n_bytes / scale)
    return total * method_slowdown(method)


# --- refit from run records --------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """One run record reduced to the model's features and its measured seconds."""

    backend: str
    device: str
    features: tuple[float, float, float]
    seconds: float
    source: str


def device_key(record: Mapping[str, Any]) -> str:
    """``cpu``, or the :data:`DEVICES` name of the record's GPU (its slug when unknown)."""
    if record.get("device") != "cuda":
        return "cpu"
    name = str((record.get("hardware") or {}).get("gpu") or "")
    low = name.lower().replace(" ", "")
    for key, pattern in (
        ("h200", "h200"),
        ("h100", "h100"),
        ("a100_80g", "a100.*80"),
        ("a100_40g", "a100"),
        ("l40s", "l40s"),
        ("l4", r"\bl4\b|nvidial4"),
    ):
        if re.search(pattern, low):
            return key
    return re.sub(r"[^a-z0-9]+", "_", low).strip("_") or "gpu"


def _features(record: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """The model's features of what one run record generated (None: a record served from the
    cache or shards, or written before the counts were recorded)."""
    facts = record.get("model_shape") or {}
    needed = ("batch_prefill_tokens", "batch_decode_steps", "batch_decode_row_steps")
    if not facts or any(record.get(k) is None for k in needed):
        return None
    if not record.get("n_generated") or record.get("n_from_cache") or record.get("n_from_shards"):
        return None
    row_steps = record["batch_decode_row_steps"]
    context = record.get("batch_decode_context_token_steps") or 0
    counts = RunCounts(
        record["batch_prefill_tokens"],
        record["batch_decode_steps"],
        row_steps,
        context / row_steps if row_steps else 0.0,
    )
    # Bytes one step reads: the loaded model's footprint where the engine measured it
    # (transformers), else the weights' bytes, else its parameters at 16 bits.
    step = record.get("model_footprint_bytes") or record.get("weights_bytes") or 2 * facts["params"]
    return counts.features(facts["params"], step, facts["kv_bytes_per_token"])


def observation(record: Mapping[str, Any], source: str = "") -> Observation | None:
    """A run record that generated its items alone in its engine session, reduced to the
    model's features and its measured seconds (None when it cannot be fitted)."""
    if len(record.get("generated_with") or [record.get("prompt_method")]) > 1:
        return None  # seconds shared with other runs: see observations()
    features = _features(record)
    seconds = float(record.get("generate_seconds") or 0)
    if features is None or seconds <= 0:
        return None
    backend = record.get("backend", "transformers")
    return Observation(backend, device_key(record), features, seconds, source)


def observations(records: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Observation]:
    """Every fittable observation: single runs, and the runs an engine generated together
    (vLLM takes a job's prompting methods in one request list; each of their records holds
    the joint seconds and its share of the counts), summed into one observation per job."""
    out: list[Observation] = []
    together: dict[tuple, list[tuple[str, Mapping[str, Any]]]] = {}
    for source, rec in records:
        shared = rec.get("generated_with") or []
        if len(shared) > 1:
            key = (
                rec.get("model_dir"),
                rec.get("dataset"),
                tuple(shared),
                rec.get("generate_seconds"),
            )
            together.setdefault(key, []).append((source, rec))
        elif (obs := observation(rec, source)) is not None:
            out.append(obs)
    for (_, _, shared, seconds), members in together.items():
        parts = [_features(rec) for _, rec in members]
        if len(members) != len(shared) or any(p is None for p in parts) or not seconds:
            continue  # a job's records not all given, or not all fittable
        summed = tuple(sum(p[k] for p in parts) for k in range(3))  # type: ignore[index]
        rec = members[0][1]
        out.append(
            Observation(
                rec.get("backend", "transformers"),
                device_key(rec),
                summed,  # type: ignore[arg-type]
                float(seconds),
                " + ".join(src for src, _ in members),
            )
        )
    return out


def _fit(obs: Sequence[Observation]) -> tuple[float, float, float]:
    """Non-negative (1/F, overhead, 1/B) minimising the squared relative errors: least
    squares on every subset of the three terms, the best with no negative coefficient."""
    import itertools

    import numpy as np

    x = np.array([o.features for o in obs], dtype=float)
    y = np.array([o.seconds for o in obs], dtype=float)
    a, b = x / y[:, None], np.ones(len(y))
    best, best_err = (0.0, 0.0, 0.0), math.inf
    for k in (3, 2, 1):
        for cols in itertools.combinations(range(3), k):
            coef, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
            if (coef <= 0).any():
                continue
            full = np.zeros(3)
            full[list(cols)] = coef
            err = float(((a @ full - b) ** 2).sum())
            if err < best_err:
                best, best_err = tuple(full), err
    return best  # type: ignore[return-value]


def refit(records: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, dict[str, dict]]:
    """Fitted rates per backend and device from ``(source, run record)`` pairs, with how
    many records each rests on and their relative errors."""
    groups: dict[tuple[str, str], list[Observation]] = {}
    for obs in observations(records):
        groups.setdefault((obs.backend, obs.device), []).append(obs)
    out: dict[str, dict[str, dict]] = {}
    for (backend, device), obs in sorted(groups.items()):
        inv_f, overhead, inv_b = _fit(obs)
        rates = Rates(
            flops=1 / inv_f if inv_f else math.inf,
            step_overhead_s=overhead,
            bandwidth=1 / inv_b if inv_b else math.inf,
        )
        errors = [rates.seconds(*o.features) / o.seconds - 1 for o in obs]
        out.setdefault(backend, {})[device] = {
            **asdict(rates),
            "n_records": len(obs),
            "max_abs_relative_error": round(max(abs(e) for e in errors), 4),
            "median_abs_relative_error": round(sorted(abs(e) for e in errors)[len(errors) // 2], 4),
        }
    return out


def write_rates(fitted: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(fitted, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# The refit file's key for the output lengths a study measured (beside the backends' rates).
OUTPUT_LENGTHS_KEY = "_output_lengths"


def _read_refit(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"scheduling.throughput_file {path}: cannot be read ({err})") from None


def output_lengths_json(lengths: Mapping[tuple[str, str], Any]) -> dict[str, dict[str, dict]]:
    """Measured output lengths (:func:`biomedquant.planning.tokens.fit_output_lengths`) as the
    refit file holds them: dataset -> prompting method -> fields."""
    out: dict[str, dict[str, dict]] = {}
    for (dataset, prompt), value in lengths.items():
        out.setdefault(dataset, {})[prompt] = asdict(value)
    return out


def read_output_lengths(path: str | Path) -> dict[tuple[str, str], Any]:
    """The output lengths a refit file holds, per (dataset, prompting method); none in a file
    written before they were fitted."""
    from biomedquant.planning.tokens import OutputLengths

    raw = _read_refit(path).get(OUTPUT_LENGTHS_KEY, {})
    return {
        (dataset, prompt): OutputLengths(float(v["stopped"]), float(v["cap_share"]), int(v["rows"]))
        for dataset, by_prompt in raw.items()
        for prompt, v in by_prompt.items()
    }


def output_lengths_from_config(config: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """The measured output lengths of ``scheduling.throughput_file`` (none without one)."""
    path = config.get("scheduling", {}).get("throughput_file")
    return read_output_lengths(path) if path else {}


def read_rates(path: str | Path) -> dict[str, dict[str, Rates]]:
    """A refit file as rates per backend and device."""
    raw = _read_refit(path)
    out: dict[str, dict[str, Rates]] = {}
    for backend, devices in raw.items():
        if backend.startswith("_"):
            continue  # not a backend: the measured output lengths
        BACKENDS[backend]  # an unknown backend names the known ones
        for device, r in devices.items():
            out.setdefault(backend, {})[device] = Rates(
                float(r["flops"]), float(r["step_overhead_s"]), float(r["bandwidth"])
            )
    return out
