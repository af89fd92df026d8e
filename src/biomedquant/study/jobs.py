"""What each job of a study gets: its settings, inputs and targets, worked out from the config.

The rule files hand these to the ``biomedquant`` commands; Snakemake compares a job's params
with its last run's, so every value here that changes a result is part of a job's settings,
and every value that does not (threads, the cache folder) is not. Built once per plan
(:class:`StudyJobs`), it reads the validated config (defaults filled in by the schema) and is
tested without Snakemake.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from functools import cached_property
from typing import Any

from biomedquant.datasets.prepare import fewshot_split
from biomedquant.datasets.registry import get_dataset
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.prompting import get_prompt_method
from biomedquant.methods.engines import engine_for
from biomedquant.methods.kinds import (
    METHOD_KINDS,
    control_methods,
    control_pairs,
    model_folder,
)
from biomedquant.report.figures.registry import figure_paths, figure_rule_names
from biomedquant.report.figures.style import order_from_config, order_to_json
from biomedquant.study import layout

# The method parameters that set GPU memory (the fit estimator's inputs): a GPTQ dampening
# change, say, does not rerun the plan.
MEMORY_KEYS = ("kind", "bits", "group_size", "double_quant", "type")


def baseline_method(methods: dict[str, dict[str, Any]]) -> str | None:
    """The unquantized method every quantized one is compared with: the first of kind none."""
    return next((m for m, spec in methods.items() if spec["kind"] == "none"), None)


class StudyJobs:
    """The jobs of one study config: settings per job, input files, targets."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.datasets: list[str] = list(config["datasets"])
        self.prompts: list[str] = list(config["prompts"])
        self.methods: dict[str, dict[str, Any]] = config["methods"]
        self.models: dict[str, dict[str, Any]] = config["models"]
        self.eval_split: str = config["data"]["split"]
        self.baseline = baseline_method(self.methods)
        # Whether anything is compared with it: a baseline and at least one quantized method.
        self.compared = self.baseline is not None and any(
            spec["kind"] != "none" for spec in self.methods.values()
        )
        self.noise_floor = self.baseline is not None and bool(
            config["noise_floor"].get("batch_size")
        )
        # The decoding and batching settings (every default in biomedquant.inference.decoding).
        self.decoding = Decoding.from_config(config)
        # Whether a prompting method shows examples (then inference reads few-shot pools).
        self.shows_examples = any(get_prompt_method(p).shots for p in self.prompts)
        self._runs: dict[str, dict[str, dict[str, Any]]] = {}
        rec = config["recommendation"]
        # The recommendation's claim holds under the prompting methods a lab deploys (the
        # study's first unless the config names them); controls are measured, never candidates.
        self.deploy_prompts: list[str] = list(rec.get("deploy_prompts") or self.prompts[:1])
        self.controls: list[str] = control_methods(self.methods)
        self.control_of: dict[str, str] = control_pairs(self.methods)

    # --- settings that are not results: resources, so that changing them reruns nothing ---

    @property
    def cpu_threads(self) -> str:
        """Torch CPU threads of GPU-class jobs when no GPU is present."""
        return str(self.config["cpu_threads"])

    @property
    def generation_cache(self) -> str:
        """Where generations are cached ('' when the cache is off)."""
        cache = self.config["inference"]["generation_cache"]
        return cache["dir"] if cache["enabled"] else ""

    @cached_property
    def figure_order(self) -> str:
        """The display order of the config, as JSON (a method keeps its colour and place in
        every figure)."""
        return order_to_json(order_from_config(self.config))

    # --- data ---

    def prepared_split(self, dataset: str, split: str | None = None) -> str:
        """The prepared split of ``dataset`` (the evaluated split unless named)."""
        return layout.prepared_split(dataset, split or self.eval_split)

    def gold_files(self) -> list[str]:
        return [self.prepared_split(d) for d in self.datasets]

    def prepare_limit(self, split: str) -> int:
        """Items kept of a prepared split: the evaluated one is subsampled, few-shot pools stay
        whole (0 = every item)."""
        return (self.config["data"]["limit"] or 0) if split == self.eval_split else 0

    def dataset_pool(self, dataset: str) -> str:
        """The few-shot pool of ``dataset`` when a prompting method shows examples, else ''."""
        if not self.shows_examples:
            return ""
        return self.prepared_split(dataset, fewshot_split(dataset, self.config["data"]["base_url"]))

    def study_pools(self) -> list[str]:
        return [p for p in map(self.dataset_pool, self.datasets) if p]

    # --- quantization ---

    def calibration_datasets(self, method: str) -> list[str]:
        """Datasets an in-domain calibration draws from ([] for other sources)."""
        calib = self.methods[method].get("calibration", {})
        if calib.get("source") != "in_domain":
            return []
        names = calib.get("datasets", self.datasets)
        unknown = sorted(set(names) - set(self.datasets))
        if unknown:
            raise ValueError(
                f"methods.{method}.calibration.datasets: {unknown} are not in the"
                f" study's datasets {self.datasets}"
            )
        return names

    def calibration_pools(self, method: str) -> dict[str, str]:
        """Train (or dev) splits of in-domain calibration, by dataset."""
        base = self.config["data"]["base_url"]
        return {
            name: self.prepared_split(name, fewshot_split(name, base))
            for name in self.calibration_datasets(method)
        }

    def calibration_test_files(self, method: str) -> dict[str, str]:
        """The full test files of those datasets: calibration must hold none of their items."""
        return {name: layout.raw_split(name, "test") for name in self.calibration_datasets(method)}

    def model_artifacts(self, model: str) -> dict[str, str]:
        """{method: folder} of the model's quantized artifacts, in config order."""
        return {
            m: model_folder(model, m, spec)
            for m, spec in self.methods.items()
            if METHOD_KINDS[spec["kind"]].artifact
        }

    def quantized_artifacts(self) -> list[str]:
        """Every quantized artifact folder, model by model (the quality table reads them)."""
        return [f for model in self.models for f in self.model_artifacts(model).values()]

    def study_shape(self) -> dict[str, Any]:
        """What the fit estimator reads: model entries, the methods' memory parameters and the
        token budget."""
        return {
            "models": self.models,
            "methods": {
                name: {k: v for k, v in spec.items() if k in MEMORY_KEYS}
                for name, spec in self.methods.items()
            },
            "inference": {"batch_tokens": self.config["inference"]["batch_tokens"]},
        }

    # --- inference ---

    def dataset_runs(self, dataset: str) -> dict[str, dict[str, Any]]:
        """Per prompting method, the decoding keys resolved for ``dataset``'s task: the token
        cap, self-consistency chains and their temperature. Computed once per dataset (every
        inference and evaluate job asks; read, never changed)."""
        if dataset not in self._runs:
            task = get_dataset(dataset).task
            self._runs[dataset] = {
                prompt: {
                    # the config's cap for this task and kind of prompt (None: the default)
                    "max_new_tokens": self.decoding.cap(task, prompt),
                    "sc_samples": self.decoding.samples(prompt),
                    # 0, the integer, for greedy methods (as their settings always held it)
                    "sc_temperature": (
                        self.decoding.sc_temperature
                        if get_prompt_method(prompt).self_consistency
                        else 0
                    ),
                }
                for prompt in self.prompts
            }
        return self._runs[dataset]

    def infer_settings(self, method: str, batch_size: int | None = None) -> dict[str, Any]:
        """The keys every run of an inference job shares (each dataset's own decoding keys are
        in its entry, :meth:`infer_datasets`). Any change reruns the job; the generation cache
        then generates only the prompts whose settings changed, on one model load."""
        return {
            "method": self.methods[method],
            "batch_size": batch_size or self.decoding.batch_size,
            "batch_tokens": self.decoding.batch_tokens,
            # the engine that runs this method (methods.engines.engine_for: the config's
            # backend unless the method names its own or the backend would not run it as
            # specified, e.g. bitsandbytes under vLLM runs under transformers)
            "backend": engine_for(self.methods[method], self.config["inference"]["backend"]),
            "system_prompt": self.config["prompting"].get("system_prompt", ""),
            "seed": self.config["seed"],
        }

    def noise_floor_infer_settings(self, method: str) -> dict[str, Any]:
        """The baseline's settings at the noise floor's batch shape."""
        return self.infer_settings(method, batch_size=self.config["noise_floor"]["batch_size"])

    def _dataset_entry(self, dataset: str) -> dict[str, Any]:
        return {
            "dataset": dataset,
            "data": self.prepared_split(dataset),
            "pool": self.dataset_pool(dataset),
            "runs": self.dataset_runs(dataset),
        }

    def shard_datasets(self, parts_dir: str, shard: str) -> list[dict[str, Any]]:
        """The datasets of an infer_shard job: its slice of every dataset, written as parts
        into ``parts_dir``."""
        return [
            {
                **self._dataset_entry(dataset),
                "out_dir": f"{parts_dir}/{dataset}",
                "record_dir": f"{parts_dir}/{dataset}",
                # unfinished batches wait beside the part folder (Snakemake deletes the
                # folder of a failed job; the next attempt resumes from them)
                "partial_dir": f"{parts_dir}.partial/{dataset}",
                "shard": shard,
            }
            for dataset in self.datasets
        ]

    def joining_datasets(
        self,
        model: str,
        method: str,
        *,
        shards: int,
        generations: str,
        records: str,
        output_dir: str,
        parts: list[str],
    ) -> list[dict[str, Any]]:
        """The datasets of the job writing the per-run files (by the ``generations`` and
        ``records`` patterns): the last of its ``shards``, joining the part folders of the
        others."""
        n = shards
        entries = []
        for dataset in self.datasets:
            run = {"model": model, "method": method, "dataset": dataset, "prompt": "_"}
            entries.append(
                {
                    **self._dataset_entry(dataset),
                    "out_dir": os.path.dirname(generations.format(**run)),
                    "record_dir": os.path.dirname(records.format(**run)),
                    # beside the job's output folder, which Snakemake deletes when it fails
                    "partial_dir": f"{output_dir}.partial/{dataset}",
                    "shard": f"{n}-of-{n}",
                    "parts": [f"{folder}/{dataset}" for folder in parts],
                }
            )
        return entries

    # --- evaluation ---

    @cached_property
    def quantized_methods_pattern(self) -> str:
        """A regex of the quantized methods (one that matches nothing when there are none)."""
        quantized = [m for m, s in self.methods.items() if s["kind"] != "none"]
        return "|".join(re.escape(m) for m in quantized) or "(?!)"

    def evaluate_settings(self, model: str, method: str) -> dict[str, Any]:
        """Everything one evaluate job reads and writes (biomedquant.evaluation.job). A
        function of model and method alone (not of the job's files), so that Snakemake
        compares it with the last run's and re-evaluates when a scoring setting changes."""
        baseline = self.baseline
        compared = baseline is not None and method != baseline
        noise_floor = self.noise_floor and method == baseline
        runs = []
        for dataset, prompt in itertools.product(self.datasets, self.prompts):
            names = {"model": model, "method": method, "dataset": dataset, "prompt": prompt}
            run = {
                "dataset": dataset,
                "prompt": prompt,
                "gold": self.prepared_split(dataset),
                "generations": layout.GENERATIONS.format(**names),
                "predictions": layout.PREDICTIONS.format(**names),
                "scores": layout.SCORES.format(**names),
                "run_record": layout.RUN_RECORD.format(**names),
            }
            if compared:
                run["baseline_predictions"] = layout.PREDICTIONS.format(
                    **{**names, "method": baseline}
                )
                run["comparisons"] = layout.COMPARISONS.format(**names)
            if noise_floor:
                run["noise_floor_generations"] = layout.NOISE_FLOOR_GENERATIONS.format(**names)
                run["noise_floor_predictions"] = layout.NOISE_FLOOR_PREDICTIONS.format(**names)
                run["noise_floor_comparisons"] = layout.NOISE_FLOOR_COMPARISONS.format(**names)
            runs.append(run)
        scoring = self.config["scoring"]
        settings = {
            "model": model,
            "method": method,
            "manifest": layout.MANIFEST.format(model=model, method=method),
            "runs": runs,
            "resamples": scoring["bootstrap_resamples"],
            "comparison_resamples": scoring["comparison_resamples"],
            "level": scoring["ci_level"],
            "seed": self.config["seed"],
        }
        if compared:
            settings["baseline"] = baseline
        if noise_floor:
            settings["noise_floor_label"] = (
                f"{baseline}@batch{self.config['noise_floor']['batch_size']}"
            )
        return settings

    def evaluation_manifests(self) -> list[str]:
        """The evaluate jobs' manifests, model by model, method by method (the tables' order)."""
        return [
            layout.MANIFEST.format(model=model, method=method)
            for model, method in itertools.product(self.models, self.methods)
        ]

    # --- exports and targets ---

    def export_methods(self, model: str) -> list[dict[str, Any]]:
        """Per method of a model's export job: its config entry, evaluate manifest and
        artifact folder (None: no model card)."""
        artifacts = self.model_artifacts(model)
        return [
            {
                "name": m,
                "spec": self.methods[m],
                "manifest": layout.MANIFEST.format(model=model, method=m),
                "artifact": artifacts.get(m),
            }
            for m in self.methods
        ]

    def recommendation_scope_args(self) -> str:
        """The recommend command's scope: the prompting methods its claim holds under, the
        controls (never candidates) and each candidate's control."""
        args = [f"--deploy-prompt {shlex.quote(p)}" for p in self.deploy_prompts]
        args += [f"--control {shlex.quote(m)}" for m in self.controls]
        args += [f"--control-of {shlex.quote(f'{c}={m}')}" for c, m in self.control_of.items()]
        return " ".join(args)

    def final_targets(self) -> list[str]:
        """Tables, figures (the registry's files) and the report's pages. Without a baseline
        and a quantized method nothing is compared: no comparison figures, no recommendation."""
        tables = ["scores", "memory"]
        figures = figure_rule_names(compared=self.compared)
        extra = ["results/report/configuration.html"]
        if self.quantized_artifacts():
            extra.append("results/tables/quantization_quality.csv")
        # per model: every method's results in lm-evaluation-harness's format, and the cards
        extra += [layout.EXPORTS.format(model=model) for model in self.models]
        if self.compared:
            tables += ["comparisons", "recommendation", "deployment_choice"]
            extra.append("results/tables/comparisons_by_label.csv")
        return [
            *(f"results/tables/{t}.csv" for t in tables),
            *(path for f in figures for path in figure_paths(f)),
            *(f"results/report/{t}.html" for t in tables),
            *extra,
        ]
