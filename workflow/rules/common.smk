# Targets, input functions and wildcard constraints: the only place that reads the config.
import json

from biomedquant.datasets.prepare import fewshot_split
from biomedquant.datasets.registry import get_dataset
from biomedquant.prompting import get_prompt_method


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
# The unquantized method every quantized one is compared with (the first of kind 'none').
BASELINE = next((m for m, s in config["methods"].items() if s["kind"] == "none"), None)


def method_spec(wildcards):
    return config["methods"][wildcards.method]


def model_dir(wildcards):
    """Artifact folder of (model, method): methods of kind 'none' use the fetched model."""
    if method_spec(wildcards)["kind"] == "none":
        return f"resources/models/{wildcards.model}/none"
    return f"resources/models/{wildcards.model}/{wildcards.method}"


def fewshot_pool(wildcards):
    """The dataset's few-shot pool, for prompting methods that show examples."""
    if get_prompt_method(wildcards.prompt).shots == 0:
        return []
    split = fewshot_split(wildcards.dataset, config["data"]["base_url"])
    return f"resources/datasets/{wildcards.dataset}/{split}.jsonl"


def max_new_tokens(wildcards):
    """The config's cap for this task and kind of prompt ('' = the task's default)."""
    task = get_dataset(wildcards.dataset).task
    cot = get_prompt_method(wildcards.prompt).chain_of_thought
    caps = config["inference"]["cot_max_new_tokens" if cot else "max_new_tokens"]
    return caps.get(task, "")


def sc_samples(wildcards):
    """Self-consistency chains; 1 for other methods, so sc settings never rerun them."""
    sc = get_prompt_method(wildcards.prompt).self_consistency
    return config["prompting"]["sc_samples"] if sc else 1


def sc_temperature(wildcards):
    sc = get_prompt_method(wildcards.prompt).self_consistency
    return config["prompting"]["sc_temperature"] if sc else 0


def prepare_limit(wildcards):
    """Subsample the evaluated split only; few-shot pools stay whole (0 = every item)."""
    return (config["data"]["limit"] or 0) if wildcards.split == EVAL_SPLIT else 0


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def run_files(pattern, methods):
    return expand(
        pattern,
        model=config["models"],
        method=methods,
        dataset=config["datasets"],
        prompt=config["prompts"],
    )


def score_files():
    return run_files(
        "results/scores/{model}/{method}/{dataset}/{prompt}.json", config["methods"]
    )


def comparison_files():
    quantized = [m for m, s in config["methods"].items() if s["kind"] != "none"]
    if BASELINE is None:
        return []
    return run_files(
        "results/comparisons/{model}/{method}/{dataset}/{prompt}.json", quantized
    )


def final_targets():
    targets = [
        "results/tables/scores.csv",
        "results/figures/scores_by_dataset.png",
        "results/figures/scores_by_dataset.pdf",
    ]
    if comparison_files():
        targets.append("results/tables/comparisons.csv")
    return targets
