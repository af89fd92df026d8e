"""The documentation's reference pages, generated so that they cannot go stale.

``docs/reference/config.md`` is written from the config schema (each key's description,
type and default, the schema being what validates a config) and from the header comment of
every shipped config; ``docs/reference/cli.md`` from the command line's own parser. A test
regenerates both and fails when the committed pages differ, so a schema or option change
that is not carried into the documentation is caught where it is made.

    python -m biomedquant.cli.docs_reference docs/reference
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIGS = REPO / "config"
# argparse wraps help to the terminal's width: one fixed width keeps the page reproducible
HELP_COLUMNS = "96"


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A node with its ``$ref`` (to ``#/$defs/...``) merged in, its own keys winning."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolve(target, schema), **{k: v for k, v in node.items() if k != "$ref"}}


def _type_text(node: dict[str, Any], schema: dict[str, Any]) -> str:
    """What values a key takes, in the schema's own terms."""
    node = _resolve(node, schema)
    if "enum" in node:
        return " | ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(_type_text(n, schema) for n in node.get("oneOf", node.get("anyOf")))
    kind = node.get("type", "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    bounds = [
        f"{sym} {node[key]}"
        for key, sym in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        )
        if key in node
    ]
    if kind == "array" and "items" in node:
        kind = f"list of {_type_text(node['items'], schema)}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        kind = f"map to {_type_text(node['additionalProperties'], schema)}"
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _default_text(node: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in node:
        return ""
    return f"`{json.dumps(node['default'])}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _is_section(node: dict[str, Any]) -> bool:
    """An object whose keys are listed under a heading of its own."""
    return bool(node.get("properties")) and node.get("type", "object") == "object"


def _rows(node: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> Iterator[tuple]:
    """(key, type, default, description) of every key of a section, nested objects without
    a section of their own written as dotted keys."""
    required = set(node.get("required", ()))
    for key, child in node.get("properties", {}).items():
        child = _resolve(child, schema)
        name = f"{prefix}{key}"
        if _is_section(child) and not _is_per_task(child):
            if child.get("description"):
                yield (name, "object", _default_text(child, False), child["description"])
            yield from _rows(child, schema, f"{name}.")
            continue
        yield (
            name,
            _type_text(child, schema),
            _default_text(child, key in required),
            child.get("description", ""),
        )


def _is_per_task(node: dict[str, Any]) -> bool:
    """A map from the four task names to one value each, described once by its parent."""
    return set(node.get("properties", {})) == {"ner", "re", "mlc", "qa"}


def _sections(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(title, object node) of the top level and of every top-level object and slug map."""
    yield (
        "Top level",
        {
            "properties": {
                k: v
                for k, v in schema["properties"].items()
                if not (_is_section(_resolve(v, schema)) or _slug_map(v))
            },
            "required": schema.get("required", []),
        },
    )
    for key, node in schema["properties"].items():
        node = _resolve(node, schema)
        if _slug_map(node):
            yield f"`{key}.<slug>`", {"description": node.get("description", ""),
                                      **node["additionalProperties"]}  # fmt: skip
        elif _is_section(node):
            yield f"`{key}`", node


def _slug_map(node: dict[str, Any]) -> bool:
    return isinstance(node.get("additionalProperties"), dict) and "propertyNames" in node


def config_header(path: Path) -> str:
    """A shipped config's opening comment, up to its first blank comment line: what it is for."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.removeprefix("#").strip()
        if not text:
            break
        lines.append(text)
    return " ".join(lines)


def config_reference(schema_path: Path = SCHEMA, configs: Path = CONFIGS) -> str:
    """The configuration reference page, as Markdown."""
    schema = yaml.safe_load(schema_path.read_text())
    out = [
        "# Configuration reference",
        "",
        "Generated from `workflow/schemas/config.schema.yaml`, which validates every config",
        "when Snakemake, `biomedquant plan` or `biomedquant doctor` reads it (run",
        "`python -m biomedquant.cli.docs_reference docs/reference` after changing the schema;",
        "a test fails while this page and the schema differ). Unknown keys are errors, so a",
        "misspelled key stops the run with a message that names it and the nearest valid key.",
        "",
        "## Shipped configs",
        "",
        "| file | what it is for |",
        "|---|---|",
    ]
    for path in sorted(configs.glob("*.yaml")):
        out.append(f"| `config/{path.name}` | {_cell(config_header(path))} |")
    for title, node in _sections(schema):
        out += ["", f"## {title}", ""]
        if node.get("description"):
            out += [_cell(node["description"]), ""]
        out += ["| key | values | default | meaning |", "|---|---|---|---|"]
        for key, kind, default, text in _rows(node, schema):
            out.append(f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(text)} |")
    return "\n".join(out) + "\n"


def cli_reference() -> str:
    """The command-line reference page: the top-level help, then every command's."""
    from biomedquant.cli import USER_COMMANDS, build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        parser = build_parser()
        out = [
            "# Command-line reference",
            "",
            "Generated from the `biomedquant` command's own parser (`biomedquant <command> --help`",
            "prints the same); a test fails while this page and the parser differ.",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
        ]
        commands = dict(_subparsers(parser))
        steps = [name for name in commands if name not in USER_COMMANDS]
        for heading, names in (("Commands", USER_COMMANDS), ("Workflow steps", steps)):
            out += ["", f"## {heading}"]
            for name in names:
                help_text = commands[name].format_help().rstrip()
                out += ["", f"### `biomedquant {name}`", "", "```text", help_text, "```"]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(out) + "\n"


def _subparsers(parser: Any) -> Iterator[tuple[str, Any]]:
    import argparse

    for action in parser._actions:  # argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield name, sub


PAGES = {"config.md": config_reference, "cli.md": cli_reference}


def write_reference(folder: Path) -> list[Path]:
    """Write every generated page into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in PAGES.items():
        (folder / name).write_text(build())
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in write_reference(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reference")):
        print(path)
