"""An Ollama Modelfile beside every GGUF artifact (``Modelfile`` in its folder), so that
``ollama create NAME -f Modelfile`` serves the file with the model's own chat format.

Ollama's templates are Go templates, not the Jinja templates a Hugging Face tokenizer ships, so
the model's template is recognised by its turn markers and written in Ollama's syntax for that
family: ChatML (Qwen2.5, SmolLM2), Llama 3, Mistral's ``[INST]`` and Gemma's turns. A template of
no known family is refused with its name rather than guessed. The stop tokens are the family's
end-of-turn markers. :func:`parse_modelfile` reads a Modelfile back (``FROM``, ``TEMPLATE``,
``PARAMETER``, ``SYSTEM``), which the tests use to check what was written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MODELFILE = "Modelfile"

# family -> (a marker its Jinja template holds, Ollama template, stop tokens)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "chatml": (
        "<|im_start|>",
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n",
        ("<|im_end|>", "<|im_start|>"),
    ),
    "llama3": (
        "<|start_header_id|>",
        "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
        "{{ end }}{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}"
        "<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}"
        "<|eot_id|>",
        ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"),
    ),
    "gemma": (
        "<start_of_turn>",
        "<start_of_turn>user\n{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}"
        "<end_of_turn>\n<start_of_turn>model\n{{ .Response }}<end_of_turn>\n",
        ("<end_of_turn>", "<start_of_turn>"),
    ),
    "mistral": (
        "[INST]",
        "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }} [/INST]{{ .Response }}",
        ("[INST]", "[/INST]", "</s>"),
    ),
}


def chat_family(template: str) -> str:
    """The family of a Jinja chat template, by its turn markers; an error when none fits."""
    for family, (marker, _, _) in FAMILIES.items():
        if marker in template:
            return family
    raise ValueError(
        "no Ollama template for this chat template (known: ChatML, Llama 3, Gemma, Mistral);"
        " write the Modelfile's TEMPLATE by hand"
    )


def modelfile_text(
    template: str, *, gguf_file: str = "model.gguf", temperature: float = 0.0
) -> str:
    """The Modelfile of a GGUF file whose model has the Jinja chat ``template``; temperature
    0 is the study's greedy decoding."""
    _, go_template, stops = FAMILIES[chat_family(template)]
    lines = [f"FROM ./{gguf_file}", f'TEMPLATE """{go_template}"""']
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines.append(f"PARAMETER temperature {temperature:g}")
    return "\n".join(lines) + "\n"


def folder_chat_template(folder: str | Path) -> str | None:
    """The chat template a model folder ships (``chat_template.jinja``, else the tokenizer
    config's ``chat_template``), or None."""
    import json

    folder = Path(folder)
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        return template if isinstance(template, str) else None
    return None


_COMMAND = re.compile(r"^(FROM|PARAMETER|SYSTEM|TEMPLATE|ADAPTER|LICENSE|MESSAGE)\s+(.*)$", re.S)


def parse_modelfile(text: str) -> dict[str, Any]:
    """A Modelfile's commands: ``from``, ``template``, ``system`` and ``parameters`` (name ->
    values). Triple-quoted values may span lines; an unknown command is an error."""
    out: dict[str, Any] = {"parameters": {}}
    rest = text
    while rest.strip():
        rest = rest.lstrip("\n")
        if rest.startswith("#"):
            rest = rest.split("\n", 1)[1] if "\n" in rest else ""
            continue
        m = _COMMAND.match(rest)
        if not m:
            raise ValueError(f"not a Modelfile command: {rest.splitlines()[0]!r}")
        command, tail = m.group(1), m.group(2)
        if tail.startswith('"""'):
            end = tail.index('"""', 3)
            value, rest = tail[3:end], tail[end + 3 :]
        else:
            value, _, rest = tail.partition("\n")
        if command == "PARAMETER":
            name, _, raw = value.strip().partition(" ")
            out["parameters"].setdefault(name, []).append(raw.strip().strip('"'))
        else:
            out[command.lower()] = value.strip() if command == "FROM" else value
    return out
