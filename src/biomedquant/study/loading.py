"""Read a study config strictly: YAML without duplicate keys, then the workflow's schema.

PyYAML keeps the last of two equal keys without a word, so a config that lists a method
twice under one name, or repeats ``methods:``, silently loses entries. The loader here refuses
duplicate keys, reports YAML syntax errors as one line with the file and line, and validates
against ``workflow/schemas/config.schema.yaml`` (the schema the workflow itself uses, with its
defaults filled in), so the CLI, ``doctor`` and the workflow accept exactly the same configs.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config file that cannot be read, or a config that breaks the schema."""


@contextlib.contextmanager
def config_errors_as_messages(*kinds: type[Exception]) -> Iterator[None]:
    """In the Snakefile: a config problem (``ConfigError`` and the ``kinds`` given) ends the
    run with its message only and exit status 1. Snakemake would print the stack frames of
    the code that found it under the message; they say nothing to whoever wrote the config."""
    try:
        yield
    except (ConfigError, *kinds) as err:
        sys.exit(f"{type(err).__name__}: {err}")


class StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping."""


def _mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(
                f"{key_node.start_mark.name}:{line}: duplicate key {key!r} (first on line "
                f"{seen[key]}): YAML would keep only the last one"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file strictly; every failure is a :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    loader = _named_loader(str(path))(text)
    try:
        node = loader.get_single_node()
        if node is None:  # an empty file
            return None
        check_expansion(node, path)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: YAML error: {_one_line(str(err))}") from None
    finally:
        loader.dispose()


# Values a config may hold once its aliases are expanded: the paper's study, every model and
# method written out, is a few thousand; a YAML "billion laughs" of 664 bytes is 10^9.
MAX_EXPANDED_NODES = 200_000


def check_expansion(root: yaml.Node, path: str | Path) -> None:
    """Refuse a YAML document whose aliases expand to more than :data:`MAX_EXPANDED_NODES`
    values, or that refers to itself, before anything is built from it.

    PyYAML builds an alias as a shared reference, cheaply; but whatever walks the result
    (the schema check, Snakemake's config merge, an error message that shows the value)
    visits every expanded copy: a 664-byte alias bomb kept ``plan`` busy past a minute and
    exhausted memory under ``snakemake -n``. Counting the expanded size over the node graph,
    each shared node once, costs time proportional to the file.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(
                f"{path}:{node.start_mark.line + 1}: a YAML alias refers to a value that"
                " contains it (a recursive structure): a config cannot hold one"
            )
        active.add(key)
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in node.value)
        else:
            total = 1
        active.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise ConfigError(
                f"{path}:{node.start_mark.line + 1}: YAML aliases here expand to more than"
                f" {MAX_EXPANDED_NODES:,} values (an alias bomb?); write the config out"
                " without nesting aliases this deep"
            )
        sizes[key] = total
        return total

    try:
        size(root)
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to be a config") from None


def _named_loader(name: str) -> type[StrictLoader]:
    """A loader whose marks carry the file name (PyYAML names a string '<unicode string>')."""

    class Named(StrictLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.name = name

    return Named


def _where(path: list[Any] | Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def validate_config(config: Any, source: str = "config") -> dict[str, Any]:
    """Validate against the workflow's schema and return a copy with its defaults filled in.

    The first violation is reported as one line naming the key (``methods.x.group_size``).
    """
    filled = copy.deepcopy(config)
    apply_schema(filled, source)
    return filled


def apply_schema(config: Any, source: str = "config") -> None:
    """Fill the schema's defaults into ``config`` and raise a :class:`ConfigError` of one line
    for its first schema violation, naming the key and, for a misspelled key or value, the
    nearest valid one. The Snakefile calls this in place of Snakemake's ``validate``, whose
    error prints the whole config and schema (a thousand lines for one typo); the defaults are
    filled as ``validate`` fills them (a missing property takes its schema default, at every
    depth, before that level is checked), in the same single pass over the config."""
    import jsonschema

    if not isinstance(config, dict):
        raise ConfigError(f"{source}: a config is a mapping of keys, got {type(config).__name__}")
    if not SCHEMA.is_file():
        raise ConfigError(f"the config schema {SCHEMA} is missing: is this a full checkout?")
    # libyaml's parser where PyYAML has it: the schema is read at every start of the workflow
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schema = yaml.load(SCHEMA.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
    validator = _filling_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        raise ConfigError(f"{source}: {_where(err.absolute_path)}: {_explain(err)}")


def _filling_defaults(validator_class: Any) -> Any:
    """``validator_class`` whose ``properties`` check first sets each missing property that
    has a default (a copy of it), as in jsonschema's FAQ and Snakemake's ``validate``."""
    from jsonschema import validators

    check_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Any, instance: Any, schema: Any) -> Iterator:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _explain(err: Any) -> str:
    """The violation in words, with the nearest valid key or value where one is close."""
    import difflib

    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = list(err.schema.get("properties", {}))
        unknown = [k for k in err.instance if k not in known]
        parts = []
        for key in unknown:
            near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            parts.append(f"unknown key {key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        if parts:
            return _one_line("; ".join(parts) + f"; valid keys: {', '.join(known)}")
    if err.validator == "enum" and isinstance(err.instance, str):
        choices = [str(c) for c in err.validator_value]
        near = difflib.get_close_matches(err.instance, choices, n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return _one_line(f"{err.instance!r} is not one of {', '.join(choices)}{hint}")
    return _one_line(err.message)


def _one_line(message: str, limit: int = 300) -> str:
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_config(path: str | Path) -> dict[str, Any]:
    """A study config from a YAML file: strict parse, schema validation, defaults filled."""
    return validate_config(load_yaml(path), str(path))


def check_config_files(paths: list[str | Path]) -> None:
    """Re-read config files strictly (the workflow calls this: Snakemake's own YAML reading
    keeps the last of duplicate keys)."""
    for path in paths:
        loaded = load_yaml(path)
        if isinstance(loaded, dict) and loaded.get("__use_yte__"):
            # Snakemake evaluates such a file as a YTE template, Python included, when it reads
            # it (even under -n); the default config is checked before Snakemake reads it
            raise ConfigError(
                f"{path}: __use_yte__ makes Snakemake run the Python expressions in this config"
                " as it reads it (even under -n); biomedquant configs are plain YAML: remove"
                " the key and write the values out"
            )
