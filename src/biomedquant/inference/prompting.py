"""Prompting methods and chat templates: turn one dataset item into the exact model input.

The prompt text is a pure function of (config, few-shot pool, item, the tokenizer's chat
template), so it can be rebuilt from the config at any time; its SHA-256 is stored with every
prediction.

Layout of a prompt, as chat messages: an optional system message; the task description (and,
for chain-of-thought, how to reason and mark the answer) followed by the first input; for
few-shot methods each example is a user turn with its input and an assistant turn with its gold
answer in the output format, and the item to answer comes last. A chat template that refuses
a system role (Gemma-2 raises "System role not supported") gets the system text as the opening
paragraph of the first user turn instead; the rendered text, and so the prompt hash, records it.

Generation stops at the end of the model's answer: at the next example's header in the plain
prompt format (:func:`stop_strings`), and at the template's end-of-turn tokens
(:func:`end_of_turn_tokens`) for models with a chat template.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from biomedquant.common.registry import Registry
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


PROMPT_METHODS: Registry[PromptMethod] = Registry(
    "prompting method",
    (
        (m.name, m)
        for m in (
            PromptMethod("zero-shot", 0, False, False, "task description and the item"),
            PromptMethod("one-shot", 1, False, False, "one solved example from the few-shot pool"),
            PromptMethod("five-shot", 5, False, False, "five solved examples from the pool"),
            PromptMethod("cot", 0, True, False, "reason step by step, then a marked answer"),
            PromptMethod(
                "sc-cot", 0, True, True, "self-consistency: n sampled chains, majority vote"
            ),
        )
    ),
)


def get_prompt_method(name: str) -> PromptMethod:
    """The prompting method ``name`` (an error naming the closest methods when unknown)."""
    return PROMPT_METHODS[name]


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


def merge_system(msgs: list[dict[str, str]]) -> list[dict[str, str]]:
    """The system message as the opening paragraph of the first user turn."""
    if not msgs or msgs[0]["role"] != "system":
        return list(msgs)
    system, rest = msgs[0]["content"], [dict(m) for m in msgs[1:]]
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    else:
        rest.insert(0, {"role": "user", "content": system})
    return rest


def accepts_system_role(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders a system message (Gemma-2's raises)."""
    probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    try:
        tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja2 TemplateError from the template's raise_exception
        if "system" in str(exc).lower():
            return False
        raise
    return True


def render(msgs: list[dict[str, str]], tokenizer: Any) -> str:
    """The exact text fed to the model: the tokenizer's chat template, or plain text."""
    if getattr(tokenizer, "chat_template", None):
        if msgs and msgs[0]["role"] == "system" and not accepts_system_role(tokenizer):
            msgs = merge_system(msgs)
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    parts = []
    for m in msgs:
        if m["role"] == "assistant":
            parts.append(f"Answer: {m['content']}")
        else:
            parts.append(m["content"])
    return "\n\n".join(parts) + "\n\nAnswer:"


def stop_strings(spec: DatasetSpec) -> list[str]:
    """Strings that end a generation: a new line opening the next example of the prompt
    format ("Sentence:", "Question:" ...), which only an invented follow-up writes."""
    return [f"\n{header}" for header in get_task(spec.task).headers(spec)]


# End-of-turn tokens of common chat templates (Llama 3, ChatML, Gemma, Phi, Mistral ...).
END_OF_TURN_TOKENS = (
    "<|eot_id|>",
    "<|im_end|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "</s>",
)


def end_of_turn_tokens(tokenizer: Any) -> list[str]:
    """The end-of-turn tokens the tokenizer's chat template writes (none without one).

    A model that ends its turn with one of them but lists only its end-of-sequence token as
    ``eos_token_id`` would otherwise run on into an invented next turn.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return []
    vocab = tokenizer.get_vocab()
    return [tok for tok in END_OF_TURN_TOKENS if tok in template and tok in vocab]


def shipped_chat_template(model_id: str) -> str | None:
    """The chat template from a study model's published ``tokenizer_config.json``, shipped in
    ``models/configs/chat_templates`` (for checks that need no download), or ``None``."""
    name = model_id.replace("/", "--") + ".jinja"
    item = resources.files("biomedquant").joinpath("models", "configs", "chat_templates", name)
    return item.read_text("utf-8") if item.is_file() else None


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
