"""The ``biomedquant`` command line: one subcommand per workflow stage.

Each Snakemake rule is one call of a subcommand; everything that changes a result is an
explicit argument, so the rule's ``params`` show it to Snakemake's rerun triggers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from biomedquant.cli_errors import OneLineErrorParser, run_reporting_errors


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err.msg}: {text[:80]}") from err


def _cpu_threads(value: str) -> None:
    """Set torch's CPU threads for a job without a GPU ('job': keep Snakemake's setting)."""
    if value in ("", "job"):
        return
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads((os.cpu_count() or 1) if value == "all" else int(value))


def _cmd_datasets(args: argparse.Namespace) -> None:
    from biomedquant.datasets.registry import DATASETS

    header = f"{'dataset':<14}{'task':<6}{'test items':>11}  {'splits':<16}{'few-shot':<10}licence"
    print(header)
    for spec in DATASETS.values():
        splits = ",".join(spec.splits)
        print(
            f"{spec.name:<14}{spec.task:<6}{spec.test_size:>11}  {splits:<16}"
            f"{spec.fewshot_split:<10}{spec.licence}"
        )
    print("test items: official test-set size (benchmark paper); few-shot: the pool's split")


def _cmd_download(args: argparse.Namespace) -> None:
    from biomedquant.datasets.download import download_split

    download_split(
        args.dataset,
        args.split,
        args.base_url,
        args.out,
        lock_path=args.lock or None,
        timeout=args.timeout,
        deadline=args.deadline,
    )


def _cmd_prepare(args: argparse.Namespace) -> None:
    from biomedquant.datasets.prepare import prepare_split

    limit = args.limit or None  # 0 means every item
    prov = prepare_split(args.dataset, args.split, args.raw, args.out, limit=limit, seed=args.seed)
    print(f"{args.dataset}/{args.split}: {prov['n_written']} of {prov['n_source']} items")


def _cmd_fetch(args: argparse.Namespace) -> None:
    from biomedquant.config_checks import check_revision
    from biomedquant.models import fetch_model

    if not isinstance(args.spec, dict):
        raise ValueError("--spec must be a JSON object (the model's config entry)")
    if args.strict_revisions:
        check_revision(args.model, args.spec)
    prov = fetch_model(args.model, args.spec, args.out)
    print(f"{args.model}: {prov['size_bytes'] / 1e6:.1f} MB in {prov['wall_seconds']} s")


def _pairs(text: str) -> dict[str, str]:
    """'name=path name=path' (as the workflow passes them) -> {name: path}."""
    out = {}
    for item in text.split():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise argparse.ArgumentTypeError(f"expected name=path, got {item!r}")
        out[name] = path
    return out


def _cmd_quantize(args: argparse.Namespace) -> None:
    from biomedquant.config_checks import check_group_size_for_folder
    from biomedquant.quantization import quantize_model

    if not isinstance(args.method, dict):
        raise ValueError("--method must be a JSON object (the method's config entry)")
    check_group_size_for_folder(args.source, args.method)
    _cpu_threads(args.cpu_threads)
    prov = quantize_model(
        args.source,
        args.out,
        args.method,
        seed=args.seed,
        pools=_pairs(args.pools),
        test_raws=_pairs(args.test_files),
        heldout=args.heldout,
    )
    print(f"quantized in {prov['quantize_seconds']} s, {prov['size_bytes'] / 1e6:.1f} MB")


# Settings of `infer` that change a result: the workflow hands them over as one JSON object
# (--settings), the same values the single flags take by hand. The decoding ones default to
# biomedquant.decoding.Decoding's values when neither gives them.
DECODING_SETTINGS = ("sc_samples", "sc_temperature", "batch_size", "batch_tokens", "max_new_tokens")
INFER_SETTINGS = ("method", "backend", "seed", "system_prompt", *DECODING_SETTINGS)


def _apply_settings(args: argparse.Namespace, allowed: Sequence[str]) -> None:
    """Copy the keys of ``--settings`` onto ``args``; an unknown key is an error."""
    if not getattr(args, "settings", None):
        return
    unknown = sorted(set(args.settings) - set(allowed))
    if unknown:
        raise ValueError(f"--settings: unknown key(s) {unknown} (known: {', '.join(allowed)})")
    for key, value in args.settings.items():
        setattr(args, key, value)


def _cmd_infer(args: argparse.Namespace) -> None:
    from biomedquant.decoding import Decoding
    from biomedquant.inference import run_inference
    from biomedquant.prompting import DEFAULT_SYSTEM_PROMPT

    _apply_settings(args, INFER_SETTINGS)
    if not args.method:
        raise ValueError("infer: give the method as --method or in --settings")
    _cpu_threads(args.cpu_threads)
    run_inference(
        model_dir=args.model_dir,
        method=args.method,
        dataset=args.dataset,
        data_path=args.data,
        prompt_method=args.prompt,
        out_path=args.out,
        run_path=args.run_record,
        pool_path=args.pool or None,
        decoding=Decoding.from_settings({k: getattr(args, k) for k in DECODING_SETTINGS}),
        cache_dir=args.cache_dir or None,
        backend=args.backend,
        seed=args.seed,
        system_prompt=args.system_prompt or DEFAULT_SYSTEM_PROMPT,
    )


def _cmd_parse(args: argparse.Namespace) -> None:
    from biomedquant.evaluation import parse_generations
    from biomedquant.scoring_inputs import check_out_path

    check_out_path(args.out, {"generations": args.generations, "gold": args.gold})
    summary = parse_generations(args.generations, args.gold, args.dataset, args.prompt, args.out)
    print(
        f"{summary['n_items']} items, {summary['n_unparsable']} unparsable"
        f" ({summary['parse_status']}) -> {args.out}"
    )


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from biomedquant.evaluation import evaluate_group

    for run, result in evaluate_group(args.settings).items():
        print(f"{run}: {result['n']} items, {result['parse']['n_unparsable']} unparsable")


def _cmd_score(args: argparse.Namespace) -> None:
    from biomedquant.scoring import score_predictions
    from biomedquant.scoring_inputs import check_scoring_inputs

    check_scoring_inputs(
        dataset=args.dataset,
        gold_path=args.gold,
        predictions={"predictions": args.predictions},
        out_path=args.out,
        level=args.level,
        resamples=args.resamples,
    )
    score_predictions(
        predictions_path=args.predictions,
        gold_path=args.gold,
        dataset=args.dataset,
        model=args.model,
        method=args.method,
        prompt=args.prompt,
        out_path=args.out,
        resamples=args.resamples,
        level=args.level,
        seed=args.seed,
    )


def _cmd_compare(args: argparse.Namespace) -> None:
    from biomedquant.scoring import compare_to_baseline
    from biomedquant.scoring_inputs import check_scoring_inputs

    check_scoring_inputs(
        dataset=args.dataset,
        gold_path=args.gold,
        predictions={
            "baseline predictions": args.baseline_predictions,
            "predictions": args.predictions,
        },
        out_path=args.out,
        level=args.level,
        resamples=args.resamples,
    )
    compare_to_baseline(
        baseline_path=args.baseline_predictions,
        predictions_path=args.predictions,
        gold_path=args.gold,
        dataset=args.dataset,
        out_path=args.out,
        model=args.model,
        method=args.method,
        baseline=args.baseline,
        prompt=args.prompt,
        resamples=args.resamples,
        level=args.level,
        seed=args.seed,
        noise_floor=args.noise_floor,
    )


def _cmd_aggregate(args: argparse.Namespace) -> None:
    from biomedquant.scoring import (
        aggregate_comparisons,
        aggregate_comparisons_by_label,
        aggregate_scores,
    )
    from biomedquant.scoring_inputs import check_out_path

    files = list(args.files)
    if args.manifests:
        from biomedquant.evaluation import table_inputs

        files += table_inputs(args.kind, args.manifests)
    if not files:
        raise ValueError("aggregate: no input files (give files or --manifests)")
    check_out_path(args.out, {f"input #{i}": path for i, path in enumerate(files, 1)})
    fn = {
        "scores": aggregate_scores,
        "comparisons": aggregate_comparisons,
        "comparisons_by_label": aggregate_comparisons_by_label,
    }[args.kind]
    n = fn(files, args.out)
    print(f"{n} rows -> {args.out}")


def _load_config(args: argparse.Namespace) -> dict[str, Any]:
    """A study config from --config (YAML file: strict parse and the workflow's schema, with
    its defaults) or --config-json (parts of a config the workflow already validated)."""
    from biomedquant.config_loader import load_config

    if args.config_json is not None:
        if not isinstance(args.config_json, dict):
            raise ValueError("--config-json must be a JSON object")
        return args.config_json
    return load_config(args.config)


def _cmd_plan(args: argparse.Namespace) -> None:
    from biomedquant.config_checks import check_group_sizes
    from biomedquant.figures.registry import draw_figure
    from biomedquant.io import write_csv
    from biomedquant.plan import FIT_COLUMNS, fit_lines, fit_rows

    config = _load_config(args)
    check_group_sizes(config)  # a group wider than a layer fails GPTQ only after calibration
    rows = fit_rows(config)
    if args.figure and not args.out:
        raise ValueError("--figure draws from the table: give --out too")
    if args.out:
        write_csv(args.out, FIT_COLUMNS, rows)
    if args.figure:
        draw_figure("fit", {"fit": args.out}, args.figure)
    print("\n".join(fit_lines(rows)))


def _cmd_perplexity(args: argparse.Namespace) -> None:
    from biomedquant.perplexity import run_perplexity

    _cpu_threads(args.cpu_threads)
    rec = run_perplexity(
        model_dir=args.model_dir,
        method=args.method,
        data_paths=args.data,
        out_path=args.out,
        max_length=args.max_length,
    )
    print(f"perplexity {rec['perplexity']:.3f} over {rec['n_tokens']} tokens")


def _cmd_perplexity_table(args: argparse.Namespace) -> None:
    from biomedquant.io import write_csv
    from biomedquant.perplexity import PERPLEXITY_COLUMNS, perplexity_rows

    rows = perplexity_rows(args.records)
    write_csv(args.out, PERPLEXITY_COLUMNS, rows)
    print(f"{len(rows)} rows -> {args.out}")


def _cmd_quality_table(args: argparse.Namespace) -> None:
    from biomedquant.io import write_csv
    from biomedquant.quantization.quality import QUALITY_COLUMNS, quality_rows

    rows = quality_rows(args.artifacts)
    write_csv(args.out, QUALITY_COLUMNS, rows)
    for r in rows:
        if r["verdict"] == "warn":
            print(
                f"WARNING {r['model']}/{r['method']}: worse than round-to-nearest on"
                f" {r['n_worse_than_rtn']} of {r['n_layers']} layers (held-out text)"
            )
    print(f"{len(rows)} rows -> {args.out}")


def _cmd_cache(args: argparse.Namespace) -> None:
    from biomedquant.generation_cache import cache_summary, clear_cache

    if args.action == "info" and args.model_key is not None:
        raise ValueError("--model-key only applies to 'cache clear'")
    if args.action == "clear":
        n = clear_cache(args.dir, args.model_key)
        print(f"removed {n} file(s) from {args.dir}")
        return
    rows = cache_summary(args.dir)
    for r in rows:
        print(f"{r['model_key']}  {r['entries']:>8} generations  {r['bytes'] / 1e6:>9.1f} MB")
    print(f"{len(rows)} model(s), {sum(r['entries'] for r in rows)} generations in {args.dir}")


def _cmd_doctor(args: argparse.Namespace) -> int:
    from biomedquant.config_loader import load_yaml
    from biomedquant.doctor import run_doctor

    # The raw file: the doctor validates it against the schema first and reports what fails.
    config = args.config_json if args.config_json is not None else load_yaml(args.config)
    source = "--config-json" if args.config_json is not None else args.config
    findings, code = run_doctor(
        config, args.workdir, source=source, strict_revisions=args.strict_revisions
    )
    for f in findings:
        print(f.line())
    return code


def _manifest_runs(manifests: Sequence[str]) -> list[str]:
    """The run records the evaluation manifests list ([] for none)."""
    if not manifests:
        return []
    from biomedquant.evaluation import manifest_files

    return manifest_files(list(manifests), "run_record")


def _cmd_memory_table(args: argparse.Namespace) -> None:
    from biomedquant.io import write_csv
    from biomedquant.memory_table import MEMORY_COLUMNS, memory_rows

    rows = memory_rows(_load_config(args), [*args.runs, *_manifest_runs(args.manifests)])
    write_csv(args.out, MEMORY_COLUMNS, rows)
    print(f"{len(rows)} rows -> {args.out}")


def _cmd_cpu_deployment(args: argparse.Namespace) -> None:
    from biomedquant.cpu_deployment import cpu_deployment_rows, write_cpu_deployment
    from biomedquant.figures.registry import draw_figure

    runs = [*args.runs, *_manifest_runs(args.manifests)]
    rows = cpu_deployment_rows(runs, args.comparisons or None, args.perplexity or None)
    write_cpu_deployment(rows, args.out)
    if args.figure:
        draw_figure("cpu_deployment", {"cpu_deployment": args.out}, args.figure)
    print(f"{len(rows)} rows -> {args.out}")


def _cmd_plot(args: argparse.Namespace) -> None:
    from biomedquant.figures.registry import TABLES, draw_figure
    from biomedquant.figures.style import order_from_json

    tables = {name: getattr(args, name) for name in TABLES}
    draw_figure(args.figure, tables, args.out, order=order_from_json(args.order))


def _cmd_recommend(args: argparse.Namespace) -> None:
    from biomedquant.recommendation import write_recommendation

    task_margins = {}
    for item in args.task_margin:
        task, _, value = item.partition("=")
        try:
            task_margins[task] = float(value)
        except ValueError:
            raise ValueError(
                f"--task-margin wants TASK=POINTS (e.g. ner=2), got {item!r}"
            ) from None
    comparisons = list(args.comparisons)
    if args.manifests:
        from biomedquant.evaluation import manifest_files

        comparisons += manifest_files(args.manifests, "comparisons")
    if not comparisons:
        raise ValueError("recommend: no comparison files (give files or --manifests)")
    rec = write_recommendation(
        comparisons,
        args.memory,
        args.out,
        args.evidence_out,
        margin_points=args.margin,
        task_margin_points=task_margins,
        alpha=args.alpha,
    )
    for r in rec.itertuples():
        print(f"{r.model}: {r.recommended} ({r.memory_gb:.3g} GB, {r.memory_source}): {r.verdict}")


def _cmd_report_table(args: argparse.Namespace) -> None:
    from biomedquant.report import write_table_page

    write_table_page(args.kind, args.table, args.out, evidence_path=args.evidence or None)


def _cmd_report_config(args: argparse.Namespace) -> None:
    from biomedquant.report import write_config_page

    write_config_page(args.config_json, args.out)


def _config_args(s: argparse.ArgumentParser) -> None:
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", help="a study config (YAML)")
    group.add_argument("--config-json", type=_json_arg, help="models, methods, inference (JSON)")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(prog="biomedquant", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("datasets", help="print the dataset registry")
    s.set_defaults(func=_cmd_datasets)

    s = sub.add_parser("download", help="fetch one split's source file and check its hash")
    s.add_argument("--dataset", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--base-url", required=True, help="upstream base URL, a folder, or 'demo'")
    s.add_argument("--out", required=True)
    s.add_argument(
        "--lock",
        default="resources/raw/checksums.lock",
        help="hashes of files without a pinned one, recorded on first download ('' = off)",
    )
    s.add_argument("--timeout", type=_positive, default=60.0, help="seconds per read")
    s.add_argument("--deadline", type=_positive, default=3600.0, help="seconds per file")
    s.set_defaults(func=_cmd_download)

    s = sub.add_parser("prepare", help="parse, validate and subsample a split into JSON Lines")
    s.add_argument("--dataset", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--raw", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--limit", type=int, default=0, help="0: every item")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_prepare)

    s = sub.add_parser("fetch-model", help="materialize a model as a 16-bit safetensors folder")
    s.add_argument("--model", required=True)
    s.add_argument("--spec", required=True, type=_json_arg, help="the model's config entry")
    s.add_argument("--out", required=True)
    s.add_argument(
        "--strict-revisions",
        action="store_true",
        help="refuse a Hugging Face revision that is not a full commit hash (e.g. main)",
    )
    s.set_defaults(func=_cmd_fetch)

    s = sub.add_parser("quantize", help="quantize a fetched model with one method")
    s.add_argument("--source", required=True)
    s.add_argument("--method", required=True, type=_json_arg, help="the method's config entry")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--pools", default="", help="in-domain calibration: 'dataset=train.jsonl ...'")
    s.add_argument(
        "--test-files", default="", help="in-domain calibration: 'dataset=test.raw ...' to exclude"
    )
    s.add_argument("--cpu-threads", default="job", help="'job', 'all' or a number")
    s.add_argument("heldout", nargs="*", help="prepared test JSON Lines: the quality check's text")
    s.set_defaults(func=_cmd_quantize)

    from biomedquant.decoding import Decoding
    from biomedquant.engines import BACKENDS

    dec = Decoding()
    s = sub.add_parser("infer", help="generate the raw outputs for one dataset")
    s.add_argument("--model-dir", required=True)
    s.add_argument("--method", type=_json_arg, help="the method entry as JSON")
    s.add_argument(
        "--settings",
        type=_json_arg,
        help=f"a JSON object of any of {', '.join(INFER_SETTINGS)} (the workflow's way)",
    )
    s.add_argument("--dataset", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--prompt", required=True)
    s.add_argument("--pool", default="", help="few-shot pool (JSON Lines); empty: none")
    s.add_argument("--out", required=True)
    s.add_argument("--run-record", required=True)
    # Decoding flags default to None: biomedquant.decoding.Decoding holds the defaults.
    s.add_argument("--sc-samples", type=int, help=f"self-consistency chains ({dec.sc_samples})")
    s.add_argument("--sc-temperature", type=float, help=f"their temperature ({dec.sc_temperature})")
    s.add_argument("--batch-size", type=int, help=f"most rows per batch ({dec.batch_size})")
    s.add_argument("--batch-tokens", type=int, help=f"token budget per batch ({dec.batch_tokens})")
    s.add_argument("--backend", default="transformers", choices=BACKENDS)
    s.add_argument("--cache-dir", default="", help="generation cache folder ('' = off)")
    s.add_argument("--max-new-tokens", default="", help="empty: the task's default")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--system-prompt", default="", help="empty: the package default")
    s.add_argument("--cpu-threads", default="job", help="'job', 'all' or a number")
    s.set_defaults(func=_cmd_infer)

    s = sub.add_parser(
        "parse",
        help="read the answers of stored raw outputs (a generations file) into predictions",
    )
    s.add_argument("--dataset", required=True)
    s.add_argument("--gold", required=True, help="the prepared split the outputs answer")
    s.add_argument("--generations", required=True)
    s.add_argument("--prompt", default="zero-shot", help="prompting method (sc-cot votes)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_parse)

    s = sub.add_parser(
        "evaluate",
        help="parse, score and compare every dataset and prompting method of a model x method",
    )
    s.add_argument("--settings", required=True, type=_json_arg, help="JSON (the workflow's)")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser(
        "score",
        help="benchmark metrics with bootstrap intervals",
        description="Score a prediction file: JSON Lines with 'id' and either 'prediction' "
        "(parsed) or 'output' (raw text, parsed here). Works for predictions made elsewhere.",
    )
    for name in ("predictions", "gold", "dataset", "out"):
        s.add_argument(f"--{name}", required=True)
    for name in ("model", "method", "prompt"):
        s.add_argument(f"--{name}", default="", help="label recorded in the score file")
    s.add_argument("--resamples", type=int, default=1000)
    s.add_argument("--level", type=float, default=0.95)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_score)

    s = sub.add_parser("compare", help="paired comparison of a method with its baseline")
    for name in ("baseline-predictions", "predictions", "gold", "dataset", "out"):
        s.add_argument(f"--{name}", required=True)
    for name in ("model", "method", "baseline", "prompt"):
        s.add_argument(f"--{name}", required=True)
    s.add_argument("--resamples", type=int, default=1000)
    s.add_argument("--level", type=float, default=0.95)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--noise-floor",
        action="store_true",
        help="the predictions are the baseline rerun at another batch shape",
    )
    s.set_defaults(func=_cmd_compare)

    s = sub.add_parser("aggregate", help="gather score or comparison files into a CSV table")
    s.add_argument("--out", required=True)
    s.add_argument(
        "--kind", choices=("scores", "comparisons", "comparisons_by_label"), default="scores"
    )
    s.add_argument(
        "--manifests",
        nargs="+",
        default=[],
        help="evaluation manifests: gather the files they list for this kind of table",
    )
    s.add_argument("files", nargs="*", help="score or comparison files")
    s.set_defaults(func=_cmd_aggregate)

    s = sub.add_parser("plan", help="estimate GPU memory per model and method, before a run")
    _config_args(s)
    s.add_argument("--out", help="write the table here (CSV)")
    s.add_argument("--figure", nargs="*", default=[], help="write the figure here (PNG/PDF)")
    s.set_defaults(func=_cmd_plan)

    s = sub.add_parser("perplexity", help="held-out perplexity of a model under a method")
    s.add_argument("--model-dir", required=True)
    s.add_argument("--method", required=True, type=_json_arg)
    s.add_argument("--out", required=True)
    s.add_argument("--max-length", type=int, default=512)
    s.add_argument("--cpu-threads", default="job", help="'job', 'all' or a number")
    s.add_argument("data", nargs="+", help="prepared test splits (JSON Lines)")
    s.set_defaults(func=_cmd_perplexity)

    s = sub.add_parser("perplexity-table", help="gather perplexity records into a table")
    s.add_argument("--out", required=True)
    s.add_argument("records", nargs="+")
    s.set_defaults(func=_cmd_perplexity_table)

    s = sub.add_parser("quality-table", help="gather quantization quality checks into a table")
    s.add_argument("--out", required=True)
    s.add_argument("artifacts", nargs="*", help="quantized artifact folders (model/method)")
    s.set_defaults(func=_cmd_quality_table)

    s = sub.add_parser("doctor", help="check this machine against a study config, before it runs")
    _config_args(s)
    s.add_argument("--workdir", default=".", help="where the workflow will write")
    s.add_argument(
        "--strict-revisions",
        action="store_true",
        help="fail on models not pinned to a commit hash (also on with strict_revisions: true)",
    )
    s.set_defaults(func=_cmd_doctor)

    s = sub.add_parser("cache", help="show or clear the generation cache")
    s.add_argument("action", choices=["info", "clear"])
    s.add_argument("--dir", default="resources/generation_cache", help="the cache folder")
    s.add_argument(
        "--model-key", help="clear only this model's generations (a key listed by 'cache info')"
    )
    s.set_defaults(func=_cmd_cache)

    s = sub.add_parser("memory-table", help="estimates beside the memory the runs measured")
    _config_args(s)
    s.add_argument("--out", required=True)
    s.add_argument(
        "--manifests",
        nargs="+",
        default=[],
        help="evaluation manifests: read the run records they list",
    )
    s.add_argument("runs", nargs="*", help="run records (.run.json)")
    s.set_defaults(func=_cmd_memory_table)

    s = sub.add_parser("cpu-deployment", help="speed and memory of CPU runs beside accuracy")
    s.add_argument("--out", required=True)
    s.add_argument("--comparisons", default="", help="comparisons table (optional)")
    s.add_argument("--perplexity", default="", help="perplexity table (optional)")
    s.add_argument("--figure", nargs="*", default=[], help="figure files (.png, .pdf)")
    s.add_argument(
        "--manifests",
        nargs="+",
        default=[],
        help="evaluation manifests: read the run records they list",
    )
    s.add_argument("runs", nargs="*", help="run records (.run.json)")
    s.set_defaults(func=_cmd_cpu_deployment)

    from biomedquant.figures.registry import FIGURES, TABLES

    s = sub.add_parser("plot", help="draw one figure of the study from the tidy tables")
    s.add_argument(
        "figure",
        choices=tuple(FIGURES),
        help="which figure (biomedquant.figures.registry lists the tables each reads)",
    )
    for name, path in TABLES.items():
        s.add_argument(f"--{name.replace('_', '-')}", default="", help=f"the table ({path})")
    s.add_argument("--order", default="", help="JSON: models, methods, prompts, baseline")
    s.add_argument("--out", required=True, nargs="+", help="PNG, PDF and/or SVG paths")
    s.set_defaults(func=_cmd_plot)

    s = sub.add_parser(
        "recommend",
        help="per model, the least-memory method shown non-inferior to the baseline everywhere",
    )
    s.add_argument("--memory", required=True)
    s.add_argument("--margin", type=float, default=1.0, help="points (0.01 on a 0-1 scale)")
    s.add_argument(
        "--task-margin", action="append", default=[], help="TASK=POINTS, overrides --margin"
    )
    s.add_argument("--alpha", type=float, default=0.05, help="one-sided, family-wise (Holm)")
    s.add_argument("--out", required=True)
    s.add_argument("--evidence-out", required=True)
    s.add_argument(
        "--manifests",
        nargs="+",
        default=[],
        help="evaluation manifests: read the comparisons they list",
    )
    s.add_argument("comparisons", nargs="*", help="comparison files (JSON) of every method")
    s.set_defaults(func=_cmd_recommend)

    from biomedquant.report import TABLE_PAGES

    s = sub.add_parser("report-table", help="an HTML page of a table for the report")
    s.add_argument("--kind", required=True, choices=TABLE_PAGES)
    s.add_argument("--table", required=True)
    s.add_argument("--evidence", default="", help="recommendation only: its evidence table")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_report_table)

    s = sub.add_parser("report-config", help="an HTML page of the run's configuration")
    s.add_argument("--config-json", required=True, type=_json_arg)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_report_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; failures are reported by :func:`run_reporting_errors`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_reporting_errors(args.func, args, args.command, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
