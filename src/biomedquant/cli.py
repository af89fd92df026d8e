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
from pathlib import Path
from typing import Any


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
    from biomedquant.datasets.prepare import download_split

    download_split(args.dataset, args.split, args.base_url, args.out)


def _cmd_prepare(args: argparse.Namespace) -> None:
    from biomedquant.datasets.prepare import prepare_split

    limit = args.limit or None  # 0 means every item
    prov = prepare_split(args.dataset, args.split, args.raw, args.out, limit=limit, seed=args.seed)
    print(f"{args.dataset}/{args.split}: {prov['n_written']} of {prov['n_source']} items")


def _cmd_fetch(args: argparse.Namespace) -> None:
    from biomedquant.models import fetch_model

    prov = fetch_model(args.model, args.spec, args.out)
    print(f"{args.model}: {prov['size_bytes'] / 1e6:.1f} MB in {prov['wall_seconds']} s")


def _cmd_quantize(args: argparse.Namespace) -> None:
    from biomedquant.quantization import quantize_model

    _cpu_threads(args.cpu_threads)
    prov = quantize_model(args.source, args.out, args.method, seed=args.seed)
    print(f"quantized in {prov['quantize_seconds']} s, {prov['size_bytes'] / 1e6:.1f} MB")


def _cmd_infer(args: argparse.Namespace) -> None:
    from biomedquant.inference import run_inference
    from biomedquant.prompting import DEFAULT_SYSTEM_PROMPT

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
        sc_samples=args.sc_samples,
        sc_temperature=args.sc_temperature,
        batch_size=args.batch_size,
        max_new_tokens=int(args.max_new_tokens) if args.max_new_tokens else None,
        seed=args.seed,
        system_prompt=args.system_prompt or DEFAULT_SYSTEM_PROMPT,
    )


def _cmd_score(args: argparse.Namespace) -> None:
    from biomedquant.scoring import score_predictions

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
    )


def _cmd_aggregate(args: argparse.Namespace) -> None:
    from biomedquant.scoring import aggregate_comparisons, aggregate_scores

    fn = aggregate_scores if args.kind == "scores" else aggregate_comparisons
    n = fn(args.files, args.out)
    print(f"{n} rows -> {args.out}")


def _cmd_fit(args: argparse.Namespace) -> None:
    import yaml

    from biomedquant.memory import MODEL_SHAPES, estimate

    config = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    head = f"{'model':<16}{'method':<14}{'params':>8}{'weights':>10}{'total':>9}"
    print(f"{head}  fits {args.gpu_gb:g} GB")
    for name, model in config["models"].items():
        shape = MODEL_SHAPES.get(model.get("id", ""))
        if shape is None:
            print(f"{name:<16}(shape unknown: add its id to biomedquant.memory.MODEL_SHAPES)")
            continue
        for method_name, method in config["methods"].items():
            est = estimate(shape, method, tokens=args.tokens)
            fits = "yes" if est["total_gb"] <= args.gpu_gb else "no"
            print(
                f"{name:<16}{method_name:<14}{est['params_b']:>7.1f}B{est['weights_gb']:>9.1f}G"
                f"{est['total_gb']:>8.1f}G  {fits}"
            )


def _cmd_figures(args: argparse.Namespace) -> None:
    from biomedquant.figures import plot_scores_by_dataset

    plot_scores_by_dataset(args.table, args.out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="biomedquant", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("datasets", help="print the dataset registry")
    s.set_defaults(func=_cmd_datasets)

    s = sub.add_parser("download", help="fetch one split's source file and check its hash")
    s.add_argument("--dataset", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--base-url", required=True, help="upstream base URL, a folder, or 'demo'")
    s.add_argument("--out", required=True)
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
    s.set_defaults(func=_cmd_fetch)

    s = sub.add_parser("quantize", help="quantize a fetched model with one method")
    s.add_argument("--source", required=True)
    s.add_argument("--method", required=True, type=_json_arg, help="the method's config entry")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--cpu-threads", default="job", help="'job', 'all' or a number")
    s.set_defaults(func=_cmd_quantize)

    s = sub.add_parser("infer", help="generate and parse predictions for one dataset")
    s.add_argument("--model-dir", required=True)
    s.add_argument("--method", required=True, type=_json_arg)
    s.add_argument("--dataset", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--prompt", required=True)
    s.add_argument("--pool", default="", help="few-shot pool (JSON Lines); empty: none")
    s.add_argument("--out", required=True)
    s.add_argument("--run-record", required=True)
    s.add_argument("--sc-samples", type=int, default=5, help="self-consistency chains")
    s.add_argument("--sc-temperature", type=float, default=0.7)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--max-new-tokens", default="", help="empty: the task's default")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--system-prompt", default="", help="empty: the package default")
    s.add_argument("--cpu-threads", default="job", help="'job', 'all' or a number")
    s.set_defaults(func=_cmd_infer)

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
    s.set_defaults(func=_cmd_compare)

    s = sub.add_parser("aggregate", help="gather score or comparison files into a CSV table")
    s.add_argument("--out", required=True)
    s.add_argument("--kind", choices=("scores", "comparisons"), default="scores")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=_cmd_aggregate)

    s = sub.add_parser("fit", help="estimate GPU memory per model and method, before a run")
    s.add_argument("--config", default="config/paper.yaml")
    s.add_argument("--gpu-gb", type=float, default=40.0, help="GPU memory to fit into (GB)")
    s.add_argument("--tokens", type=int, default=8192, help="tokens in flight (KV cache)")
    s.set_defaults(func=_cmd_fit)

    s = sub.add_parser("figures", help="draw the figures from the score table")
    s.add_argument("--table", required=True)
    s.add_argument("--out", required=True, nargs="+")
    s.set_defaults(func=_cmd_figures)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.func(args)
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as err:
        print(f"biomedquant {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
