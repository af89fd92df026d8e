"""Decoding settings: one set of defaults shared by the schema, the CLI, the job, the resource
estimate and the engines, and the per-job values derived from them."""

from __future__ import annotations

import pytest
import yaml

from biomedquant.inference.decoding import Decoding, Sampling
from biomedquant.planning.job_resources import Workload
from biomedquant.study.loading import load_yaml, validate_config

from conftest import REPO

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def _schema_default(section: str, key: str):
    return SCHEMA["properties"][section]["properties"][key]["default"]


def test_the_schema_defaults_are_the_dataclass_defaults():
    d = Decoding()
    assert _schema_default("inference", "batch_size") == d.batch_size
    assert _schema_default("inference", "batch_tokens") == d.batch_tokens
    assert _schema_default("inference", "max_new_tokens") == dict(d.max_new_tokens) == {}
    assert _schema_default("inference", "cot_max_new_tokens") == dict(d.cot_max_new_tokens)
    assert _schema_default("prompting", "sc_samples") == d.sc_samples
    assert _schema_default("prompting", "sc_temperature") == d.sc_temperature


def test_a_config_without_decoding_keys_gets_what_a_hand_run_gets():
    """The workflow fills the schema's defaults; a hand run of `biomedquant infer` without
    flags starts from the dataclass: both batch with the same rows and token budget."""
    config = load_yaml(REPO / "config" / "config.yaml")
    config.pop("inference")
    config.pop("prompting", None)
    from_workflow = Decoding.from_config(validate_config(config))
    by_hand = Decoding.from_settings({k: None for k in ("batch_size", "batch_tokens")})
    assert from_workflow == by_hand == Decoding()
    # The resource estimate sizes the same batch.
    work = Workload(items=1, new_tokens=1)
    assert (work.batch_size, work.batch_tokens) == (by_hand.batch_size, by_hand.batch_tokens)


def test_per_task_and_per_prompt_values():
    d = Decoding.from_config(
        {
            "inference": {"max_new_tokens": {"qa": 20}, "cot_max_new_tokens": {"ner": 600}},
            "prompting": {"sc_samples": 7, "sc_temperature": 0.5},
        }
    )
    assert d.max_new_tokens_for("qa", "zero-shot") == 20  # the config's cap
    assert d.max_new_tokens_for("qa", "cot") == 512  # the task's CoT default
    assert d.max_new_tokens_for("ner", "five-shot") == 512  # the task's direct default
    assert d.max_new_tokens_for("ner", "sc-cot") == 600
    assert (d.cap("qa", "zero-shot"), d.cap("qa", "cot")) == (20, None)
    assert [d.samples(p) for p in ("zero-shot", "cot", "sc-cot")] == [1, 1, 7]
    assert [d.temperature(p) for p in ("five-shot", "sc-cot")] == [0.0, 0.5]
    assert d.capped(9).max_new_tokens_for("mlc", "cot") == 9


def test_the_sampling_identity_keeps_the_generation_cache_keys():
    """The identity is part of every cache key: its keys, their order and the seed rule are
    those the stored generations were made with."""
    d = Decoding(sc_samples=3)
    greedy = d.sampling("qa", "zero-shot", seed=42, stop=["\nQuestion:"])
    assert greedy == Sampling(max_new_tokens=128, stop=("\nQuestion:",))
    assert greedy.identity() == {
        "samples": 1,
        "temperature": 0.0,
        "max_new_tokens": 128,
        "seed": None,
        "stop": ["\nQuestion:"],
    }
    sampled = d.sampling("qa", "sc-cot", seed=42).identity()
    assert list(sampled) == ["samples", "temperature", "max_new_tokens", "seed"]
    assert (sampled["samples"], sampled["temperature"], sampled["seed"]) == (3, 0.7, 42)


def test_job_settings_as_the_workflow_hands_them_over():
    """The workflow resolves sc settings per job (1 chain and temperature 0 for methods that
    sample none) and gives the cap of the job's task ('' or None: the task's default)."""
    job = Decoding.from_settings(
        {"batch_size": 16, "batch_tokens": 8192, "max_new_tokens": 40, "sc_samples": 1,
         "sc_temperature": 0}
    )  # fmt: skip
    assert job.max_new_tokens_for("mlc", "zero-shot") == 40 and job.samples("sc-cot") == 1
    assert Decoding.from_settings({"max_new_tokens": ""}).max_new_tokens_for("re", "cot") == 384


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"beam_width": 4}, r"unknown decoding setting\(s\) \['beam_width'\]"),
        ({"sc_temperature": -1}, "sc_temperature must be 0 or more"),
    ],
)
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        Decoding.from_settings(settings)


def test_a_cap_for_an_unknown_task_is_an_error():
    with pytest.raises(KeyError, match="unknown task 'nre'"):
        Decoding(max_new_tokens={"nre": 10})
