"""Prompting methods and chat templates: turn one dataset item into the exact model input.

The prompt text is a pure function of (config, dataset item, tokenizer's chat template), so it
can be rebuilt from the config at any time; its SHA-256 is stored with every prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.tasks import get_task

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful biomedical natural language processing assistant. "
    "Follow the output format exactly."
)


@dataclass(frozen=True)
class PromptMethod:
    name: str
    shots: int
    description: str


PROMPT_METHODS: dict[str, PromptMethod] = {
    m.name: m for m in (PromptMethod("zero-shot", 0, "instruction and the item, no examples"),)
}


def get_prompt_method(name: str) -> PromptMethod:
    try:
        return PROMPT_METHODS[name]
    except KeyError:
        raise KeyError(
            f"unknown prompting method {name!r}; known: {', '.join(PROMPT_METHODS)}"
        ) from None


def messages(
    spec: DatasetSpec, rec: Record, method: str, system_prompt: str = DEFAULT_SYSTEM_PROMPT
) -> list[dict[str, str]]:
    """Chat messages for one item under a prompting method."""
    get_prompt_method(method)
    user = get_task(spec.task).instruction(spec, rec)
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    msgs.append({"role": "user", "content": user})
    return msgs


def render(msgs: list[dict[str, str]], tokenizer: Any) -> str:
    """The exact text fed to the model: the tokenizer's chat template, or plain text."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    parts = [m["content"] for m in msgs]
    return "\n\n".join(parts) + "\n\nAnswer:"


PromptBuilder = Callable[[DatasetSpec, Record], str]


def builder(
    method: str, tokenizer: Any, system_prompt: str = DEFAULT_SYSTEM_PROMPT
) -> PromptBuilder:
    """A function from (dataset, item) to the rendered prompt, for one method and tokenizer."""
    return lambda spec, rec: render(messages(spec, rec, method, system_prompt), tokenizer)
