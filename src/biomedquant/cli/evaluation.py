"""Commands of the evaluation stage (workflow/rules/evaluation.smk): reading answers, scoring,
comparing, the tidy tables.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import (
    add_manifests_arg,
    json_arg,
)
from biomedquant.evaluation.defaults import BOOTSTRAP_RESAMPLES, CI_LEVEL


def _cmd_parse(args: argparse.Namespace) -> None:
    from biomedquant.evaluation.inputs import check_out_path
    from biomedquant.evaluation.job import parse_generations

    check_out_path(args.out, {"generations": args.generations, "gold": args.gold})
    summary = parse_generations(args.generations, args.gold, args.dataset, args.prompt, args.out)
    print(
        f"{summary['n_items']} items, {summary['n_unparsable']} unparsable"
        f" ({summary['parse_status']}) -> {args.out}"
    )


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from biomedquant.evaluation.job import evaluate_group

    for run, result in evaluate_group(args.settings).items():
        print(f"{run}: {result['n']} items, {result['parse']['n_unparsable']} unparsable")


def _cmd_score(args: argparse.Namespace) -> None:
    from biomedquant.evaluation.inputs import check_scoring_inputs
    from biomedquant.evaluation.scoring import score_predictions

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
    from biomedquant.evaluation.inputs import check_scoring_inputs
    from biomedquant.evaluation.scoring import compare_to_baseline

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
    from biomedquant.evaluation.inputs import check_out_path
    from biomedquant.evaluation.scoring import (
        aggregate_comparisons,
        aggregate_comparisons_by_label,
        aggregate_scores,
    )

    files = list(args.files)
    if args.manifests:
        from biomedquant.evaluation.job import table_inputs

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


# The files of `score` (and, with the baseline's, of `compare`), with their help.
SCORE_FILES = {
    "predictions": "the predictions (JSON Lines)",
    "gold": "the prepared split they answer",
    "dataset": "dataset name (biomedquant datasets)",
    "out": "the scores file to write (JSON)",
}


def _bootstrap_args(s: argparse.ArgumentParser, resamples: str) -> None:
    """The bootstrap's options of ``score`` and ``compare`` (the workflow's defaults)."""
    s.add_argument("--resamples", type=int, default=BOOTSTRAP_RESAMPLES, help=resamples)
    s.add_argument("--level", type=float, default=CI_LEVEL, help="interval level")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    s = sub.add_parser(
        "parse",
        help="read the answers of stored raw outputs (a generations file) into predictions",
    )
    s.add_argument("--dataset", required=True, help="dataset name (biomedquant datasets)")
    s.add_argument("--gold", required=True, help="the prepared split the outputs answer")
    s.add_argument("--generations", required=True, help="raw outputs (JSON Lines)")
    s.add_argument("--prompt", default="zero-shot", help="prompting method (sc-cot votes)")
    s.add_argument("--out", required=True, help="the predictions (JSON Lines)")
    s.set_defaults(func=_cmd_parse)

    s = sub.add_parser(
        "evaluate",
        help="parse, score and compare every dataset and prompting method of a model x method",
    )
    s.add_argument("--settings", required=True, type=json_arg, help="JSON (the workflow's)")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser(
        "score",
        help="benchmark metrics with bootstrap intervals",
        description="Score a prediction file: JSON Lines with 'id' and either 'prediction' "
        "(parsed) or 'output' (raw text, parsed here). Works for predictions made elsewhere.",
    )
    for name, text in SCORE_FILES.items():
        s.add_argument(f"--{name}", required=True, help=text)
    for name in ("model", "method", "prompt"):
        s.add_argument(f"--{name}", default="", help="label recorded in the score file")
    _bootstrap_args(s, "bootstrap resamples")
    s.set_defaults(func=_cmd_score)

    s = sub.add_parser("compare", help="paired comparison of a method with its baseline")
    s.add_argument(
        "--baseline-predictions", required=True, help="the baseline's predictions (JSON Lines)"
    )
    for name, text in SCORE_FILES.items():
        s.add_argument(f"--{name}", required=True, help=text.replace("scores", "comparison"))
    for name in ("model", "method", "baseline", "prompt"):
        s.add_argument(f"--{name}", required=True, help="label recorded in the comparison")
    _bootstrap_args(s, "paired bootstrap resamples")
    s.add_argument(
        "--noise-floor",
        action="store_true",
        help="the predictions are the baseline rerun at another batch shape",
    )
    s.set_defaults(func=_cmd_compare)

    s = sub.add_parser("aggregate", help="gather score or comparison files into a CSV table")
    s.add_argument("--out", required=True, help="the table (CSV)")
    s.add_argument(
        "--kind",
        choices=("scores", "comparisons", "comparisons_by_label"),
        default="scores",
        help="which table",
    )
    add_manifests_arg(s, "files of this kind of table")
    s.add_argument("files", nargs="*", help="score or comparison files")
    s.set_defaults(func=_cmd_aggregate)
