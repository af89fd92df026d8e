"""A model x method's results in lm-evaluation-harness's output format, for the tools that read it.

Leaderboards, comparison notebooks and lm-eval's own table printer read a folder holding one
``results_<datetime>.json`` (its ``results``, ``configs``, ``versions``, ``n-shot``,
``higher_is_better``, ``n-samples`` and ``config`` layout) and, per task,
``samples_<task>_<datetime>.jsonl`` (one line per document: its prompt, raw response, the
answer read from it, the target and per-sample scores). This module writes that folder from
what the evaluate step wrote for one model x method: every dataset x prompting method is one
lm-eval task (``hoc_zero_shot``), its metrics are this project's (with their bootstrap
intervals; lm-eval's ``_stderr`` is the interval's half-width over the normal quantile), and
the ``benchmark_*`` metrics beside them. The datetime in the file names is the newest score's,
so an unchanged evaluation exports the same files.

lm-eval's format has no notion of a primary metric, and its table printer sorts metrics by name,
so a reader of the folder alone would not know which number the study's verdicts use, nor that
the ``benchmark_*`` numbers (the benchmark script's convention, kept to be set beside the paper's
tables) reward unparsable answers. Each task's ``configs[task]["metadata"]`` (lm-eval's free
field for a task's facts) says both: ``primary_metric`` and ``primary_metric_key`` (its key in
``results``), and ``metrics``: per metric, its ``role`` (``primary``, ``secondary``,
``benchmark``, ``diagnostic``), whether it ``rewards_unparsable`` answers (scores one above a
wrong answer) and a ``note`` saying why (:func:`metric_notes`).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist
from typing import Any

from biomedquant import __version__
from biomedquant.common.files import atomic_dir, read_json, read_jsonl, sha256_text
from biomedquant.datasets.registry import get_dataset
from biomedquant.evaluation.scoring import aligned_predictions
from biomedquant.evaluation.stats.sufficient import TASK_KIND
from biomedquant.inference.prompting import PROMPT_METHODS
from biomedquant.tasks import get_task

FILTER = "none"  # lm-eval keys metrics as "<metric>,<filter>"; the answer reading is ours
LOWER_IS_BETTER = {"parse_failure_rate"}

# What the benchmark script makes of an unparsable answer, per task kind (the empty answer;
# biomedquant.tasks.metrics.benchmark_metrics), and what that costs against a wrong answer.
_BENCHMARK_UNPARSABLE = {
    "ner": (
        "an unparsable sentence scores as 'no entity', which costs only its gold entities' "
        "recall, and nothing at all on a sentence without gold entities (the benchmark's NER "
        "evaluation counts no predicted entity there)"
    ),
    "mlc": (
        "an unparsable answer scores as the empty label set, which costs only its gold labels' "
        "recall, never a false label's precision"
    ),
    "single": (
        "an unparsable answer scores as the empty string, a class of its own: it costs its gold "
        "class's recall but no other class's precision (beyond the one share of macro-F1 the "
        "empty class takes)"
    ),
}


def task_name(dataset: str, prompt: str) -> str:
    """The lm-eval task of a dataset x prompting method (``\\W`` becomes ``_``, as lm-eval's
    ``sanitize_task_name`` does, so the name survives its file-name parsing)."""
    return re.sub(r"\W", "_", f"{dataset}_{prompt}")


def _newest(written: list[str]) -> datetime:
    """The newest of the scores' times (naive UTC): the export's date and file-name stamp."""
    times = [datetime.fromisoformat(w).astimezone(timezone.utc) for w in written]
    return max(times, default=datetime(1970, 1, 1, tzinfo=timezone.utc))


def _stamp(when: datetime) -> str:
    """lm-eval's file-name datetime (``2026-12-03T05-45-28.000000``: no ``_``, no ``:``)."""
    return when.replace(tzinfo=None).isoformat(timespec="microseconds").replace(":", "-")


def _metric_entries(scores: dict[str, Any]) -> dict[str, Any]:
    level = float(scores.get("bootstrap", {}).get("level", 0.95))
    z = NormalDist().inv_cdf(0.5 + level / 2)
    out: dict[str, Any] = {}
    for name, m in scores["metrics"].items():
        out[f"{name},{FILTER}"] = m["value"]
        lo, hi = m.get("ci_low"), m.get("ci_high")
        if lo is not None and hi is not None:
            out[f"{name}_stderr,{FILTER}"] = (hi - lo) / (2 * z)
            out[f"{name}_ci_low,{FILTER}"] = lo
            out[f"{name}_ci_high,{FILTER}"] = hi
        elif not name.startswith("benchmark_"):
            out[f"{name}_stderr,{FILTER}"] = "N/A"
    out[f"parse_failure_rate,{FILTER}"] = scores.get("parse_failure_rate")
    return out


def metric_notes(task: str, primary: str | None, metrics: list[str]) -> dict[str, Any]:
    """Per exported metric, its role, whether it rewards unparsable answers, and why.

    ``task``: the dataset's task (``ner``, ``re``, ``mlc``, ``qa``); ``primary``: the project's
    primary metric for it; ``metrics``: the metric names of the task's results. The project's
    metrics score an unparsable answer at least as a wrong one (so breaking format never pays:
    :mod:`biomedquant.tasks.metrics`); the ``benchmark_*`` ones score it as the empty answer,
    which for every F1 costs less than a wrong answer, so a method that breaks format more
    often can gain on them. Accuracy is the one exception: the empty answer is simply wrong.
    """
    out: dict[str, Any] = {}
    for name in metrics:
        if name == primary:
            role, rewards = "primary", False
            note = (
                "the project's primary metric for this task: every comparison, verdict and "
                "figure of the study uses it (its bootstrap interval in _ci_low/_ci_high)"
            )
        elif name == "parse_failure_rate":
            role, rewards = "diagnostic", False
            note = "share of answers that could not be read; lower is better"
        elif name.startswith("benchmark_"):
            role = "benchmark"
            rewards = name != "benchmark_accuracy"
            how = (
                "an unparsable answer counts as one wrong answer"
                if not rewards
                else "it rewards unparsable answers: "
                + _BENCHMARK_UNPARSABLE.get(task, _BENCHMARK_UNPARSABLE["single"])
            )
            note = (
                "the benchmark script's convention (BIDS-Xu-Lab/Biomedical-NLP-Benchmarks "
                f"{'run_eval_ner.py' if task == 'ner' else 'run_eval.py'}), exported to be set "
                f"beside the benchmark paper's tables, not to compare methods: {how}; no interval"
            )
        else:
            role, rewards = "secondary", False
            note = (
                "the project's convention (an unparsable answer costs at least a wrong one); "
                "reported beside the primary metric, not used by the verdicts"
            )
        out[name] = {"role": role, "rewards_unparsable": rewards, "note": note}
    return out


def _same_answer(kind: str, gold: Any, pred: Any) -> bool:
    """Whether a parsed answer is the gold one: a label set regardless of order, an NER
    tagging tag by tag, a single label as it is."""
    if kind == "multi":
        return sorted(gold) == sorted(pred or [])
    if kind == "ner":
        return list(gold) == list(pred or [])
    return gold == pred


def _answer_text(pred: Any) -> str:
    return pred if isinstance(pred, str) else json.dumps(pred)


def _samples(
    run: dict[str, Any], task: Any, kind: str, max_new_tokens: int | None
) -> list[dict[str, Any]]:
    """lm-eval's per-document records of one run, in the gold file's order."""
    gold_records, preds, oks = aligned_predictions(
        run["predictions"], run["gold"], run["dataset"], prompt=run["prompt"]
    )
    raw = {str(r["id"]): r for r in read_jsonl(run["predictions"])}
    out = []
    for i, (rec, pred, ok) in enumerate(zip(gold_records, preds, oks, strict=True)):
        stored = raw[str(rec["id"])]
        outputs = stored.get("output")
        outputs = outputs if isinstance(outputs, list) else [outputs]
        gold = task.gold(rec)
        target = json.dumps(gold) if not isinstance(gold, str) else gold
        doc = {"id": str(rec["id"]), "gold": gold}
        out.append(
            {
                "doc_id": i,
                "doc": doc,
                "target": target,
                "arguments": {
                    "gen_args_0": {
                        "arg_0": stored.get("prompt", ""),
                        "arg_1": {"max_gen_toks": max_new_tokens, "until": []},
                    }
                },
                "resps": [outputs],
                "filtered_resps": [_answer_text(pred) if ok else ""],
                "filter": FILTER,
                "metrics": ["exact_match", "parsed"],
                "doc_hash": sha256_text(json.dumps(doc, sort_keys=True)),
                "prompt_hash": stored.get("prompt_sha256") or sha256_text(stored.get("prompt", "")),
                "target_hash": sha256_text(target),
                "exact_match": float(bool(ok) and _same_answer(kind, gold, pred)),
                "parsed": float(bool(ok)),
            }
        )
    return out


def export_lm_eval(
    manifest_path: str | Path,
    model: str,
    model_spec: dict[str, Any],
    method_name: str,
    method: dict[str, Any],
    out_dir: str | Path,
) -> list[Path]:
    """Write the lm-eval folder of one model x method from its evaluate manifest (which lists,
    per dataset x prompting method, the gold, predictions, scores and run record files)."""
    manifest = read_json(manifest_path)
    results: dict[str, Any] = {}
    configs, versions, n_shot, higher, n_samples = {}, {}, {}, {}, {}
    samples: dict[str, list[dict[str, Any]]] = {}
    written, run_facts = [], {}
    for run in manifest["runs"]:
        missing = [k for k in ("gold", "predictions", "scores") if not run.get(k)]
        if missing:
            raise ValueError(
                f"{manifest_path}: run {run.get('dataset')} x {run.get('prompt')} lists no"
                f" {', '.join(missing)} file: the manifest predates the export (rerun its"
                " evaluate job: snakemake --forcerun evaluate evaluate_baseline)"
            )
        dataset, prompt = run["dataset"], run["prompt"]
        spec, name = get_dataset(dataset), task_name(dataset, prompt)
        scores = read_json(run["scores"])
        record = read_json(run["run_record"]) if run.get("run_record") else {}
        run_facts = run_facts or record
        written.append(scores.get("written_at") or "1970-01-01T00:00:00+00:00")
        results[name] = {"alias": f"{spec.title} ({prompt})", **_metric_entries(scores)}
        shots = PROMPT_METHODS[prompt].shots if prompt in PROMPT_METHODS else 0
        n_shot[name] = shots
        versions[name] = f"biomedquant {__version__}"
        metrics = [k.split(",")[0] for k in results[name] if "," in k and "_stderr," not in k]
        base_metrics = [m for m in metrics if not m.endswith(("_ci_low", "_ci_high"))]
        primary = scores.get("primary_metric")
        higher[name] = {
            m: m.removesuffix("_ci_low").removesuffix("_ci_high") not in LOWER_IS_BETTER
            for m in metrics
        }
        n_samples[name] = {"original": spec.test_size, "effective": int(scores.get("n", 0))}
        max_new = record.get("max_new_tokens")
        configs[name] = {
            "task": name,
            "dataset_path": f"BIDS-Xu-Lab/Biomedical-NLP-Benchmarks ({spec.title})",
            "dataset_name": dataset,
            "test_split": Path(run["gold"]).stem,
            "output_type": "generate_until",
            "num_fewshot": shots,
            "generation_kwargs": {"max_gen_toks": max_new, "until": []},
            "metadata": {
                "version": __version__,
                "task_kind": spec.task,
                "primary_metric": primary,
                "primary_metric_key": f"{primary},{FILTER}" if primary else None,
                "metrics": metric_notes(spec.task, primary, base_metrics),
                "prompting_method": prompt,
                "bootstrap": scores.get("bootstrap"),
            },
        }
        samples[name] = _samples(run, get_task(spec.task), TASK_KIND[spec.task], max_new)
    model_id = model_spec.get("id") or model
    newest = _newest(written)
    stamp = _stamp(newest)
    doc = {
        "results": results,
        "group_subtasks": {name: [] for name in results},
        "configs": configs,
        "versions": versions,
        "n-shot": n_shot,
        "higher_is_better": higher,
        "n-samples": n_samples,
        "config": {
            "model": "biomedquant",
            "model_args": ",".join(
                f"{k}={v}"
                for k, v in (
                    ("pretrained", model_id),
                    ("revision", model_spec.get("revision")),
                    ("quantization", method_name),
                    ("kind", method.get("kind")),
                )
                if v
            ),
            "model_dtype": run_facts.get("compute_dtype"),
            "model_revision": model_spec.get("revision"),
            "batch_size": str(run_facts.get("batch_size")),
            "device": run_facts.get("device"),
            "random_seed": run_facts.get("seed"),
        },
        "date": newest.timestamp(),
        "model_source": "biomedquant",
        "model_name": f"{model_id} ({method_name})",
        "model_name_sanitized": re.sub(r"[\"<>:/|\\?*\[\]]+", "__", f"{model_id}-{method_name}"),
        "biomedquant_version": __version__,
    }
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / f"results_{stamp}.json").write_text(json.dumps(doc, indent=2) + "\n")
        for name, rows in samples.items():
            with (tmp / f"samples_{name}_{stamp}.jsonl").open("w") as fh:
                for row in rows:
                    fh.write(json.dumps(row) + "\n")
    return sorted(out_dir.iterdir())
