"""Registries are declared once: the generic helper, the config schema's enums against the
registries they copy, and every method kind's record wired to working code."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

from biomedquant.cli.errors import one_line
from biomedquant.common.registry import Registry, UnknownNameError
from biomedquant.datasets.readers import READERS
from biomedquant.datasets.registry import DATASETS, get_dataset
from biomedquant.inference.prompting import PROMPT_METHODS, get_prompt_method
from biomedquant.methods import gguf_layout
from biomedquant.methods.engines import support
from biomedquant.methods.kinds import METHOD_KINDS, bits, method_kind
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.estimator import weight_bytes
from biomedquant.quantization.calibration.sources import SOURCES
from biomedquant.study.loading import SCHEMA, load_config
from biomedquant.tasks import TASKS, get_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def _method_props(schema: dict) -> dict:
    return schema["properties"]["methods"]["additionalProperties"]["properties"]


def test_lookup_names_the_closest_names_and_is_both_key_and_value_error():
    reg = Registry("colour", [("red", 1), ("green", 2), ("blue", 3)])
    assert reg["green"] == 2 and reg.names() == ("red", "green", "blue")
    assert list(reg) == ["red", "green", "blue"] and len(reg) == 3 and "red" in reg
    with pytest.raises(KeyError) as err:
        reg["gren"]
    assert isinstance(err.value, ValueError)
    assert (
        str(err.value) == "unknown colour 'gren' (did you mean 'green'?); known: red, green, blue"
    )
    assert one_line(err.value) == str(err.value)  # the CLI prints it unquoted, on one line
    with pytest.raises(UnknownNameError, match=r"^unknown colour 'purple'; known: red, green"):
        reg["purple"]
    assert 5 not in reg and reg.get("gren") is None  # Mapping.get: no error, no hint


def test_a_name_registered_twice_is_refused():
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        Registry("colour", [("red", 1), ("red", 2)])


@pytest.mark.parametrize(
    ("lookup", "name", "hint"),
    [
        (get_dataset, "ncbi-disease", "'ncbi_disease'"),
        (get_task, "ners", "'ner'"),
        (get_prompt_method, "zeroshot", "'zero-shot'"),
        (lambda n: method_kind({"kind": n}), "bnb-nf8", "'bnb-nf4'"),
        (lambda n: READERS[n], "conl", "'conll'"),
    ],
)
def test_every_registry_suggests_a_misspelled_name(lookup, name, hint):
    with pytest.raises(UnknownNameError, match=f"did you mean {hint}"):
        lookup(name)


def test_schema_method_kinds_are_the_registered_kinds(schema):
    kind = _method_props(schema)["kind"]
    assert kind["enum"] == list(METHOD_KINDS.names())
    for name in METHOD_KINDS:  # the description explains every kind
        assert name in " ".join(kind["description"].split())


def test_schema_refuses_grid_parameters_exactly_for_kinds_without_an_artifact(schema):
    rules = schema["properties"]["methods"]["additionalProperties"]["allOf"]
    no_grid = [
        r["if"]["properties"]["kind"]["enum"]
        for r in rules
        if "enum" in r["if"].get("properties", {}).get("kind", {})
    ]
    assert no_grid == [[k for k, rec in METHOD_KINDS.items() if not rec.artifact]]


def test_schema_dataset_prompt_gguf_and_calibration_enums_are_the_registries(schema):
    props = schema["properties"]
    assert props["datasets"]["items"]["enum"] == list(DATASETS.names())
    assert props["prompts"]["items"]["enum"] == list(PROMPT_METHODS.names())
    assert _method_props(schema)["type"]["enum"] == list(gguf_layout.FILE_TYPES)
    assert _method_props(schema)["calibration"]["properties"]["source"]["enum"] == list(SOURCES)


def test_every_dataset_names_a_registered_task_and_reader():
    for spec in DATASETS.values():
        assert spec.task in TASKS
        for source in spec.files.values():
            assert source.reader in READERS


def test_every_producer_resolves_to_one_signature():
    """A kind with an artifact names a function quantize_model can call as it calls all."""
    for kind in METHOD_KINDS.values():
        if not kind.artifact:
            assert kind.producer is None
            continue
        module, _, function = kind.producer.partition(":")
        produce = getattr(importlib.import_module(module), function)
        params = inspect.signature(produce).parameters
        assert list(params)[:3] == ["source_dir", "out_dir", "method"], kind.name
        assert {"seed", "pools", "test_raws", "heldout", "gpus"} <= set(params), kind.name


def test_load_time_kinds_are_the_ones_without_artifact_apart_from_the_baseline():
    load_time = {k for k, rec in METHOD_KINDS.items() if rec.load_time}
    assert load_time == {k for k, rec in METHOD_KINDS.items() if not rec.artifact} - {"none"}
    # vLLM quantizes at load the load-time kinds it runs natively (fp8); bitsandbytes it does
    # not run as specified (biomedquant.methods.engines), so it gets no vLLM quantization.
    vllm_native = {k for k in load_time if support({"kind": k}, "vllm").runs == "native"}
    assert vllm_native == {"fp8"}
    assert {k for k in load_time if METHOD_KINDS[k].vllm_quantization} == vllm_native


def test_every_kind_has_bits_and_a_memory_model_on_the_methods_config():
    """config/methods.yaml runs one method of every kind: each gets bits and weight bytes,
    and only the baseline is 16-bit and the size of the fetched model."""
    config = load_config(ROOT / "config" / "methods.yaml")
    kinds = {m["kind"] for m in config["methods"].values()}
    assert kinds >= set(METHOD_KINDS) - {"awq", "fp8"}  # GPU-only kinds: not on a CPU demo
    shape = shape_for_model(next(iter(config["models"].values())))
    sixteen_bit = weight_bytes(shape, {"kind": "none"})
    for name, method in config["methods"].items():
        n_bits, n_bytes = bits(method), weight_bytes(shape, method)
        assert (n_bits == 16) == (method["kind"] == "none" or method.get("type") == "F16"), name
        assert (n_bytes < sixteen_bit) == (n_bits < 16), name
    for extra in ({"kind": "awq", "bits": 4, "group_size": 128}, {"kind": "fp8"}):
        assert bits(extra) < 16 and weight_bytes(shape, extra) < sixteen_bit


def test_schema_backends_and_kinds_engines_are_registered_engines(schema):
    """The config's ``inference.backend`` choices are the engines a config may choose, and a
    kind that names its own engine names a registered one."""
    from biomedquant.inference.engines import BACKENDS, ENGINES

    backend = schema["properties"]["inference"]["properties"]["backend"]
    assert list(backend["enum"]) == list(BACKENDS)
    assert set(BACKENDS) <= set(ENGINES)
    for kind in METHOD_KINDS.values():
        assert kind.engine is None or kind.engine in ENGINES, kind.name
    assert METHOD_KINDS["gguf"].engine == "llama_cpp" and METHOD_KINDS["fp8"].needs_fp8_gpu


def test_the_schemas_defaults_are_the_ones_the_code_declares(schema):
    """A default lives in the code once; the schema repeats it so that a config is complete
    before anything imports, and this keeps the two equal."""
    from biomedquant.evaluation.defaults import BOOTSTRAP_RESAMPLES, CI_LEVEL, COMPARISON_RESAMPLES
    from biomedquant.methods.kinds import DEFAULT_GROUP_SIZE

    scoring = schema["properties"]["scoring"]["properties"]
    assert scoring["bootstrap_resamples"]["default"] == BOOTSTRAP_RESAMPLES
    assert scoring["ci_level"]["default"] == CI_LEVEL
    assert scoring["comparison_resamples"]["default"] == COMPARISON_RESAMPLES

    def group_defaults(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "group_size" and isinstance(value, dict) and "default" in value:
                    yield value["default"]
                yield from group_defaults(value)
        elif isinstance(node, list):
            for value in node:
                yield from group_defaults(value)

    found = list(group_defaults(schema))
    assert found and set(found) == {DEFAULT_GROUP_SIZE}
