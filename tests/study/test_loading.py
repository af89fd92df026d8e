"""The schema step of reading a config: one pass that fills the schema's defaults exactly as
Snakemake's ``validate`` fills them (the workflow used to run both, one after the other) and
refuses a violation in one line."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.utils import validate

from biomedquant.study.loading import SCHEMA, ConfigError, apply_schema, load_yaml

from conftest import REPO

SHIPPED = sorted((REPO / "config").glob("*.yaml"))


def _snakemake_filled(config: dict) -> dict:
    filled = copy.deepcopy(config)
    validate(filled, str(SCHEMA))
    return filled


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_defaults_equal_snakemake_validates_for_every_shipped_config(path):
    config = load_yaml(path)
    ours = copy.deepcopy(config)
    apply_schema(ours, path.name)
    assert ours == _snakemake_filled(config)
    assert ours != config  # there were defaults to fill


BARE = {
    "datasets": ["pubmedqa"],
    "models": {"m": {"source": "hf", "id": "org/m", "revision": "main"}},
    "methods": {"none": {"kind": "none"}},
    "prompts": ["zero-shot"],
}


def test_a_bare_config_gets_every_nested_default_snakemake_gives():
    bare = copy.deepcopy(BARE)
    ours = copy.deepcopy(bare)
    apply_schema(ours)
    expected = _snakemake_filled(bare)
    assert ours == expected
    # nested sections too, not only the top level
    assert ours["scheduling"]["max_job_hours"] == 24
    assert ours["scheduling"]["max_attempts"] == 7


def test_filled_defaults_are_copies_not_the_schema_objects():
    first, second = copy.deepcopy(BARE), copy.deepcopy(BARE)
    apply_schema(first)
    apply_schema(second)
    first["scheduling"]["max_job_hours"] = 2
    assert second["scheduling"]["max_job_hours"] == 24


def test_a_set_value_is_kept_and_a_wrong_type_where_defaults_live_is_one_line():
    config = load_yaml(REPO / "config" / "config.yaml")
    config["scheduling"] = {"max_job_hours": 6}
    apply_schema(config)
    assert config["scheduling"]["max_job_hours"] == 6
    assert config["scheduling"]["max_attempts"] == 7

    broken = load_yaml(REPO / "config" / "config.yaml")
    broken["scheduling"] = 5  # not a mapping: no default can be set inside it
    with pytest.raises(ConfigError) as err:
        apply_schema(broken, "study.yaml")
    assert str(err.value).startswith("study.yaml: scheduling: ")
    assert len(str(err.value).splitlines()) == 1


def test_schema_file_is_the_workflow_schema():
    assert SCHEMA == REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))["$schema"].endswith("2020-12/schema")
