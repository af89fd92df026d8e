# Targets, input functions and wildcard constraints: the config as the rules see it (the
# package reads the parts each job needs from the settings the rules hand over).
import inspect
import json
import os
import re
from functools import lru_cache

from biomedquant.datasets.prepare import fewshot_split
from biomedquant.datasets.registry import get_dataset
from biomedquant.evaluation.job import evaluation_code_fingerprint
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.prompting import get_prompt_method
from biomedquant.methods.kinds import METHOD_KINDS, model_folder
from biomedquant.report.figures.registry import FIGURES, figure_paths, figure_rule_names
from biomedquant.report.figures.style import order_from_config, order_to_json
from snakemake.common import overwrite_function_params
from snakemake.resources import Resource


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    model="[a-z0-9][a-z0-9_.-]*",
    method="[a-z0-9][a-z0-9_.-]*",
    prompt="[a-z0-9][a-z0-9_.-]*",
    shard="[0-9]+-of-[0-9]+",
    split="test|dev|train",


def signature_once(func):
    """Record ``func``'s signature for Snakemake once.

    Snakemake inspects the signature of an input, params or resource function every time it
    calls it, once per job and directive: for a study of thousands of jobs that was a tenth of
    the time a dry run takes. It reads a recorded one instead when present (the mechanism
    behind its own `subpath`; this project pins Snakemake, see tests/test_pins.py).
    """
    overwrite_function_params(func, inspect.signature(func).parameters)
    return func


# The same for Snakemake's own resource wrapper: it calls every callable resource through the
# bound method Resource.evaluate, whose signature it inspected anew on every call (30,000
# times for the paper's study). A bound method reads attributes of its function, so recording
# the function's parameters once serves every resource of every job. Recorded, they read
# (self, *args, **kwargs), where the bound method's read (*args, **kwargs): both take any
# keyword, which is all Snakemake asks of them, so every resource is evaluated as before.
signature_once(Resource.evaluate)


EVAL_SPLIT = config["data"]["split"]
# Display order of the config (a method keeps its colour and place in every figure).
FIGURE_ORDER = order_to_json(order_from_config(config))


def prepared_split(dataset, split=EVAL_SPLIT):
    """The prepared split of ``dataset`` (prepare_dataset's output, datasets.smk)."""
    return f"resources/datasets/{dataset}/{split}.jsonl"


CONDA_ENV = "../../envs/biomedquant.yaml"
# Torch CPU threads of GPU-class jobs when no GPU is present. A resource, not a param: it
# changes speed, not results, so changing it must not rerun anything.
CPU_THREADS = str(config["cpu_threads"])
# Where generations are cached ('' = off); like the threads, a resource: it changes cost only.
_CACHE = config["inference"]["generation_cache"]
GENERATION_CACHE = _CACHE["dir"] if _CACHE["enabled"] else ""
# The unquantized method every quantized one is compared with (the first of kind 'none').
BASELINE = next((m for m, s in config["methods"].items() if s["kind"] == "none"), None)
# Whether anything is compared with it: a baseline and at least one quantized method.
COMPARED = BASELINE is not None and any(
    s["kind"] != "none" for s in config["methods"].values()
)


def method_spec(wildcards):
    return config["methods"][wildcards.method]


@signature_once
def model_dir(wildcards):
    """Artifact folder of (model, method): methods without an artifact of their own (the
    16-bit baseline, bitsandbytes at load time) use the fetched model."""
    return model_folder(wildcards.model, wildcards.method, method_spec(wildcards))


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
        name: prepared_split(name, fewshot_split(name, base))
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


# Whether any prompting method of the study shows examples (then every inference job reads
# its dataset's few-shot pool).
SHOWS_EXAMPLES = any(get_prompt_method(p).shots for p in config["prompts"])


# The decoding and batching settings of the study (every default in biomedquant.inference.decoding).
DECODING = Decoding.from_config(config)


def sc_samples(prompt):
    """Self-consistency chains; 1 for other methods, so sc settings never change them."""
    return DECODING.samples(prompt)


def sc_temperature(prompt):
    """The chains' temperature; 0 for other methods (the integer, as the settings' JSON of
    greedy runs always held it)."""
    sc = get_prompt_method(prompt).self_consistency
    return DECODING.sc_temperature if sc else 0


@signature_once
def prepare_limit(wildcards):
    """Subsample the evaluated split only; few-shot pools stay whole (0 = every item)."""
    return (config["data"]["limit"] or 0) if wildcards.split == EVAL_SPLIT else 0


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def study_shape():
    """What the fit estimator reads: model entries, the method parameters that set memory
    (so that, say, a GPTQ dampening change does not rerun the plan) and the token budget.
    """
    memory_keys = ("kind", "bits", "group_size", "double_quant", "type")
    methods = {
        name: {k: v for k, v in spec.items() if k in memory_keys}
        for name, spec in config["methods"].items()
    }
    return {
        "models": config["models"],
        "methods": methods,
        "inference": {"batch_tokens": config["inference"]["batch_tokens"]},
    }


def model_artifacts(model):
    """{method: folder} of the model's quantized artifacts (gptq, rtn), in config order."""
    return {
        m: f"resources/models/{model}/{m}"
        for m, s in config["methods"].items()
        if METHOD_KINDS[s["kind"]].artifact
    }


def quantized_artifacts():
    """Every quantized artifact folder, model by model: the quality table reads their
    provenance."""
    return [f for model in config["models"] for f in model_artifacts(model).values()]


def export_methods(wildcards):
    """A params function: the --methods JSON of a model's export job (per method its config
    entry, evaluate manifest and artifact folder, or null: no model card)."""
    artifacts = model_artifacts(wildcards.model)
    return as_json(
        [
            {
                "name": m,
                "spec": config["methods"][m],
                "manifest": MANIFEST.format(model=wildcards.model, method=m),
                "artifact": artifacts.get(m),
            }
            for m in config["methods"]
        ]
    )


def evaluation_manifests():
    """The evaluate jobs' manifests, model by model, method by method (the tables' row order)."""
    return expand(MANIFEST, model=config["models"], method=config["methods"])


# Reading the answers, scoring and comparing (the evaluate rules in evaluation.smk).
EVALUATION_CODE = evaluation_code_fingerprint()
# The baseline's evaluate rule covers the baseline only (or every method when the study has
# no baseline: then nothing is compared); the other rule covers the quantized methods.
BASELINE_PATTERN = BASELINE if BASELINE is not None else "{method}"
QUANTIZED_METHODS = (
    "|".join(re.escape(m) for m, s in config["methods"].items() if s["kind"] != "none")
    or "(?!)"
)
NOISE_FLOOR = BASELINE is not None and bool(config["noise_floor"].get("batch_size"))


# What the inference and evaluate rules write: one folder per model x method and stage (a
# job's declared outputs; one per file would be thousands of paths for Snakemake to plan),
# holding one file per dataset x prompting method, by the patterns below. The folders' files
# are the data contract: evaluate and the tables read them by these paths.
GENERATIONS_DIR = "results/generations/{model}/{method}"
PREDICTIONS_DIR = "results/predictions/{model}/{method}"
SCORES_DIR = "results/scores/{model}/{method}"
COMPARISONS_DIR = "results/comparisons/{model}/{method}"
GENERATIONS = f"{GENERATIONS_DIR}/{{dataset}}/{{prompt}}.jsonl"
# the run record sits beside its generations: both are the inference job's
RUN_RECORD = f"{GENERATIONS_DIR}/{{dataset}}/{{prompt}}.run.json"
PREDICTIONS = f"{PREDICTIONS_DIR}/{{dataset}}/{{prompt}}.jsonl"
SCORES = f"{SCORES_DIR}/{{dataset}}/{{prompt}}.json"
COMPARISONS = f"{COMPARISONS_DIR}/{{dataset}}/{{prompt}}.json"
# One per evaluate job: the files it wrote, which the study-wide tables read.
MANIFEST = "results/evaluation/{model}/{method}.json"
# The folder of parts an inference job's item shard writes (every shard but the last, which
# joins them): per dataset a folder of one <prompt>.jsonl and <prompt>.run.json per
# prompting method.
SHARD_PARTS = "results/generation_shards/{model}/{method}/{shard}"


def under_noise_floor(path):
    """The noise floor's copy of a results path (results/noise_floor/...)."""
    return f"results/noise_floor/{path.removeprefix('results/')}"


NOISE_FLOOR_GENERATIONS_DIR = under_noise_floor(GENERATIONS_DIR)
NOISE_FLOOR_PREDICTIONS_DIR = under_noise_floor(PREDICTIONS_DIR)
NOISE_FLOOR_COMPARISONS_DIR = under_noise_floor(COMPARISONS_DIR)
NOISE_FLOOR_GENERATIONS = under_noise_floor(GENERATIONS)
NOISE_FLOOR_RUN_RECORD = under_noise_floor(RUN_RECORD)
NOISE_FLOOR_SHARD_PARTS = under_noise_floor(SHARD_PARTS)
NOISE_FLOOR_PREDICTIONS = under_noise_floor(PREDICTIONS)
NOISE_FLOOR_COMPARISONS = under_noise_floor(COMPARISONS)


def stage_dir(pattern, method="{method}"):
    """A stage's folder for one model x method, as a rule's output (or, with the method
    fixed, the baseline's, as an input)."""
    return directory(pattern.replace("{method}", method))


def gold_files():
    return [prepared_split(d) for d in config["datasets"]]


# The record of every prepared split of the study (datasets.smk, study_data): the one input by
# which the jobs that read every dataset follow them.
STUDY_DATA = "resources/datasets/study.json"


def noise_floor_inputs():
    if not NOISE_FLOOR:
        return {}
    return {"noise_floor": NOISE_FLOOR_GENERATIONS_DIR.replace("{method}", BASELINE)}


def noise_floor_outputs():
    if not NOISE_FLOOR:
        return {}
    return {
        "noise_floor_predictions": stage_dir(NOISE_FLOOR_PREDICTIONS_DIR, BASELINE),
        "noise_floor_comparisons": stage_dir(NOISE_FLOOR_COMPARISONS_DIR, BASELINE),
    }


@signature_once
def evaluate_settings(wildcards):
    """Everything one evaluate job reads and writes, as JSON (biomedquant.evaluation.job).

    A function of the wildcards alone (not of the job's input and output), so that Snakemake
    compares it with the last run's and re-evaluates when a scoring setting changes.
    """
    model, method = wildcards.model, wildcards.get("method", BASELINE)
    compared = BASELINE is not None and method != BASELINE
    noise_floor = NOISE_FLOOR and method == BASELINE
    runs = []
    for dataset in config["datasets"]:
        for prompt in config["prompts"]:
            names = {
                "model": model,
                "method": method,
                "dataset": dataset,
                "prompt": prompt,
            }
            run = {
                "dataset": dataset,
                "prompt": prompt,
                "gold": prepared_split(dataset),
                "generations": GENERATIONS.format(**names),
                "predictions": PREDICTIONS.format(**names),
                "scores": SCORES.format(**names),
                "run_record": RUN_RECORD.format(**names),
            }
            if compared:
                run["baseline_predictions"] = PREDICTIONS.format(
                    **{**names, "method": BASELINE}
                )
                run["comparisons"] = COMPARISONS.format(**names)
            if noise_floor:
                run["noise_floor_generations"] = NOISE_FLOOR_GENERATIONS.format(**names)
                run["noise_floor_predictions"] = NOISE_FLOOR_PREDICTIONS.format(**names)
                run["noise_floor_comparisons"] = NOISE_FLOOR_COMPARISONS.format(**names)
            runs.append(run)
    settings = {
        "model": model,
        "method": method,
        "manifest": MANIFEST.format(model=model, method=method),
        "runs": runs,
        "resamples": config["scoring"]["bootstrap_resamples"],
        "comparison_resamples": config["scoring"]["comparison_resamples"],
        "level": config["scoring"]["ci_level"],
        "seed": config["seed"],
    }
    if compared:
        settings["baseline"] = BASELINE
    if noise_floor:
        settings["noise_floor_label"] = (
            f"{BASELINE}@batch{config['noise_floor']['batch_size']}"
        )
    return as_json(settings)


@signature_once
def infer_settings(wildcards, batch_size=None):
    """The keys every run of an inference job shares, as JSON for `biomedquant infer`
    --settings (each dataset's own decoding keys are in its --datasets entry, infer_datasets).
    Any change reruns the job; the generation cache then generates only the prompts whose
    settings changed, on one model load."""
    return as_json(
        {
            "method": method_spec(wildcards),
            "batch_size": batch_size or DECODING.batch_size,
            "batch_tokens": DECODING.batch_tokens,
            "backend": config["inference"]["backend"],
            "system_prompt": config["prompting"].get("system_prompt", ""),
            "seed": config["seed"],
        }
    )


@signature_once
def noise_floor_infer_settings(wildcards):
    """The baseline's settings at the noise floor's batch shape."""
    return infer_settings(wildcards, batch_size=config["noise_floor"]["batch_size"])


@lru_cache(maxsize=None)
def dataset_runs(dataset):
    """Per prompting method, the decoding keys resolved for ``dataset``'s task
    (biomedquant.inference.decoding.Decoding): the token cap, self-consistency chains and
    temperature. Computed once per dataset (every inference and evaluate job asks; read, never
    changed).
    """
    task = get_dataset(dataset).task
    return {
        prompt: {
            # the config's cap for this task and kind of prompt (None: the default)
            "max_new_tokens": DECODING.cap(task, prompt),
            "sc_samples": sc_samples(prompt),
            "sc_temperature": sc_temperature(prompt),
        }
        for prompt in config["prompts"]
    }


def dataset_pool(dataset):
    """The few-shot pool of ``dataset`` when a prompting method of the study shows examples."""
    if not SHOWS_EXAMPLES:
        return ""
    return prepared_split(dataset, fewshot_split(dataset, config["data"]["base_url"]))


def study_pools():
    return [p for p in map(dataset_pool, config["datasets"]) if p]


PROMPT_ARGS = " ".join(f"--prompt {p}" for p in config["prompts"])


# The inference rules' input functions and parameters (inference.smk). One job per model x
# method runs every dataset; a job cut into n item shards runs as n - 1 infer_shard jobs (the
# first slices of every dataset, written as parts) and the infer job (the last slice, joining
# the others' parts into the per-run files).
def shard_count(wildcards):
    return infer_split(wildcards.model, wildcards.method).parts


def shard_parts(parts_pattern):
    """Input function: the part folders of every shard but the last ([] when unsharded)."""

    @signature_once
    def parts(wildcards):
        n = shard_count(wildcards)
        names = {k: wildcards[k] for k in ("model", "method")}
        return [parts_pattern.format(**names, shard=f"{k}-of-{n}") for k in range(1, n)]

    return parts


def infer_datasets(generations=None, records=None):
    """A params function: the --datasets JSON of an inference job, with each dataset's
    prepared split, few-shot pool, runs and item shard. Given the ``generations`` and
    ``records`` patterns, the job writing the per-run files (the last shard, joining the part
    folders of the other shards, its ``parts`` input); without them, an infer_shard job
    writing its slice of every dataset as parts into its output folder."""

    @signature_once
    def datasets(wildcards, input, output):
        n = shard_count(wildcards)
        names = {"model": wildcards.model, "method": wildcards.method}
        entries = []
        for dataset in config["datasets"]:
            entry = {
                "dataset": dataset,
                "data": prepared_split(dataset),
                "pool": dataset_pool(dataset),
                "runs": dataset_runs(dataset),
            }
            if generations is None:
                folder = f"{output.parts}/{dataset}"
                entry.update(
                    out_dir=folder,
                    record_dir=folder,
                    # unfinished batches wait beside the part folder (Snakemake deletes the
                    # folder of a failed job; the next attempt resumes from them)
                    partial_dir=f"{output.parts}.partial/{dataset}",
                    shard=wildcards.shard,
                )
            else:
                run = {**names, "dataset": dataset, "prompt": "_"}
                entry.update(
                    out_dir=os.path.dirname(generations.format(**run)),
                    record_dir=os.path.dirname(records.format(**run)),
                    # beside the job's output folder, which Snakemake deletes when it fails
                    partial_dir=f"{output.generations}.partial/{dataset}",
                    shard=f"{n}-of-{n}",
                    parts=[f"{folder}/{dataset}" for folder in input.parts],
                )
            entries.append(entry)
        return as_json(entries)

    return datasets


def final_targets():
    """Tables, figures (the registry's files) and the report's pages. Without a baseline and a
    quantized method nothing is compared: no comparison figures, no recommendation."""
    tables = ["scores", "memory"]
    compared = COMPARED
    figures = figure_rule_names(compared=compared)
    extra = ["results/report/configuration.html"]
    if quantized_artifacts():
        extra.append("results/tables/quantization_quality.csv")
    # per model: every method's results in lm-evaluation-harness's format, and the cards
    extra += expand("results/exports/{model}", model=config["models"])
    if compared:
        tables += ["comparisons", "recommendation", "deployment_choice"]
        extra.append("results/tables/comparisons_by_label.csv")
    return [
        *(f"results/tables/{t}.csv" for t in tables),
        *(path for f in figures for path in figure_paths(f)),
        *(f"results/report/{t}.html" for t in tables),
        *extra,
    ]


def report_figure(name):
    """Figure ``name``'s PNG as a report item, with its caption and category from the
    registry (report.smk's figure rules, and those of planning.smk and analysis.smk, which draw
    a figure beside their table)."""
    spec = FIGURES[name]
    return report(
        figure_paths(name)[0],
        caption=f"../report/{spec.caption}",
        category=spec.category,
    )
