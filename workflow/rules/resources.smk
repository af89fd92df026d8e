# What jobs ask a scheduler for. The GPU rules size their GPUs, host memory, GPU memory and
# runtime per model x method (biomedquant.planning.job_resources: the fit estimator, and the
# runtime model of biomedquant.planning.throughput): gpu_job_resource(rule, key) is a resource
# callable for infer, quantize_model and perplexity. The same rules run locally (where only the GPU
# count is enforced, against --resources gpu=N) and on SLURM (where all of it is).
import os
from functools import lru_cache

from biomedquant.planning.job_resources import (
    Runtime,
    gpu_constraint,
    inference_split,
    infer_workload,
    job_gpus,
    job_resources,
    perplexity_workload,
    time_box_minutes,
)
from biomedquant.methods.kinds import method_kind
from biomedquant.study.checks import fp8_feature
from biomedquant.planning.throughput import (
    Throughput,
    gpu_memory_gib,
    output_lengths_from_config,
)

# Rules that need no GPU but still run as cluster jobs: fetching a model moves up to 150 GB.
CLUSTER_CPU_RULES = {"fetch_model"}


def local_rules():
    """Rules to run where Snakemake runs (a cluster's login node), not as cluster jobs.

    All rules without a GPU, except CLUSTER_CPU_RULES. Scoring, tables, figures and data
    preparation are thousands of jobs of seconds each in a full study, which would flood the
    scheduler, and download_dataset needs the network that compute nodes often lack. Derived
    from the rules, so a new small rule is local without anyone listing it; the Snakefile calls
    this after every rule is defined. Local runs ignore it.
    """
    return sorted(
        r.name
        for r in workflow.rules
        if "gpu" not in r.resources and r.name not in CLUSTER_CPU_RULES
    )


# Optional, per site: GPU memory tiers as "GiB:feature,..." (e.g. "40:a100_40g,80:a100_80g").
# When set, GPU jobs also ask for the node feature of the smallest GPU that holds their share
# of the job (sbatch --constraint), so a small job does not take a large GPU.
GPU_TIERS = os.environ.get("BIOMEDQUANT_SLURM_GPU_TIERS", "").strip()
# Optional, per site: the node feature of GPUs that run FP8 (compute capability 8.9+), which
# fp8 jobs then ask for; without it the study check warns when a cluster run starts.
FP8_FEATURE = fp8_feature()
# One GPU's memory (GiB, as marketed) and the most GPUs one job may ask for: a job whose
# estimate does not fit one GPU asks for 2, 4 or 8 (the study check refuses what fits none).
# scheduling.gpu sets it; an explicit gpu_gib that disagrees is refused here, with the reason.
GPU_GIB = gpu_memory_gib(config["scheduling"])
MAX_GPUS = config["scheduling"]["max_gpus_per_job"]


# The longest wall time a job may ask for (config scheduling.max_job_hours), in minutes, and
# the most time-boxed attempts one inference job runs as before its work is cut into shards.
MAX_JOB_MINUTES = int(60 * config["scheduling"]["max_job_hours"])
MAX_ATTEMPTS = config["scheduling"]["max_attempts"]


@lru_cache(maxsize=None)
def infer_workloads():
    """The workloads of a model x method inference job: one per dataset x prompting method,
    in the config's order."""
    return tuple(
        infer_workload(
            d,
            p,
            limit=config["data"].get("limit"),
            decoding=STUDY.decoding,
            lengths=OUTPUT_LENGTHS,
        )
        for d in config["datasets"]
        for p in config["prompts"]
    )


# The rates runtimes are modelled with: the backends on scheduling.gpu, or a site's refit,
# and the output lengths that refit measured (the prior where it has none).
THROUGHPUT = Throughput.from_config(config)
OUTPUT_LENGTHS = output_lengths_from_config(config)


def job_runtime(rule_name, model, method):
    """How a job's runtime is modelled: inference on the configured backend, perplexity
    (always transformers) and quantization on their GPUs."""
    backend = config["inference"]["backend"] if rule_name == "infer" else "transformers"
    return Runtime(backend, THROUGHPUT, max(1, _job_gpus(rule_name, model, method)))


@lru_cache(maxsize=None)
def infer_split(model, method):
    """Item shards and time-boxed attempts of the inference job of (model, method)
    (biomedquant.planning.job_resources.inference_split): one attempt of one shard unless its
    runtime estimate exceeds the wall-time limit. The noise floor's job is cut like the baseline's.
    """
    return inference_split(
        config["models"][model],
        config["methods"][method],
        infer_workloads(),
        MAX_JOB_MINUTES,
        job_runtime("infer", model, method),
        MAX_ATTEMPTS,
    )


@signature_once
def time_box(wildcards, attempt):
    """--stop-after-minutes of an inference job: its time box when it needs more than one
    attempt, else 0 (it runs to the end). A resource: it changes when work stops, not what
    is generated, so changing the wall-time limit reruns nothing."""
    if infer_split(wildcards.model, wildcards.method).attempts > 1:
        return time_box_minutes(MAX_JOB_MINUTES)
    return 0


@lru_cache(maxsize=None)
def _gpu_job_resources(rule_name, model, method, attempt):
    """The estimator's figures for one job (cached: Snakemake asks once per resource)."""
    workload = None
    shards = 1
    if rule_name == "perplexity":
        workload = perplexity_workload(
            config["datasets"], limit=config["data"].get("limit")
        )
    elif rule_name == "infer":
        workload = infer_workloads()
        shards = infer_split(model, method).parts
    return job_resources(
        config["models"][model],
        config["methods"][method],
        rule_name,
        workload=workload,
        attempt=attempt,
        shards=shards,
        max_minutes=MAX_JOB_MINUTES if rule_name == "infer" else None,
        runtime=job_runtime(rule_name, model, method),
    )


def gpu_job_resource(rule_name, key):
    """A resource callable giving ``key`` (mem_mb, gpu_mem_mb or runtime) of a job of rule
    ``rule_name``."""

    @signature_once
    def resource(wildcards, attempt):
        return _gpu_job_resources(
            rule_name, wildcards.model, wildcards.method, attempt
        )[key]

    return resource


@lru_cache(maxsize=None)
def _job_gpus(rule_name, model, method):
    return job_gpus(
        config["models"][model],
        config["methods"][method],
        rule_name,
        gpu_gib=GPU_GIB,
        max_gpus=MAX_GPUS,
        tokens=STUDY.decoding.batch_tokens,
    )


def gpu_count(rule_name):
    """A resource callable: the GPUs a job of ``rule_name`` asks for (0 for quantization a
    method kind does on the CPU; more than 1 for a job its estimate puts over one GPU).
    """

    @signature_once
    def gpu(wildcards, attempt):
        return _job_gpus(rule_name, wildcards.model, wildcards.method)

    return gpu


def constraint_resources(rule_name):
    """{'constraint': callable} when GPU tiers or an FP8 node feature are configured: the
    feature of the smallest GPU that holds the job's share of memory, and the FP8 feature for
    fp8 methods, joined with '&' (both must hold); nothing for a job without a GPU."""
    if not GPU_TIERS and not FP8_FEATURE:
        return {}
    gpu_mem = gpu_job_resource(rule_name, "gpu_mem_mb")
    gpus = gpu_count(rule_name)

    @signature_once
    def constraint(wildcards, attempt):
        n = gpus(wildcards, attempt)
        if n == 0:
            return ""
        features = []
        if GPU_TIERS:
            features.append(
                gpu_constraint(-(-gpu_mem(wildcards, attempt) // n), GPU_TIERS)
            )
        if (
            FP8_FEATURE
            and method_kind(config["methods"][wildcards.method]).needs_fp8_gpu
        ):
            features.append(FP8_FEATURE)
        return "&".join(features)

    return {"constraint": constraint}


# The partitions a cluster run names (workflow/profiles/slurm: exported variables).
CPU_PARTITION_VARIABLE = "BIOMEDQUANT_SLURM_PARTITION"
GPU_PARTITION_VARIABLE = "BIOMEDQUANT_SLURM_GPU_PARTITION"


def partition_resources(rule_name):
    """{'slurm_partition': callable} for quantize_model, whose jobs need a GPU or not by
    method kind: the GPU partition for GPTQ and AWQ, the CPU partition (the profile's
    default) for round-to-nearest and GGUF, which ask for no GPU. Other GPU rules take the
    GPU partition from the SLURM profile. Outside SLURM the value is not read."""
    if rule_name != "quantize_model":
        return {}
    gpus = gpu_count(rule_name)

    @signature_once
    def slurm_partition(wildcards, attempt):
        gpu = gpus(wildcards, attempt) > 0
        return os.environ.get(
            GPU_PARTITION_VARIABLE if gpu else CPU_PARTITION_VARIABLE, ""
        )

    return {"slurm_partition": slurm_partition}


def gpu_resources(rule_name):
    """Every resource of a GPU rule: its GPUs, the estimator's host memory, GPU memory (all
    its GPUs together) and runtime for each job, the node features where configured, and the
    CPU threads to use when no GPU is present."""
    return {
        **constraint_resources(rule_name),
        **partition_resources(rule_name),
        "gpu": gpu_count(rule_name),
        "mem_mb": gpu_job_resource(rule_name, "mem_mb"),
        "gpu_mem_mb": gpu_job_resource(rule_name, "gpu_mem_mb"),
        "runtime": gpu_job_resource(rule_name, "runtime"),
        "cpu_threads": STUDY.cpu_threads,
    }


# Snakemake resubmits a failed job as often as its rule's `retries` say: a time-boxed
# inference job needs as many attempts as the longest shard of the study, and never fewer
# retries than the command line's or profile's --retries (which alone hold, as for the other
# rules, when every job fits one attempt: None).
_ATTEMPTS = max(
    (infer_split(m, me).attempts for m in config["models"] for me in config["methods"]),
    default=1,
)
_RETRIES = workflow.execution_settings.retries if workflow.execution_settings else 0
INFER_RETRIES = max(_ATTEMPTS - 1, _RETRIES) if _ATTEMPTS > 1 else None
