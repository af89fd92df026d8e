# What jobs ask a scheduler for. The GPU rules size host memory, GPU memory and runtime from the
# fit estimator per model x method (biomedquant.job_resources): gpu_job_resource(rule, key) is
# a resource callable for infer, quantize_model and perplexity. The same rules run locally
# (where only gpu=1 is enforced) and on SLURM (where all of it is).
import os
from functools import lru_cache

from biomedquant.job_resources import (
    gpu_constraint,
    inference_shards,
    infer_workload,
    job_resources,
    perplexity_workload,
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
# When set, GPU jobs also ask for the node feature of the smallest GPU that holds them
# (sbatch --constraint), so a small job does not take a large GPU.
GPU_TIERS = os.environ.get("BIOMEDQUANT_SLURM_GPU_TIERS", "").strip()


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


def gpu_tier_resources(rule_name):
    """{'constraint': callable} when GPU tiers are configured, else nothing to add."""
    if not GPU_TIERS:
        return {}
    gpu_mem = gpu_job_resource(rule_name, "gpu_mem_mb")

    @signature_once
    def constraint(wildcards, attempt):
        return gpu_constraint(gpu_mem(wildcards, attempt), GPU_TIERS)

    return {"constraint": constraint}


def gpu_resources(rule_name):
    """Every resource of a GPU rule: a GPU, the estimator's host memory, GPU memory and
    runtime for each job, the GPU tier where configured, and the CPU threads to use when no
    GPU is present."""
    return {
        **gpu_tier_resources(rule_name),
        "gpu": 1,
        "mem_mb": gpu_job_resource(rule_name, "mem_mb"),
        "gpu_mem_mb": gpu_job_resource(rule_name, "gpu_mem_mb"),
        "runtime": gpu_job_resource(rule_name, "runtime"),
        "cpu_threads": CPU_THREADS,
    }
