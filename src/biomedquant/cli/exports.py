"""Commands of the exports stage (workflow/rules/exports.smk): a model's exports, and by hand
one model card or one lm-eval folder.

Each command parses its arguments and calls one package function.
"""

from __future__ import annotations

import argparse
from typing import Any

from biomedquant.cli.args import json_arg


def _cmd_model_card(args: argparse.Namespace) -> None:
    from biomedquant.exports.model_card import write_model_card

    write_model_card(
        args.artifact,
        args.out,
        model=args.model,
        method_name=args.method_name,
        model_spec=args.model_spec,
        method=args.method,
        scores_path=args.scores or None,
        evidence_path=args.evidence or None,
    )
    print(f"model card -> {args.out}")


def _cmd_lm_eval_export(args: argparse.Namespace) -> None:
    from biomedquant.exports.lm_eval import export_lm_eval

    files = export_lm_eval(
        args.manifest, args.model, args.model_spec, args.method_name, args.method, args.out
    )
    print(f"lm-eval results and {len(files) - 1} sample file(s) -> {args.out}")


def _cmd_export(args: argparse.Namespace) -> None:
    from biomedquant.exports.model import MethodExport, export_model

    if not isinstance(args.methods, list):
        raise ValueError("--methods: a JSON list of {name, spec, manifest, artifact}")
    methods = [MethodExport.from_json(entry) for entry in args.methods]
    files = export_model(
        args.model,
        args.model_spec,
        methods,
        args.out,
        scores_path=args.scores or None,
        evidence_path=args.evidence or None,
    )
    cards = sum(1 for f in files if f.name == "README.md")
    print(f"{args.model}: {len(methods)} lm-eval folder(s), {cards} model card(s) -> {args.out}")


def _model_method_args(s: argparse.ArgumentParser) -> None:
    """A model x method by its names and config entries (the exports' rules hand both over)."""
    s.add_argument("--model", required=True, help="the model's name in the config")
    s.add_argument("--model-spec", required=True, type=json_arg, help="its config entry (JSON)")
    s.add_argument("--method-name", required=True, help="the method's name in the config")
    s.add_argument("--method", required=True, type=json_arg, help="its config entry (JSON)")


def add_commands(sub: Any) -> None:
    """Register this stage's subcommands."""
    s = sub.add_parser(
        "model-card",
        help="a model card (hub metadata, quantization, the study's scores) for an artifact",
    )
    s.add_argument("--artifact", required=True, help="the quantized artifact folder")
    _model_method_args(s)
    s.add_argument("--scores", default="", help="scores.csv")
    s.add_argument("--evidence", default="", help="recommendation_evidence.csv")
    s.add_argument("--out", required=True, help="the card (README.md)")
    s.set_defaults(func=_cmd_model_card)

    s = sub.add_parser(
        "lm-eval-export",
        help="a model x method's results in lm-evaluation-harness's format (results, samples)",
    )
    s.add_argument("--manifest", required=True, help="its evaluate manifest (JSON)")
    _model_method_args(s)
    s.add_argument("--out", required=True, help="the folder to write")
    s.set_defaults(func=_cmd_lm_eval_export)

    s = sub.add_parser(
        "export",
        help="a model's exports: every method's lm-eval folder and its artifacts' model cards",
    )
    s.add_argument("--model", required=True, help="the model's name in the config")
    s.add_argument("--model-spec", required=True, type=json_arg, help="its config entry (JSON)")
    s.add_argument(
        "--methods",
        required=True,
        type=json_arg,
        help="JSON list: per method its name, config entry (spec), evaluate manifest and"
        " quantized artifact folder (artifact, or null: no card)",
    )
    s.add_argument("--scores", default="", help="scores.csv (the cards' tables)")
    s.add_argument("--evidence", default="", help="recommendation_evidence.csv (their verdicts)")
    s.add_argument("--out", required=True, help="the model's export folder")
    s.set_defaults(func=_cmd_export)
