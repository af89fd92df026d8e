# What jobs ask a scheduler for. The GPU rules size their GPUs, host memory, GPU memory and
# runtime per model x method (biomedquant.job_resources: the fit estimator, and the runtime model
# of biomedquant.throughput): gpu_job_resource(rule, key) is a resource callable for infer,
# quantize_model and perplexity. The same rules run locally (where only the GPU count is
# enforced, against --resources gpu=N) and on SLURM (where all of it is).
import os
from functools import lru_cache

from biomedquant.job_resources import (
    Runtime,
    gpu_constraint,
    inference_shards,
    infer_workload,
    job_gpus,
    job_resources,
    perplexity_workload,
)
from biomedquant.methods import method_kind
from biomedquant.study_checks import fp8_feature
from biomedquant.throughput import Throughput

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
GPU_GIB = config["scheduling"]["gpu_gib"]
MAX_GPUS = config["scheduling"]["max_gpus_per_job"]


# The longest wall time a job may ask for (config scheduling.max_job_hours), in minutes.
MAX_JOB_MINUTES = int(60 * config["scheduling"]["max_job_hours"])


@lru_cache(maxsize=None)
def infer_workloads(dataset):
    """One workload per prompting method of a grouped inference job on ``dataset``."""
    return tuple(
        infer_workload(
            dataset, prompt, limit=config["data"].get("limit"), decoding=DECODING
        )
        for prompt in config["prompts"]
    )


# The rates runtimes are modelled with: the backends on scheduling.gpu, or a site's refit.
THROUGHPUT = Throughput.from_config(config)


def job_runtime(rule_name, model, method):
    """How a job's runtime is modelled: inference on the configured backend, perplexity
    (always transformers) and quantization on their GPUs."""
    backend = config["inference"]["backend"] if rule_name == "infer" else "transformers"
    return Runtime(backend, THROUGHPUT, max(1, _job_gpus(rule_name, model, method)))


@lru_cache(maxsize=None)
def inference_shard_count(model, method, dataset):
    """Item shards of the inference job of (model, method, dataset): 1 unless its runtime
    estimate exceeds the wall-time limit (biomedquant.job_resources.inference_shards). The
    noise floor's job is cut the same way as the baseline's."""
    return inference_shards(
        config["models"][model],
        config["methods"][method],
        infer_workloads(dataset),
        MAX_JOB_MINUTES,
        job_runtime("infer", model, method),
    )


@lru_cache(maxsize=None)
def _gpu_job_resources(rule_name, model, method, dataset, attempt):
    """The estimator's figures for one job (cached: Snakemake asks once per resource)."""
    workload = None
    shards = 1
    if rule_name == "perplexity":
        workload = perplexity_workload(
            config["datasets"], limit=config["data"].get("limit")
        )
    elif rule_name == "infer":
        workload = infer_workloads(dataset)
        shards = inference_shard_count(model, method, dataset)
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
            rule_name,
            wildcards.model,
            wildcards.method,
            wildcards.get("dataset"),
            attempt,
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
        tokens=DECODING.batch_tokens,
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


def gpu_resources(rule_name):
    """Every resource of a GPU rule: its GPUs, the estimator's host memory, GPU memory (all
    its GPUs together) and runtime for each job, the node features where configured, and the
    CPU threads to use when no GPU is present."""
    return {
        **constraint_resources(rule_name),
        "gpu": gpu_count(rule_name),
        "mem_mb": gpu_job_resource(rule_name, "mem_mb"),
        "gpu_mem_mb": gpu_job_resource(rule_name, "gpu_mem_mb"),
        "runtime": gpu_job_resource(rule_name, "runtime"),
        "cpu_threads": CPU_THREADS,
    }
