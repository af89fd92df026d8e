"""Argument types and helpers shared by the command-line stages."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err.msg}: {text[:80]}") from err


def cpu_threads(value: str) -> None:
    """Set torch's CPU threads for a job without a GPU ('job': keep Snakemake's setting)."""
    if value in ("", "job"):
        return
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads((os.cpu_count() or 1) if value == "all" else int(value))


def gpu_count(text: str) -> int:
    """``--gpus``: a whole number of GPUs, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of GPUs: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more GPUs, got {text}")
    return value


def add_gpus_arg(s: argparse.ArgumentParser) -> None:
    """``--gpus N``: the GPUs the job was given (the workflow passes its ``gpu`` resource).

    Like ``--cpu-threads`` it is a resource: it changes speed, not results, so it enters no
    settings hash, cache key or output (the run records say how many GPUs were used).
    """
    s.add_argument(
        "--gpus",
        type=gpu_count,
        default=1,
        metavar="N",
        help="GPUs this job was given (default 1; the workflow passes its gpu resource);"
        " 0: run on the CPU and leave every GPU alone",
    )


def hide_gpus(reason: str) -> None:
    """Make this process see no GPU: ``CUDA_VISIBLE_DEVICES`` set to an empty string.

    A job the scheduler gave no GPU (``gpu=0``) may still land on a machine with GPUs, which
    other jobs were given; CUDA opens a context (hundreds of MB) on every device it can see,
    and torch, accelerate and llama.cpp place work on any GPU they find. An empty
    ``CUDA_VISIBLE_DEVICES`` hides every device from all of them, but CUDA reads it once, when
    it initializes: so this runs before anything imports torch (the commands call it first).
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        log.warning(
            "CUDA was initialized before the GPUs were hidden (%s): they stay visible", reason
        )
        return
    log.info("running on the CPU with every GPU hidden: %s", reason)


def pairs(text: str) -> dict[str, str]:
    """'name=path name=path' (as the workflow passes them) -> {name: path}."""
    out = {}
    for item in text.split():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise argparse.ArgumentTypeError(f"expected name=path, got {item!r}")
        out[name] = path
    return out


def study_config(args: argparse.Namespace) -> dict[str, Any]:
    """A study config from --config (YAML file: strict parse and the workflow's schema, with
    its defaults) or --config-json (parts of a config the workflow already validated)."""
    from biomedquant.study.loading import load_config

    if args.config_json is not None:
        if not isinstance(args.config_json, dict):
            raise ValueError("--config-json must be a JSON object")
        return args.config_json
    return load_config(args.config)


def config_args(s: argparse.ArgumentParser) -> None:
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", help="a study config (YAML)")
    group.add_argument("--config-json", type=json_arg, help="models, methods, inference (JSON)")


def add_manifests_arg(s: argparse.ArgumentParser, what: str) -> None:
    """``--manifests``: the evaluate jobs' manifests, which list the files the command reads
    (the workflow's way: one per model x method instead of one argument per run)."""
    s.add_argument(
        "--manifests",
        nargs="+",
        default=[],
        help=f"evaluation manifests: read the {what} they list",
    )


def listed_files(manifests: Sequence[str], key: str) -> list[str]:
    """The files the evaluation manifests list under ``key`` ([] for no manifests)."""
    if not manifests:
        return []
    from biomedquant.evaluation.job import manifest_files

    return manifest_files(list(manifests), key)
