# Targets, input functions and wildcard constraints: the only place that reads the config.
import json

from biomedquant.datasets.prepare import fewshot_split
from biomedquant.datasets.registry import get_dataset
from biomedquant.prompting import get_prompt_method
from biomedquant.quantization import METHOD_KINDS


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
# Where generations are cached ('' = off); like the threads, a resource: it changes cost only.
_CACHE = config["inference"]["generation_cache"]
GENERATION_CACHE = _CACHE["dir"] if _CACHE["enabled"] else ""
# The unquantized method every quantized one is compared with (the first of kind 'none').
BASELINE = next((m for m, s in config["methods"].items() if s["kind"] == "none"), None)


def method_spec(wildcards):
    return config["methods"][wildcards.method]


def model_dir(wildcards):
    """Artifact folder of (model, method): methods without an artifact of their own (the
    16-bit baseline, bitsandbytes at load time) use the fetched model."""
    if not METHOD_KINDS[method_spec(wildcards)["kind"]].artifact:
        return f"resources/models/{wildcards.model}/none"
    return f"resources/models/{wildcards.model}/{wildcards.method}"


def calibration_datasets(wildcards):
    """Datasets an in-domain calibration draws from ([] for other sources)."""
    calib = method_spec(wildcards).get("calibration", {})
    if calib.get("source") != "in_domain":
        return []
    names = calib.get("datasets", config["datasets"])
    unknown = sorted(set(names) - set(config["datasets"]))
    if unknown:
        raise ValueError(
            f"methods.{wildcards.method}.calibration.datasets: {unknown} are not in the"
            f" study's datasets {config['datasets']}"
        )
    return names


def calibration_pools(wildcards):
    """Train (or dev) splits of in-domain calibration, by dataset."""
    base = config["data"]["base_url"]
    return {
        name: f"resources/datasets/{name}/{fewshot_split(name, base)}.jsonl"
        for name in calibration_datasets(wildcards)
    }


def calibration_test_files(wildcards):
    """The full test files of those datasets: calibration must hold none of their items."""
    return {
        name: f"resources/raw/{name}/test.raw"
        for name in calibration_datasets(wildcards)
    }


def pairs_arg(files):
    """name=path pairs for the CLI."""
    return " ".join(f"{name}={path}" for name, path in sorted(files.items()))


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


def run_records():
    """Every inference run record of the study."""
    return run_files(
        "results/predictions/{model}/{method}/{dataset}/{prompt}.run.json",
        config["methods"],
    )


def study_shape():
    """What the fit estimator reads: model entries, the method parameters that set memory
    (so that, say, a GPTQ dampening change does not rerun the plan) and the token budget.
    """
    memory_keys = ("kind", "bits", "group_size", "double_quant")
    methods = {
        name: {k: v for k, v in spec.items() if k in memory_keys}
        for name, spec in config["methods"].items()
    }
    return {
        "models": config["models"],
        "methods": methods,
        "inference": {"batch_tokens": config["inference"]["batch_tokens"]},
    }


def quantized_artifacts():
    """Every quantized artifact folder (gptq, rtn): the quality table reads their provenance."""
    artifacts = [
        m for m, s in config["methods"].items() if METHOD_KINDS[s["kind"]].artifact
    ]
    return expand(
        "resources/models/{model}/{method}",
        model=config["models"],
        method=artifacts,
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
    """Tables, figures (PNG and PDF) and the report's pages. Without a baseline and a
    quantized method nothing is compared: no comparison figures, no recommendation."""
    tables = ["scores", "memory"]
    figures = [
        "scores_by_dataset",
        "prompting",
        "memory",
        "memory_vs_score",
        "memory_estimate_check",
    ]
    extra = ["results/report/configuration.html"]
    if quantized_artifacts():
        extra.append("results/tables/quantization_quality.csv")
    if comparison_files():
        tables += ["comparisons", "recommendation"]
        figures += ["change_heatmap", "flip_rate", "recommendation"]
        # the recommendation as SVG: the report's landing page inlines it
        extra.append("results/figures/recommendation.svg")
    return [
        *(f"results/tables/{t}.csv" for t in tables),
        *(f"results/figures/{f}.{ext}" for f in figures for ext in ("png", "pdf")),
        *(f"results/report/{t}.html" for t in tables),
        *extra,
    ]
