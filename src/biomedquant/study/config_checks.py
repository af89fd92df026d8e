"""Checks of a study config that the JSON schema cannot make on its own.

* Pinned revisions: ``revision: main`` names whatever the Hub holds on the day of the
  download, so two labs running "the same" config may evaluate different weights. With strict
  revisions (``strict_revisions: true`` in a config, ``--strict-revisions`` on the command
  line) every Hugging Face model must name a full 40-character commit hash.
* GPTQ group sizes against the model's shape: a group larger than a layer's input width is
  rejected by the quantizer only after calibration has run, so it is checked here first, from
  the model's ``config.json`` (the study's models ship their shapes in ``models/configs/``).
* Scheduler settings: a profile value such as ``slurm_partition: "$BIOMEDQUANT_SLURM_PARTITION"``
  is expanded from the environment when Snakemake reads the profile; an unset variable stays
  as the literal text and would reach sbatch as a partition named ``$BIOMEDQUANT_...`` on every
  job. It is refused when Snakemake starts, with the variable's name.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from biomedquant.models.shapes import ModelShape, shape_for_model

COMMIT = re.compile(r"[0-9a-f]{40}")


class StrictRevisionError(ValueError):
    """A model revision that is not a commit hash, under strict revisions."""


class GroupSizeError(ValueError):
    """A GPTQ group size larger than a quantized layer's input width."""


class SchedulerSettingError(ValueError):
    """A profile resource that names an environment variable which is not set."""


UNEXPANDED = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def unset_variables(
    default_resources: Iterable[str] | None,
    rule_resources: Mapping[str, Mapping[str, Any]] | None,
) -> list[str]:
    """One line per profile resource whose value still names an unset environment variable.

    ``default_resources`` are the profile's ``name=value`` strings (Snakemake's
    ``DefaultResources.args``); ``rule_resources`` its ``set-resources`` per rule (values with a
    ``raw`` text, as Snakemake's ``Resource``, or plain values).
    """
    found: list[tuple[str, str, str]] = []
    for item in default_resources or ():
        name, _, value = str(item).partition("=")
        found.append(("default-resources", name.strip(), value))
    for rule, resources in (rule_resources or {}).items():
        for name, value in resources.items():
            found.append((f"set-resources.{rule}", name, str(getattr(value, "raw", value))))
    lines = []
    for where, name, value in found:
        for var in UNEXPANDED.findall(value):
            if var not in os.environ:
                lines.append(
                    f"{where}.{name} is {value.strip()}, but the environment variable {var} is"
                    f" not set: export {var}=<value> (or {var}= for none) before starting"
                    " Snakemake (docs/guide/slurm.md), or write the value"
                    " into the profile"
                )
    return lines


def check_scheduler_settings(
    default_resources: Iterable[str] | None,
    rule_resources: Mapping[str, Mapping[str, Any]] | None,
) -> None:
    """Refuse a profile whose resources name unset environment variables (all at once)."""
    lines = unset_variables(default_resources, rule_resources)
    if lines:
        raise SchedulerSettingError("\n".join(lines))


def unpinned_models(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(model slug, revision) of each Hugging Face model not pinned to a commit hash."""
    return [
        (name, str(spec.get("revision")))
        for name, spec in config.get("models", {}).items()
        if spec.get("source") == "hf" and not COMMIT.fullmatch(str(spec.get("revision", "")))
    ]


def check_revision(name: str, spec: dict[str, Any]) -> None:
    """Refuse one model entry whose revision is not a commit hash (strict revisions)."""
    if spec.get("source") != "hf":
        return
    revision = str(spec.get("revision", ""))
    if not COMMIT.fullmatch(revision):
        raise StrictRevisionError(
            f"models.{name}.revision is {revision!r}: strict revisions need the full 40-character"
            f" commit hash of {spec.get('id')} (see docs/guide/gpus.md, 'Pinning model revisions')"
        )


def check_strict_revisions(config: dict[str, Any]) -> None:
    """Refuse a config with any unpinned Hugging Face model, naming each."""
    bad = unpinned_models(config)
    if bad:
        listed = ", ".join(f"{name} ({rev})" for name, rev in bad[:6])
        more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        raise StrictRevisionError(
            f"strict revisions: {len(bad)} model(s) not pinned to a commit hash: {listed}{more};"
            " set each revision to the commit hash to evaluate (see docs/guide/gpus.md,"
            " 'Pinning model revisions')"
        )


def smallest_input_width(shape: ModelShape) -> int:
    """The narrowest input of the layers GPTQ quantizes (q/k/v/gate/up read the hidden size,
    o_proj heads x head dim, down_proj the intermediate size)."""
    return min(shape.hidden, shape.heads * shape.dim_per_head, shape.intermediate)


def group_size_problem(model: str, shape: ModelShape, method: str, spec: dict[str, Any]) -> str:
    """'' when the method's group size fits the model, else a one-line reason."""
    group = spec.get("group_size")
    if spec.get("kind") != "gptq" or group in (None, -1):
        return ""
    width = smallest_input_width(shape)
    if group > width:
        return (
            f"methods.{method}.group_size {group} is larger than the narrowest quantized layer"
            f" of {model} ({width} input columns): use -1 (per channel) or at most {width}"
        )
    return ""


def check_group_sizes(config: dict[str, Any]) -> None:
    """Every GPTQ method against every model whose shape is known, before any job runs."""
    problems = []
    for model, mspec in config.get("models", {}).items():
        shape = shape_for_model(mspec)
        if shape is None:
            continue  # checked against the fetched model's config.json before quantizing
        for method, spec in config.get("methods", {}).items():
            if problem := group_size_problem(model, shape, method, spec):
                problems.append(problem)
    if problems:
        raise GroupSizeError(
            problems[0] + (f" (and {len(problems) - 1} more)" * (len(problems) > 1))
        )


def check_group_size_for_folder(model_dir: str | Path, method: dict[str, Any]) -> None:
    """The same check against a fetched model folder's ``config.json`` (before quantizing)."""
    config = Path(model_dir) / "config.json"
    if not config.is_file():
        return  # the quantizer reports a folder without a model itself
    try:
        shape = ModelShape.from_config(json.loads(config.read_text(encoding="utf-8")))
    except (KeyError, TypeError, ValueError):
        return  # an architecture without these fields: the quantizer checks it itself
    if problem := group_size_problem(Path(model_dir).name, shape, "(given)", method):
        raise GroupSizeError(problem.replace("methods.(given).", ""))
