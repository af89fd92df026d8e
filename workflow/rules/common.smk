# Targets, input functions and wildcard constraints: the only place that reads the config.
import json

from biomedquant.datasets.registry import get_dataset


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    model="[a-z0-9][a-z0-9_.-]*",
    method="[a-z0-9][a-z0-9_.-]*",
    prompt="[a-z0-9][a-z0-9_.-]*",
    split="test|dev|train",


EVAL_SPLIT = config["data"]["split"]
CONDA_ENV = "../../envs/biomedquant.yaml"
# Torch CPU threads of GPU-class jobs when no GPU is present. A resource, not a param: it
# changes speed, not results, so changing it must not rerun anything.
CPU_THREADS = str(config["cpu_threads"])


def method_spec(wildcards):
    return config["methods"][wildcards.method]


def model_dir(wildcards):
    """Artifact folder of (model, method): methods of kind 'none' use the fetched model."""
    if method_spec(wildcards)["kind"] == "none":
        return f"resources/models/{wildcards.model}/none"
    return f"resources/models/{wildcards.model}/{wildcards.method}"


def max_new_tokens(wildcards):
    task = get_dataset(wildcards.dataset).task
    return config["inference"]["max_new_tokens"].get(task, "")


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def score_files():
    return expand(
        "results/scores/{model}/{method}/{dataset}/{prompt}.json",
        model=config["models"],
        method=config["methods"],
        dataset=config["datasets"],
        prompt=config["prompts"],
    )


def final_targets():
    return [
        "results/tables/scores.csv",
        "results/figures/scores_by_dataset.png",
        "results/figures/scores_by_dataset.pdf",
    ]
