# Wildcard constraints and the input functions the rules call. What each job gets is worked
# out by the package (biomedquant.study.jobs: settings, inputs, targets; biomedquant.study.layout:
# the paths), tested without Snakemake; the functions here unpack a job's wildcards and hand
# the package's answer over, as JSON where a command reads settings.
import json

from biomedquant.evaluation.job import evaluation_code_fingerprint
from biomedquant.methods.kinds import model_folder
from biomedquant.report.figures.registry import FIGURES, figure_paths
from biomedquant.study import layout
from biomedquant.study.jobs import StudyJobs
from biomedquant.study.planning_speedups import signature_once

STUDY = StudyJobs(config)
CONDA_ENV = "../../envs/biomedquant.yaml"
# Reading the answers, scoring and comparing: a change of that code re-evaluates.
EVALUATION_CODE = evaluation_code_fingerprint()
# The baseline's evaluate rule covers the baseline only (or every method when the study has
# no baseline: then nothing is compared); the other rule covers the quantized methods.
BASELINE_PATTERN = STUDY.baseline if STUDY.baseline is not None else "{method}"
PROMPT_ARGS = " ".join(f"--prompt {p}" for p in config["prompts"])


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    model="[a-z0-9][a-z0-9_.-]*",
    method="[a-z0-9][a-z0-9_.-]*",
    prompt="[a-z0-9][a-z0-9_.-]*",
    shard="[0-9]+-of-[0-9]+",
    split="test|dev|train",


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def pairs_arg(files):
    """name=path pairs for the CLI."""
    return " ".join(f"{name}={path}" for name, path in sorted(files.items()))


def method_spec(wildcards):
    return config["methods"][wildcards.method]


@signature_once
def model_dir(wildcards):
    """Artifact folder of (model, method): methods without an artifact of their own (the
    16-bit baseline, bitsandbytes at load time) use the fetched model."""
    return model_folder(wildcards.model, wildcards.method, method_spec(wildcards))


def calibration_pools(wildcards):
    return STUDY.calibration_pools(wildcards.method)


def calibration_test_files(wildcards):
    return STUDY.calibration_test_files(wildcards.method)


@signature_once
def prepare_limit(wildcards):
    return STUDY.prepare_limit(wildcards.split)


def export_methods(wildcards):
    return as_json(STUDY.export_methods(wildcards.model))


def stage_dir(pattern, method="{method}"):
    """A stage's folder for one model x method, as a rule's output (or, with the method
    fixed, the baseline's, as an input)."""
    return directory(pattern.replace("{method}", method))


def noise_floor_inputs():
    if not STUDY.noise_floor:
        return {}
    return {
        "noise_floor": layout.NOISE_FLOOR_GENERATIONS_DIR.replace(
            "{method}", STUDY.baseline
        )
    }


def noise_floor_outputs():
    if not STUDY.noise_floor:
        return {}
    return {
        "noise_floor_predictions": stage_dir(
            layout.NOISE_FLOOR_PREDICTIONS_DIR, STUDY.baseline
        ),
        "noise_floor_comparisons": stage_dir(
            layout.NOISE_FLOOR_COMPARISONS_DIR, STUDY.baseline
        ),
    }


@signature_once
def evaluate_settings(wildcards):
    model, method = wildcards.model, wildcards.get("method", STUDY.baseline)
    return as_json(STUDY.evaluate_settings(model, method))


@signature_once
def infer_settings(wildcards):
    return as_json(STUDY.infer_settings(wildcards.method))


@signature_once
def noise_floor_infer_settings(wildcards):
    return as_json(STUDY.noise_floor_infer_settings(wildcards.method))


# A job cut into n item shards runs as n - 1 infer_shard jobs (the first slices of every
# dataset, written as parts) and the infer job (the last slice, joining the parts).
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
    """A params function: the --datasets JSON of an inference job. Given the ``generations``
    and ``records`` patterns, of the job writing the per-run files (joining the other shards'
    parts); without them, of an infer_shard job (its slice, as parts in its output folder).
    """

    @signature_once
    def datasets(wildcards, input, output):
        if generations is None:
            return as_json(STUDY.shard_datasets(output.parts, wildcards.shard))
        entries = STUDY.joining_datasets(
            wildcards.model,
            wildcards.method,
            shards=shard_count(wildcards),
            generations=generations,
            records=records,
            output_dir=output.generations,
            parts=list(input.parts),
        )
        return as_json(entries)

    return datasets


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
