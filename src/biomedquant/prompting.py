"""Prompting methods and chat templates: turn one dataset item into the exact model input.

The prompt text is a pure function of (config, few-shot pool, item, the tokenizer's chat
template), so it can be rebuilt from the config at any time; its SHA-256 is stored with every
prediction.

Layout of a prompt, as chat messages: an optional system message; the task description (and,
for chain-of-thought, how to reason and mark the answer) followed by the first input; for
few-shot methods each example is a user turn with its input and an assistant turn with its gold
answer in the output format, and the item to answer comes last.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.tasks import Task, get_task

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful biomedical natural language processing assistant. "
    "Follow the output format exactly."
)
COT_INSTRUCTION = (
    "Think step by step and explain your reasoning briefly. Then, on the last line, write "
    '"Answer: " followed by your final answer in the format described above.'
)


@dataclass(frozen=True)
class PromptMethod:
    name: str
    shots: int
    chain_of_thought: bool
    self_consistency: bool
    description: str


PROMPT_METHODS: dict[str, PromptMethod] = {
    m.name: m
    for m in (
        PromptMethod("zero-shot", 0, False, False, "task description and the item"),
        PromptMethod("one-shot", 1, False, False, "one solved example from the few-shot pool"),
        PromptMethod("five-shot", 5, False, False, "five solved examples from the pool"),
        PromptMethod("cot", 0, True, False, "reason step by step, then a marked answer"),
        PromptMethod("sc-cot", 0, True, True, "self-consistency: n sampled chains, majority vote"),
    )
}


def get_prompt_method(name: str) -> PromptMethod:
    try:
        return PROMPT_METHODS[name]
    except KeyError:
        raise KeyError(
            f"unknown prompting method {name!r}; known: {', '.join(PROMPT_METHODS)}"
        ) from None


def select_examples(task: Task, pool: list[Record], k: int, seed: int) -> list[Record]:
    """``k`` few-shot examples from ``pool``, deterministic for ``seed``.

    NER and multi-label take the pool's first items. Relation extraction and QA take examples
    balanced across labels: labels in turn (in order of first appearance in a seeded shuffle
    of the pool), the next unused item of each label at every turn.
    """
    if k <= 0:
        return []
    if len(pool) < k:
        raise ValueError(f"few-shot pool has {len(pool)} items, {k} needed")
    if task.balance_on is None:
        return pool[:k]
    shuffled = list(pool)
    random.Random(seed).shuffle(shuffled)
    by_label: dict[str, list[Record]] = defaultdict(list)
    for rec in shuffled:
        by_label[task.balance_on(rec)].append(rec)
    chosen: list[Record] = []
    while len(chosen) < k:
        for items in by_label.values():
            if items and len(chosen) < k:
                chosen.append(items.pop(0))
    return chosen


def messages(
    spec: DatasetSpec,
    rec: Record,
    method: str,
    examples: list[Record] = (),  # type: ignore[assignment]
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
) -> list[dict[str, str]]:
    """Chat messages for one item under a prompting method."""
    pm = get_prompt_method(method)
    if len(examples) != pm.shots:
        raise ValueError(f"{method} needs {pm.shots} example(s), got {len(examples)}")
    task = get_task(spec.task)
    header = task.description(spec)
    if pm.chain_of_thought:
        header += "\n" + COT_INSTRUCTION
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    inputs = [*examples, rec]
    for i, item in enumerate(inputs):
        content = task.render_input(spec, item)
        msgs.append({"role": "user", "content": f"{header}\n\n{content}" if i == 0 else content})
        if i < len(examples):
            msgs.append({"role": "assistant", "content": task.render_answer(spec, item)})
    return msgs


def render(msgs: list[dict[str, str]], tokenizer: Any) -> str:
    """The exact text fed to the model: the tokenizer's chat template, or plain text."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    parts = []
    for m in msgs:
        if m["role"] == "assistant":
            parts.append(f"Answer: {m['content']}")
        else:
            parts.append(m["content"])
    return "\n\n".join(parts) + "\n\nAnswer:"


PromptBuilder = Callable[[DatasetSpec, Record], str]


def builder(
    method: str,
    tokenizer: Any,
    *,
    pool: list[Record] | None = None,
    spec: DatasetSpec | None = None,
    seed: int = 0,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
) -> PromptBuilder:
    """A function from (dataset, item) to the rendered prompt, for one method and tokenizer.

    The few-shot examples are chosen once, so every item of a run sees the same ones.
    """
    pm = get_prompt_method(method)
    examples: list[Record] = []
    if pm.shots:
        if pool is None or spec is None:
            raise ValueError(f"{method} needs a few-shot pool")
        examples = select_examples(get_task(spec.task), pool, pm.shots, seed)
    return lambda ds, rec: render(messages(ds, rec, method, examples, system_prompt), tokenizer)
