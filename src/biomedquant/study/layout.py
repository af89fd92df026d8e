"""Where a study's files live: the paths every rule, job and table agrees on.

One folder per model x method and stage (a job's declared outputs: one per file would be
thousands of paths for Snakemake to plan), holding one file per dataset x prompting method by
the patterns below. These folders' files are the data contract between the stages: evaluate
and the tables read them by these paths. Patterns keep Snakemake's ``{wildcard}`` fields.
"""

from __future__ import annotations

from biomedquant.methods import kinds

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
# The record of every prepared split of the study (study_data): the one input by which the
# jobs that read every dataset follow them.
STUDY_DATA = "resources/datasets/study.json"
# A model x method's artifact folder (the fetched model is method "none"), as the method
# kinds' model_folder spells it.
MODEL_DIR = kinds.MODEL_DIR
# One per model: every method's lm-evaluation-harness folder and model cards.
EXPORTS = "results/exports/{model}"


def prepared_split(dataset: str, split: str) -> str:
    """The prepared split of ``dataset`` (prepare_dataset's output)."""
    return f"resources/datasets/{dataset}/{split}.jsonl"


def raw_split(dataset: str, split: str) -> str:
    """The downloaded file of ``dataset``'s ``split`` (download_dataset's output)."""
    return f"resources/raw/{dataset}/{split}.raw"


def under_noise_floor(path: str) -> str:
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
