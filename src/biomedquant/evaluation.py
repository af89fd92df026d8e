"""The CPU work after inference, as one job: parse, score and compare every prompting method.

A study plans one inference job per model x method x dataset x prompting method (the GPU unit
of work: resume, cluster requests and reruns stay that fine), but the work that follows is
seconds per prompt: reading the raw outputs (:mod:`biomedquant.parsing`), scoring them
(:func:`biomedquant.scoring.score_predictions`) and comparing them with the baseline on the same
items (:func:`biomedquant.scoring.compare_to_baseline`). Planning one job each for those would
triple the number of jobs Snakemake has to plan, so one job per model x method x dataset does
all of it, for every prompting method, and writes the same per-prompt files
(``results/predictions``, ``results/scores``, ``results/comparisons``) that separate jobs would.

The trade-off: new raw outputs for one prompting method re-evaluate the whole group, which is a
few seconds of CPU; a parser or scoring change never reruns inference.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

from biomedquant.io import read_jsonl
from biomedquant.parsing import reparse_predictions
from biomedquant.scoring import compare_to_baseline, score_predictions

log = logging.getLogger(__name__)

# What a group needs, per prompting method (paths) and for all of them (the rest).
REQUIRED = ("model", "method", "dataset", "gold", "prompts", "generations", "predictions", "scores")


# The modules whose code decides what an evaluation writes: the reading rules, the metrics
# and the statistics. Their fingerprint is a parameter of the evaluate rules, so Snakemake
# re-evaluates (and only re-evaluates) when that code changes.
EVALUATION_MODULES = (
    "biomedquant.tasks",
    "biomedquant.parsing",
    "biomedquant.evaluation",
    "biomedquant.scoring",
    "biomedquant.metrics",
    "biomedquant.item_stats",
    "biomedquant.bootstrap",
    "biomedquant.estimates",
    "biomedquant.paired_tests",
)


def evaluation_code_fingerprint(modules: tuple[str, ...] = EVALUATION_MODULES) -> str:
    """SHA-256 over the source files of ``modules`` (a package: all its ``.py`` files)."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"evaluation code: module {name} not found")
        origin = Path(spec.origin)
        files = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(f"{name}:{path.name}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def check_settings(settings: dict[str, Any]) -> None:
    """Refuse a settings object that misses a key or does not cover every prompting method."""
    missing = [k for k in REQUIRED if k not in settings]
    if missing:
        raise ValueError(f"evaluation settings lack {', '.join(missing)}")
    prompts = settings["prompts"]
    per_prompt = ["generations", "predictions", "scores"]
    if settings.get("baseline_predictions"):
        per_prompt += ["baseline_predictions", "comparisons"]
    if settings.get("noise_floor_generations"):
        per_prompt += [f"noise_floor_{k}" for k in ("generations", "predictions", "comparisons")]
    for key in per_prompt:
        if sorted(settings.get(key) or {}) != sorted(prompts):
            raise ValueError(f"evaluation settings: {key} must name a file for each of {prompts}")


def parse_generations(
    generations_path: str | Path,
    gold_path: str | Path,
    dataset: str,
    prompt: str,
    out_path: str | Path,
) -> dict[str, Any]:
    """Parsed predictions of one generations file; the same items as the gold file, in order.

    Raw outputs of items the gold file does not hold, or gold items without an output, mean
    the two files belong to different runs: an error naming both, never a partial score.
    """
    gold_ids = [str(r["id"]) for r in read_jsonl(gold_path)]
    gen_ids = [str(r.get("id")) for r in read_jsonl(generations_path)]
    if sorted(gold_ids) != sorted(gen_ids):
        extra = sorted(set(gen_ids) - set(gold_ids))[:3]
        lacking = sorted(set(gold_ids) - set(gen_ids))[:3]
        raise ValueError(
            f"{generations_path} does not hold the items of {gold_path}"
            f" (not in gold: {extra}; without output: {lacking})"
        )
    return reparse_predictions(generations_path, gold_path, dataset, prompt, out_path)


def evaluate_group(settings: dict[str, Any]) -> dict[str, Any]:
    """Parse, score and (against the baseline, and the noise floor where set) compare every
    prompting method of one model x method x dataset; returns a summary per prompt.

    ``settings`` holds the names (model, method, dataset, baseline), the gold file, the
    bootstrap settings (resamples, level, seed) and, per prompting method, the paths: the raw
    ``generations`` to read, the ``predictions`` and ``scores`` to write, and, for a quantized
    method, the baseline's parsed predictions and the ``comparisons`` to write. For the
    baseline with a noise floor configured, also the noise floor's generations, its parsed
    predictions and its comparisons with the baseline.
    """
    check_settings(settings)
    dataset, gold = settings["dataset"], settings["gold"]
    boot = {
        "resamples": int(settings.get("resamples", 1000)),
        "level": float(settings.get("level", 0.95)),
        "seed": int(settings.get("seed", 0)),
    }
    names = {"model": settings["model"], "method": settings["method"]}
    summary: dict[str, Any] = {}
    for prompt in settings["prompts"]:
        parsed = parse_generations(
            settings["generations"][prompt], gold, dataset, prompt, settings["predictions"][prompt]
        )
        score = score_predictions(
            predictions_path=settings["predictions"][prompt],
            gold_path=gold,
            dataset=dataset,
            out_path=settings["scores"][prompt],
            prompt=prompt,
            **names,
            **boot,
        )
        summary[prompt] = {"parse": parsed, "n": score["n"]}
        if settings.get("baseline_predictions"):
            compare_to_baseline(
                baseline_path=settings["baseline_predictions"][prompt],
                predictions_path=settings["predictions"][prompt],
                gold_path=gold,
                dataset=dataset,
                out_path=settings["comparisons"][prompt],
                baseline=settings["baseline"],
                prompt=prompt,
                **names,
                **boot,
            )
        if settings.get("noise_floor_generations"):
            parse_generations(
                settings["noise_floor_generations"][prompt],
                gold,
                dataset,
                prompt,
                settings["noise_floor_predictions"][prompt],
            )
            compare_to_baseline(
                baseline_path=settings["predictions"][prompt],
                predictions_path=settings["noise_floor_predictions"][prompt],
                gold_path=gold,
                dataset=dataset,
                out_path=settings["noise_floor_comparisons"][prompt],
                model=settings["model"],
                method=settings["noise_floor_label"],
                baseline=settings["method"],
                prompt=prompt,
                noise_floor=True,
                **boot,
            )
        log.info(
            "%s %s %s %s: %d items, %d unparsable",
            settings["model"],
            settings["method"],
            dataset,
            prompt,
            parsed["n_items"],
            parsed["n_unparsable"],
        )
    return summary
