"""The work a study's inference really does: prompt tokens counted with a tokenizer, the
shared prefix apart, outputs at their prior's lengths (biomedquant.planning.tokens)."""

from __future__ import annotations

import json

import pytest

from biomedquant.datasets.registry import DATASETS as DATASET_REGISTRY
from biomedquant.datasets.registry import get_dataset
from biomedquant.inference.decoding import Decoding
from biomedquant.inference.prompting import builder
from biomedquant.planning import tokens
from biomedquant.planning.job_resources import Workload, infer_workload
from biomedquant.planning.throughput import BACKENDS, planned_counts
from biomedquant.planning.tokens import (
    PREFIX_BLOCK_TOKENS,
    PROMPT_TOKENS,
    common_prefix_length,
    measure_prompt_tokens,
    prompt_tokens,
)

from conftest import CHATML

DATASETS = tuple(DATASET_REGISTRY.names())  # the table covers every registered dataset


@pytest.fixture(scope="module")
def tokenizer():
    """The BPE tokenizer with a ChatML template that the tests' tiny models carry."""
    from biomedquant.study.rehearsal.tiny_models import train_tokenizer

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    return train_tokenizer(
        specials, CHATML, bos="<|im_start|>", eos="<|im_end|>", pad="<pad>", vocab_size=600
    )


def _records(demo_prepared, dataset):
    return [json.loads(line) for line in demo_prepared[dataset].read_text().splitlines()]


@pytest.mark.parametrize("dataset", ["ddi", "pubmedqa", "ncbi_disease"])
@pytest.mark.parametrize("prompt", ["zero-shot", "one-shot"])
def test_token_counts_are_the_tokenizer_s_own_on_prepared_items(
    demo_prepared, tokenizer, dataset, prompt
):
    records = _records(demo_prepared, dataset)
    counts = measure_prompt_tokens(dataset, prompt, records, tokenizer, pool=records, seed=3)
    # the prompts the inference job renders, tokenized independently
    spec = get_dataset(dataset)
    build = builder(prompt, tokenizer, pool=records, spec=spec, seed=3)
    ids = [tokenizer(build(spec, rec), add_special_tokens=False)["input_ids"] for rec in records]
    assert counts.per_item == pytest.approx(sum(map(len, ids)) / len(ids))
    # the shared prefix: whole cache blocks that every prompt opens with, the system prompt
    # and the instructions among them
    shared = int(counts.shared)
    assert shared % PREFIX_BLOCK_TOKENS == 0 and shared > 0
    assert all(i[:shared] == ids[0][:shared] for i in ids)
    assert common_prefix_length(ids) - shared < PREFIX_BLOCK_TOKENS
    answers = [
        len(tokenizer(builder_answer(spec, rec), add_special_tokens=False)["input_ids"])
        for rec in records
    ]
    assert counts.answer == pytest.approx(sum(answers) / len(answers))


def builder_answer(spec, rec) -> str:
    from biomedquant.tasks import get_task

    return get_task(spec.task).render_answer(spec, rec)


def test_the_shipped_table_covers_every_dataset_and_prompt_and_the_measured_totals():
    prompts = ("zero-shot", "one-shot", "five-shot", "cot", "sc-cot")
    assert set(PROMPT_TOKENS) == {(d, p) for d in DATASETS for p in prompts}
    for (dataset, prompt), counts in PROMPT_TOKENS.items():
        assert counts.shared % PREFIX_BLOCK_TOKENS == 0, (dataset, prompt)
        assert counts.own > 0 and counts.answer > 0
    # zero-shot over the eight test sets, per model x method: 8.45M prompt tokens, of which
    # 3.7M outside the shared prefix (issue 49's independent Llama-3 count: 8.45M and 3.34M)
    size = {d: get_dataset(d).test_size for d in DATASETS}
    total = sum(size[d] * PROMPT_TOKENS[d, "zero-shot"].per_item for d in DATASETS)
    own = sum(size[d] * PROMPT_TOKENS[d, "zero-shot"].own for d in DATASETS)
    assert total == pytest.approx(8.45e6, rel=0.01)
    assert own == pytest.approx(3.69e6, rel=0.01)
    # more examples, a longer shared prefix
    for d in DATASETS:
        assert (
            PROMPT_TOKENS[d, "zero-shot"].shared
            < PROMPT_TOKENS[d, "one-shot"].shared
            < PROMPT_TOKENS[d, "five-shot"].shared
        )
    # a dataset without a measurement falls back to the old flat figures
    assert prompt_tokens("not-measured", "five-shot").shared == 5 * tokens.FALLBACK_TOKENS_PER_SHOT


def test_outputs_reach_the_cap_only_in_the_share_the_prior_gives():
    decoding = Decoding()
    for dataset, prompt in (("ddi", "zero-shot"), ("bc5cdr_chem", "zero-shot"), ("medqa", "cot")):
        work = infer_workload(dataset, prompt, decoding=decoding)
        counts = PROMPT_TOKENS[dataset, prompt]
        stopped, share = tokens.output_prior(counts.answer, work.new_tokens, prompt == "cot")
        assert (work.stopped_tokens, work.cap_share) == (stopped, share)
        assert share == (tokens.CAP_SHARE_COT if prompt == "cot" else tokens.CAP_SHARE_DIRECT)
        assert stopped < work.new_tokens
        expected = (1 - share) * stopped + share * work.new_tokens
        assert work.output_tokens == pytest.approx(expected)
        # vLLM decodes the expected lengths; every row at its cap would be far more
        rows = work.items * work.samples
        vllm = planned_counts(work, BACKENDS["vllm"])
        assert vllm.row_steps == pytest.approx(rows * expected)
        assert vllm.row_steps < 0.6 * rows * work.new_tokens
        # a static batch runs to its longest row: the cap when any row reaches it
        hf = planned_counts(work, BACKENDS["transformers"])
        assert hf.steps > vllm.steps and hf.row_steps == vllm.row_steps
    # the prompt prefilled: each item's own tokens, the shared prefix once
    work = infer_workload("hoc", "five-shot")
    counts = PROMPT_TOKENS["hoc", "five-shot"]
    assert work.prefill_tokens == pytest.approx(work.items * counts.own + counts.shared)
    # with no share at the cap, no output is counted at it
    none_at_cap = Workload(items=10, new_tokens=512, stopped_tokens=40.0, cap_share=0.0)
    assert none_at_cap.output_tokens == 40.0
    assert planned_counts(none_at_cap, BACKENDS["vllm"]).row_steps == 400
    # a workload built without a prior: every output at its cap, as before
    assert Workload(items=10, new_tokens=512).output_tokens == 512


def test_perplexity_reads_each_distinct_text_once_in_one_pass_each():
    from biomedquant.planning.job_resources import perplexity_workload

    # DDI's 5,761 entity pairs come from 774 sentences, each read once; HoC's texts are long
    ddi = perplexity_workload(["ddi"])
    assert (ddi.items, ddi.new_tokens, ddi.item_tokens) == (774, 0, 44.5)
    both = perplexity_workload(["ddi", "hoc"])
    assert both.prefill_tokens == pytest.approx(774 * 44.5 + 315 * 334.6)
    # at most max_length tokens a text
    assert perplexity_workload(["hoc"], max_length=128).item_tokens == 128
    # batch 1: one forward pass per text, each reading every weight
    counts = planned_counts(ddi, BACKENDS["transformers"])
    assert (counts.steps, counts.row_steps) == (774, 0)
