"""Commands of the inference stage (workflow/rules/inference.smk):
generation, perplexity, the generation cache.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from biomedquant.cli.args import (
    add_gpus_arg,
    cpu_threads,
    hide_gpus,
    json_arg,
)

DECODING_SETTINGS = ("sc_samples", "sc_temperature", "batch_size", "batch_tokens", "max_new_tokens")
# ``runs``: per prompting method of a grouped job, its own decoding keys (the workflow's way).
INFER_SETTINGS = ("method", "backend", "seed", "system_prompt", "runs", *DECODING_SETTINGS)
RUN_SETTINGS = ("sc_samples", "sc_temperature", "max_new_tokens")


def _apply_settings(args: argparse.Namespace, allowed: Sequence[str]) -> None:
    """Copy the keys of ``--settings`` onto ``args``; an unknown key is an error."""
    if not getattr(args, "settings", None):
        return
    unknown = sorted(set(args.settings) - set(allowed))
    if unknown:
        raise ValueError(f"--settings: unknown key(s) {unknown} (known: {', '.join(allowed)})")
    for key, value in args.settings.items():
        setattr(args, key, value)


def _outputs(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(prompting method, generations file, run record) of each run of the job: ``--out`` and
    ``--run-record`` for a job of one run, ``--out-dir`` and ``--record-dir`` (one
    ``<prompt>.jsonl`` and ``<prompt>.run.json`` each) for any number."""
    prompts = args.prompt
    if len(set(prompts)) != len(prompts):
        raise ValueError(f"--prompt: {prompts} names a prompting method twice")
    if args.out or args.run_record:
        if args.out_dir or args.record_dir:
            raise ValueError("give --out and --run-record, or --out-dir and --record-dir")
        if len(prompts) != 1 or not (args.out and args.run_record):
            raise ValueError(
                "--out and --run-record name one run's files: give one --prompt with both,"
                " or --out-dir and --record-dir for several prompting methods"
            )
        return [(prompts[0], args.out, args.run_record)]
    if not (args.out_dir and args.record_dir):
        raise ValueError("infer: give --out and --run-record, or --out-dir and --record-dir")
    return [(p, f"{args.out_dir}/{p}.jsonl", f"{args.record_dir}/{p}.run.json") for p in prompts]


# What each entry of ``--datasets`` names (the workflow's way: one job, every dataset).
DATASET_KEYS = ("dataset", "data", "pool", "out_dir", "record_dir", "partial_dir", "shard", "parts")
SINGLE_DATASET_FLAGS = (
    "dataset",
    "data",
    "pool",
    "out",
    "run_record",
    "out_dir",
    "record_dir",
    "partial_dir",
)


def _runs(
    args: argparse.Namespace,
    outputs: list[tuple[str, str, str]],
    per_run: dict[str, Any] | None,
    parts: Sequence[str],
    partial_dir: str,
) -> list[Any]:
    """The RunSpecs of one dataset: decoding per prompting method from the settings' ``runs``
    (the workflow's way) or from the decoding flags (by hand)."""
    from biomedquant.inference.job import RunSpec, runs_from_settings

    if per_run:
        unknown = sorted(set(per_run) - {p for p, _, _ in outputs})
        if unknown:
            raise ValueError(f"--settings runs: {unknown} are not among --prompt {args.prompt}")
        bad = sorted(k for v in per_run.values() for k in v if k not in RUN_SETTINGS)
        if bad:
            raise ValueError(f"--settings runs: unknown key(s) {bad} (known: {RUN_SETTINGS})")
        runs = runs_from_settings({**vars(args), "runs": per_run}, outputs, parts)
    else:
        from biomedquant.inference.decoding import Decoding

        decoding = Decoding.from_settings({k: getattr(args, k) for k in DECODING_SETTINGS})
        runs = [
            RunSpec(p, Path(o), Path(r), decoding, tuple(Path(d) / f"{p}.jsonl" for d in parts))
            for p, o, r in outputs
        ]
    if partial_dir:
        runs = [
            dataclasses.replace(
                r, partial_path=Path(partial_dir) / f"{r.prompt_method}.jsonl.partial"
            )
            for r in runs
        ]
    return runs


def _checked_shard(text: str, parts: Sequence[str]) -> Any:
    from biomedquant.inference.job import Shard

    shard = Shard.parse(text)
    if len(parts) != shard.parts_joined:
        raise ValueError(
            f"--parts: shard {shard.label} takes {shard.parts_joined} part folder(s) (the last"
            f" shard joins the others, join-of-n all n), got {len(parts)}"
        )
    return shard


def _dataset_jobs(args: argparse.Namespace) -> list[Any]:
    """The datasets of the job: ``--datasets`` (the workflow's, a JSON list with each
    dataset's files, shard, parts and run settings), or one dataset from its flags."""
    from biomedquant.inference.job import DatasetJob

    if args.datasets is None:
        if not (args.dataset and args.data):
            raise ValueError("infer: give --dataset and --data, or --datasets")
        parts = args.parts
        shard = _checked_shard(args.shard, parts)
        runs = _runs(args, _outputs(args), args.runs, parts, args.partial_dir)
        pool = Path(args.pool) if args.pool else None
        return [DatasetJob(args.dataset, Path(args.data), tuple(runs), pool, shard)]
    given = [f"--{f.replace('_', '-')}" for f in SINGLE_DATASET_FLAGS if getattr(args, f)]
    if given or args.parts or args.shard != "1-of-1" or args.runs:
        raise ValueError(
            f"--datasets names every dataset's files: drop {given or '--shard/--parts'}"
        )
    if not isinstance(args.datasets, list) or not args.datasets:
        raise ValueError("--datasets: expected a non-empty JSON list of datasets")
    jobs = []
    for i, entry in enumerate(args.datasets):
        unknown = sorted(set(entry) - {*DATASET_KEYS, "runs"})
        if unknown or not entry.get("dataset") or not entry.get("data"):
            raise ValueError(
                f"--datasets[{i}]: needs dataset and data; unknown key(s) {unknown}"
                f" (known: {', '.join(DATASET_KEYS)}, runs)"
            )
        parts = entry.get("parts") or []
        shard = _checked_shard(entry.get("shard") or "1-of-1", parts)
        out_dir, record_dir = entry["out_dir"], entry["record_dir"]
        outputs = [(p, f"{out_dir}/{p}.jsonl", f"{record_dir}/{p}.run.json") for p in args.prompt]
        runs = _runs(args, outputs, entry.get("runs"), parts, entry.get("partial_dir") or "")
        pool = Path(entry["pool"]) if entry.get("pool") else None
        jobs.append(DatasetJob(entry["dataset"], Path(entry["data"]), tuple(runs), pool, shard))
    return jobs


# The exit status of a time-boxed job that stopped at its time box (EX_TEMPFAIL): not an
# error; the next attempt resumes.
STOPPED_AT_TIME_BOX = 75


def _cmd_infer(args: argparse.Namespace) -> None:
    from biomedquant.inference.job import TimeBudgetReached, run_inference_datasets
    from biomedquant.inference.prompting import DEFAULT_SYSTEM_PROMPT

    started = time.monotonic()
    if args.stop_after_minutes < 0:
        raise ValueError(f"--stop-after-minutes: {args.stop_after_minutes:g} is negative")

    _apply_settings(args, INFER_SETTINGS)
    if not args.method:
        raise ValueError("infer: give the method as --method or in --settings")
    if len(set(args.prompt)) != len(args.prompt):
        raise ValueError(f"--prompt: {args.prompt} names a prompting method twice")
    jobs = _dataset_jobs(args)
    if args.gpus == 0:
        hide_gpus("--gpus 0")
    cpu_threads(args.cpu_threads)
    stop_at = started + 60 * args.stop_after_minutes if args.stop_after_minutes else None
    try:
        run_inference_datasets(
            model_dir=args.model_dir,
            method=args.method,
            datasets=jobs,
            cache_dir=args.cache_dir or None,
            backend=args.backend,
            seed=args.seed,
            system_prompt=args.system_prompt or DEFAULT_SYSTEM_PROMPT,
            gpus=args.gpus,
            stop_at=stop_at,
        )
    except TimeBudgetReached as stop:
        print(
            f"biomedquant infer: time box of {args.stop_after_minutes:g} min reached; {stop}"
            f" (exit status {STOPPED_AT_TIME_BOX})",
            file=sys.stderr,
        )
        sys.exit(STOPPED_AT_TIME_BOX)


def _cmd_perplexity(args: argparse.Namespace) -> None:
    from biomedquant.inference.perplexity import run_perplexity

    if args.gpus == 0:
        hide_gpus("--gpus 0")
    cpu_threads(args.cpu_threads)
    rec = run_perplexity(
        model_dir=args.model_dir,
        method=args.method,
        data_paths=args.data,
        out_path=args.out,
        max_length=args.max_length,
        gpus=args.gpus,
    )
    print(f"perplexity {rec['perplexity']:.3f} over {rec['n_tokens']} tokens")


def _cmd_perplexity_table(args: argparse.Namespace) -> None:
    from biomedquant.common.files import write_csv
    from biomedquant.inference.perplexity import PERPLEXITY_COLUMNS, perplexity_rows

    rows = perplexity_rows(args.records)
    write_csv(args.out, PERPLEXITY_COLUMNS, rows)
    print(f"{len(rows)} rows -> {args.out}")


def _cmd_cache(args: argparse.Namespace) -> None:
    from biomedquant.inference.cache import cache_summary, clear_cache

    if args.action == "info" and args.model_key is not None:
        raise ValueError("--model-key only applies to 'cache clear'")
    if args.action == "clear":
        if not args.yes:
            import sys

            clear_cache(args.dir, args.model_key, dry_run=True)  # bad keys and folders first
            rows = [
                r
                for r in cache_summary(args.dir)
                if args.model_key is None or r["model_key"] == args.model_key
            ]
            n = sum(r["entries"] for r in rows)
            what = f"{n} cached generation(s) of {len(rows)} model(s) in {args.dir}"
            if not sys.stdin.isatty():
                raise ValueError(f"cache clear would delete {what}: confirm with --yes")
            answer = input(f"delete {what} (they cost GPU time to redo)? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing removed")
                return
        n = clear_cache(args.dir, args.model_key)
        print(f"removed {n} file(s) from {args.dir}")
        return
    rows = cache_summary(args.dir)
    for r in rows:
        print(f"{r['model_key']}  {r['entries']:>8} generations  {r['bytes'] / 1e6:>9.1f} MB")
    print(f"{len(rows)} model(s), {sum(r['entries'] for r in rows)} generations in {args.dir}")


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    from biomedquant.inference.decoding import Decoding
    from biomedquant.inference.engines import BACKENDS

    dec = Decoding()
    s = sub.add_parser("infer", help="generate the raw outputs of one or more datasets")
    s.add_argument("--model-dir", required=True, help="the model or artifact folder")
    s.add_argument("--method", type=json_arg, help="the method entry as JSON")
    s.add_argument(
        "--settings",
        type=json_arg,
        help=f"a JSON object of any of {', '.join(INFER_SETTINGS)} (the workflow's way)",
    )
    s.add_argument("--dataset", default="", help="one dataset (or --datasets)")
    s.add_argument("--data", default="", help="its prepared split (JSON Lines)")
    s.add_argument(
        "--datasets",
        type=json_arg,
        help="every dataset of the job on one model load, as a JSON list of objects with"
        f" {', '.join(DATASET_KEYS)} and runs (the workflow's way)",
    )
    s.add_argument(
        "--prompt",
        required=True,
        action="append",
        help="a prompting method; repeat it to run several on one model load",
    )
    s.add_argument("--pool", default="", help="few-shot pool (JSON Lines); empty: none")
    s.add_argument("--out", default="", help="the generations file of a job of one run")
    s.add_argument("--run-record", default="", help="its run record")
    s.add_argument("--out-dir", default="", help="generations folder: <prompt>.jsonl each")
    s.add_argument("--record-dir", default="", help="run records folder: <prompt>.run.json each")
    s.add_argument(
        "--partial-dir",
        default="",
        help="where unfinished runs keep their batches (<prompt>.jsonl.partial each; default:"
        " beside each output); keep it outside the outputs Snakemake deletes on failure",
    )
    s.add_argument(
        "--shard",
        default="1-of-1",
        help="k-of-n: generate the k-th of n contiguous item slices (a job too long for a"
        " queue's time limit); every shard but the last writes parts",
    )
    s.add_argument(
        "--parts",
        nargs="*",
        default=[],
        help="with the last shard: the other shards' part folders, joined into the outputs",
    )
    # Decoding flags default to None: biomedquant.inference.decoding.Decoding holds the defaults.
    s.add_argument("--sc-samples", type=int, help=f"self-consistency chains ({dec.sc_samples})")
    s.add_argument("--sc-temperature", type=float, help=f"their temperature ({dec.sc_temperature})")
    s.add_argument("--batch-size", type=int, help=f"most rows per batch ({dec.batch_size})")
    s.add_argument("--batch-tokens", type=int, help=f"token budget per batch ({dec.batch_tokens})")
    s.add_argument("--backend", default="transformers", choices=BACKENDS, help="inference engine")
    s.add_argument("--cache-dir", default="", help="generation cache folder ('' = off)")
    s.add_argument("--max-new-tokens", default="", help="empty: the task's default")
    s.add_argument("--seed", type=int, default=0, help="seed of sampled chains")
    s.add_argument("--system-prompt", default="", help="empty: the package default")
    s.add_argument("--cpu-threads", default="job", help="'job', 'all' or a number")
    s.add_argument(
        "--stop-after-minutes",
        type=float,
        default=0,
        help="time-box the job: start no batch after this many minutes, save, and exit with"
        f" status {STOPPED_AT_TIME_BOX}; a rerun resumes (0 = no time box)",
    )
    add_gpus_arg(s)
    s.set_defaults(func=_cmd_infer, runs=None)

    s = sub.add_parser("perplexity", help="held-out perplexity of a model under a method")
    s.add_argument("--model-dir", required=True, help="the model or artifact folder")
    s.add_argument("--method", required=True, type=json_arg, help="the method entry as JSON")
    s.add_argument("--out", required=True, help="the perplexity record (JSON)")
    s.add_argument("--max-length", type=int, default=512, help="tokens per scored window")
    s.add_argument("--cpu-threads", default="job", help="'job', 'all' or a number")
    add_gpus_arg(s)
    s.add_argument("data", nargs="+", help="prepared test splits (JSON Lines)")
    s.set_defaults(func=_cmd_perplexity)

    s = sub.add_parser("perplexity-table", help="gather perplexity records into a table")
    s.add_argument("--out", required=True, help="the table (CSV)")
    s.add_argument("records", nargs="+", help="perplexity records (JSON)")
    s.set_defaults(func=_cmd_perplexity_table)

    s = sub.add_parser("cache", help="show or clear the generation cache")
    s.add_argument("action", choices=["info", "clear"], help="info: what it holds; clear: delete")
    s.add_argument("--dir", default="resources/generation_cache", help="the cache folder")
    s.add_argument(
        "--model-key", help="clear only this model's generations (a key listed by 'cache info')"
    )
    s.add_argument(
        "--yes", action="store_true", help="clear without asking (needed when not at a terminal)"
    )
    s.set_defaults(func=_cmd_cache)
