"""What a study costs in GPU-hours before it runs (``biomedquant plan --cost``).

The same job shape and runtime model as the workflow's requests
(:mod:`biomedquant.planning.job_resources`,
:mod:`biomedquant.planning.throughput`), without their safety margin: one inference job per model x
method (every dataset and prompting method on one load per attempt; time-boxed attempts and
item shards where the wall-time limit needs them), one quantization job per artifact, one
perplexity job per model x method, each on the GPUs its memory estimate needs. Inference hours
are split over the prompting methods in proportion to their work (a job's loads shared alike).
Beside the expected hours stand the hours the attempts request (every time-boxed attempt asks
for the limit), so the margin between the two is visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from biomedquant.inference.decoding import Decoding
from biomedquant.methods.kinds import method_kind
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.job_resources import (
    Runtime,
    infer_workload,
    inference_split,
    job_gpus,
    job_resources,
    perplexity_workload,
    quantize_seconds,
    run_seconds,
)
from biomedquant.planning.throughput import (
    Throughput,
    gpu_memory_gib,
    output_lengths_from_config,
)

COST_COLUMNS = ("model", "method", "prompt", "gpus", "gpu_hours")


@dataclass(frozen=True)
class Job:
    """One planned job (an inference job's shards and attempts together)."""

    rule: str
    model: str
    method: str
    gpus: int
    shards: int
    hours: float  # expected GPU-hours
    requested_hours: float  # GPU-hours its attempts ask for
    attempts: int = 1  # time-boxed attempts of each shard, one after another


@dataclass
class Cost:
    backend: str
    device: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # model x method x prompt
    jobs: list[Job] = field(default_factory=list)

    def total(self, rule: str | None = None, requested: bool = False) -> float:
        return sum(
            j.requested_hours if requested else j.hours
            for j in self.jobs
            if rule is None or j.rule == rule
        )


def study_cost(
    config: dict[str, Any], *, backend: str | None = None, device: str | None = None
) -> Cost:
    """The expected GPU-hours of ``config`` (validated, defaults filled) under ``backend``
    (default ``inference.backend``) on ``device`` (default ``scheduling.gpu``)."""
    backend = backend or config["inference"]["backend"]
    base = Throughput.from_config(config)
    throughput = Throughput(device or base.device, base.fitted)
    scheduling = config["scheduling"]
    gpu_gib, max_gpus = gpu_memory_gib(scheduling), scheduling["max_gpus_per_job"]
    max_minutes = 60 * scheduling["max_job_hours"]
    decoding = Decoding.from_config(config)
    limit = config["data"].get("limit")
    lengths = output_lengths_from_config(config)
    cost = Cost(backend, throughput.device)
    for model, mspec in config["models"].items():
        shape = shape_for_model(mspec)
        if shape is None:
            continue
        for method, spec in config["methods"].items():
            gpus_of = {
                rule: job_gpus(mspec, spec, rule, gpu_gib=gpu_gib, max_gpus=max_gpus)
                for rule in ("infer", "perplexity", "quantize_model")
            }
            works = [
                infer_workload(d, p, limit=limit, decoding=decoding, lengths=lengths)
                for d in config["datasets"]
                for p in config["prompts"]
            ]
            runtime = Runtime(backend, throughput, gpus_of["infer"])
            split = inference_split(
                mspec, spec, works, max_minutes, runtime, scheduling["max_attempts"]
            )
            load, work = run_seconds(shape, spec, works, runtime)
            loads = split.parts * split.attempts
            hours = gpus_of["infer"] * (loads * load + work) / 3600
            prompt_hours = dict.fromkeys(config["prompts"], 0.0)
            for w, prompt in zip(
                works, [p for _ in config["datasets"] for p in config["prompts"]], strict=True
            ):
                part = run_seconds(shape, spec, [w], runtime)[1]
                prompt_hours[prompt] += hours * (part / work if work else 1 / len(works))
            request = job_resources(
                mspec,
                spec,
                "infer",
                workload=works,
                shards=split.parts,
                max_minutes=max_minutes,
                runtime=runtime,
            )["runtime"]
            cost.jobs.append(
                Job(
                    "infer",
                    model,
                    method,
                    gpus_of["infer"],
                    split.parts,
                    hours,
                    gpus_of["infer"] * loads * request / 60,
                    split.attempts,
                )
            )
            for prompt, hours in prompt_hours.items():
                cost.rows.append(
                    {
                        "model": model,
                        "method": method,
                        "prompt": prompt,
                        "gpus": gpus_of["infer"],
                        "gpu_hours": round(hours, 3),
                    }
                )
            cost.jobs += _other_jobs(config, model, method, shape, throughput, gpus_of)
    return cost


def _other_jobs(
    config: dict[str, Any],
    model: str,
    method: str,
    shape: Any,
    throughput: Throughput,
    gpus_of: dict[str, int],
) -> Iterable[Job]:
    mspec, spec = config["models"][model], config["methods"][method]
    if method_kind(spec).artifact:
        n = gpus_of["quantize_model"]
        request = job_resources(mspec, spec, "quantize_model")["runtime"]
        yield Job(
            "quantize_model",
            model,
            method,
            n,
            1,
            n * quantize_seconds(shape, spec) / 3600,
            n * request / 60,
        )
    if config.get("perplexity", {}).get("enabled", True):
        work = perplexity_workload(config["datasets"], limit=config["data"].get("limit"))
        n = gpus_of["perplexity"]
        runtime = Runtime("transformers", throughput, n)
        load, seconds = run_seconds(shape, spec, [work], runtime)
        request = job_resources(mspec, spec, "perplexity", workload=work, runtime=runtime)
        yield Job(
            "perplexity",
            model,
            method,
            n,
            1,
            n * (load + seconds) / 3600,
            n * request["runtime"] / 60,
        )


STAGES = (
    ("infer", "inference"),
    ("perplexity", "perplexity (held-out texts)"),
    ("quantize_model", "quantization"),
)


def _stage_line(cost: Cost, rule: str, title: str) -> str:
    jobs = [j for j in cost.jobs if j.rule == rule]
    on_gpu = [j for j in jobs if j.gpus]
    return (
        f"  {title:<29} {len(jobs):>5} {cost.total(rule):>12,.1f} "
        f"{cost.total(rule, requested=True):>12,.1f}"
        + (f"   ({len(jobs) - len(on_gpu)} on CPUs, no GPU)" if len(on_gpu) < len(jobs) else "")
    )


def assumption_lines(config: dict[str, Any], cost: Cost) -> list[str]:
    """What the estimate rests on, in the plan's words: the engine of each method, the
    tokens counted, the output prior, the speed factors, the request margin."""
    from biomedquant.methods.engines import engine_for
    from biomedquant.planning import job_resources as jr
    from biomedquant.planning import throughput as tp
    from biomedquant.planning import tokens as tk

    by_engine: dict[str, list[str]] = {}
    for name, spec in config["methods"].items():
        by_engine.setdefault(engine_for(spec, cost.backend), []).append(name)
    decoding = Decoding.from_config(config)
    limit = config["data"].get("limit")
    lengths = tp.output_lengths_from_config(config)
    works = [
        jr.infer_workload(d, p, limit=limit, decoding=decoding, lengths=lengths)
        for d in config["datasets"]
        for p in config["prompts"]
    ]
    measured = sum((d, p) in lengths for d in config["datasets"] for p in config["prompts"])
    prompt = sum(w.items * (w.item_tokens + w.shared) for w in works)
    own = sum(w.items * w.item_tokens for w in works)
    out = sum(w.items * w.samples * w.output_tokens for w in works)
    at_cap = sum(w.items * w.samples * w.new_tokens for w in works)
    slow = sorted(
        {
            f"{name} x{tp.method_slowdown(spec):g}"
            for name, spec in config["methods"].items()
            if tp.method_slowdown(spec) != 1
        }
    )
    return [
        "assumptions (estimates from the runtime model, not measurements):",
        "  engines: "
        + "; ".join(f"{engine}: {', '.join(names)}" for engine, names in by_engine.items()),
        f"  prompt tokens per model x method: {prompt / 1e6:.2f}M, of which {own / 1e6:.2f}M"
        " outside the prefix every item shares (prefilled once per job: prefix caching);"
        " measured with a Llama-3 tokenizer on the test sets (biomedquant.planning.tokens)",
        f"  output tokens per model x method: {out / 1e6:.2f}M expected (every output at its cap"
        f" would be {at_cap / 1e6:.2f}M): the gold answers' length x{tk.DIRECT_ANSWER_FACTOR:g}"
        f" + {tk.DIRECT_ANSWER_EXTRA_TOKENS}, chains of thought {tk.COT_REASONING_TOKENS}"
        f" tokens of reasoning more; {tk.CAP_SHARE_DIRECT:.0%} of direct answers and"
        f" {tk.CAP_SHARE_COT:.0%} of chains at the cap"
        + (
            f"; measured by the refit file for {measured} dataset x prompting method(s)"
            if measured
            else ""
        ),
        "  speed factors: "
        + (", ".join(slow) if slow else "none")
        + " (bitsandbytes and 3-bit GPTQ dequantize at every step); engines at a share of the"
        " GPU's datasheet bandwidth and FLOP/s"
        + (
            " (a refit file's rates where it has them)"
            if config["scheduling"].get("throughput_file")
            else ""
        ),
        f"  weights read at {jr.LOAD_BYTES_PER_S / 1e6:.0f} MB/s per load; requests: the"
        f" estimate plus {jr.STARTUP_MINUTES} min of start-up, x{jr.SAFETY:g}, up to the minute;"
        " perplexity over every distinct test text (each sentence once), one forward pass"
        " each, under transformers",
    ]


def cost_lines(cost: Cost, top: int = 5, config: dict[str, Any] | None = None) -> list[str]:
    """The summary a terminal shows: expected GPU-hours and what the planned attempts request
    per stage (quantization apart from inference and evaluation), the largest jobs, the
    time-boxed and sharded jobs, the hours per prompting method, and, given the config, the
    assumptions the estimate rests on."""
    infer = [j for j in cost.jobs if j.rule == "infer"]
    boxed = [j for j in infer if j.attempts > 1]
    sharded = [j for j in infer if j.shards > 1]
    run = cost.total("infer") + cost.total("perplexity")
    run_asked = cost.total("infer", requested=True) + cost.total("perplexity", requested=True)
    lines = [
        f"expected GPU-hours under {cost.backend} on {cost.device}: {cost.total():,.0f}"
        f" (inference and evaluation {run:,.0f}, quantization"
        f" {cost.total('quantize_model'):,.0f}); its attempts request"
        f" {cost.total(requested=True):,.0f}",
        f"  {'stage':<29} {'jobs':>5} {'expected':>12} {'requested':>12}",
        _stage_line(cost, "infer", "inference"),
        _stage_line(cost, "perplexity", "perplexity (held-out texts)"),
        f"  {'evaluation (scores, tables)':<29} {'':>5} {0:>12,.1f} {0:>12,.1f}   (CPU only)",
        f"  {'= inference and evaluation':<29} {'':>5} {run:>12,.1f} {run_asked:>12,.1f}",
        _stage_line(cost, "quantize_model", "quantization (apart)"),
        f"inference jobs (model x method): {len(infer)}; time-boxed: {len(boxed)}"
        f" (at most {max((j.attempts for j in infer), default=1)} attempts one after"
        f" another); split into item shards: {len(sharded)}"
        f" ({sum(j.shards for j in sharded)} shard jobs)",
        "largest jobs (GPU-hours):",
    ]
    for j in sorted(cost.jobs, key=lambda j: -j.hours)[:top]:
        lines.append(
            f"  {j.hours:8,.1f}  {j.rule} {j.model} x {j.method} on {j.gpus} GPU(s)"
            + (f", {j.shards} shards" if j.shards > 1 else "")
            + (f", {j.attempts} attempts" if j.attempts > 1 else "")
        )
    by_prompt: dict[str, float] = {}
    for r in cost.rows:
        by_prompt[r["prompt"]] = by_prompt.get(r["prompt"], 0.0) + r["gpu_hours"]
    lines.append(
        "inference by prompting method: " + ", ".join(f"{p} {h:,.0f}" for p, h in by_prompt.items())
    )
    if config is not None:
        lines += assumption_lines(config, cost)
    return lines
