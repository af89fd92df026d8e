"""Prompting methods: few-shot selection, message layout, chain of thought, voting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biomedquant.common.files import read_jsonl
from biomedquant.datasets.registry import get_dataset
from biomedquant.inference.prompting import (
    COT_INSTRUCTION,
    DEFAULT_SYSTEM_PROMPT,
    PROMPT_METHODS,
    accepts_system_role,
    builder,
    end_of_turn_tokens,
    merge_system,
    messages,
    render,
    select_examples,
    shipped_chat_template,
    stop_strings,
)
from biomedquant.tasks import (
    NO_ANSWER,
    OK,
    Parsed,
    get_task,
    vote_label,
    vote_labelset,
    vote_spans,
)

from conftest import CHATML


def _re_pool(n_per_label: dict[str, int]) -> list[dict]:
    return [
        {"id": f"{lab}-{i}", "text": f"@DRUG$ and @DRUG$ {i}", "label": lab}
        for lab, n in n_per_label.items()
        for i in range(n)
    ]


def test_registry_has_the_five_methods():
    assert list(PROMPT_METHODS) == ["zero-shot", "one-shot", "five-shot", "cot", "sc-cot"]
    assert PROMPT_METHODS["five-shot"].shots == 5 and PROMPT_METHODS["sc-cot"].self_consistency


def test_ner_and_multilabel_take_the_first_pool_items():
    pool = [{"id": str(i), "tokens": ["x"], "tags": ["O"]} for i in range(9)]
    assert [r["id"] for r in select_examples(get_task("ner"), pool, 5, seed=1)] == list("01234")


def test_relation_examples_are_balanced_and_seeded():
    pool = _re_pool({"DDI-false": 20, "DDI-int": 2, "DDI-effect": 3})
    task = get_task("re")
    chosen = select_examples(task, pool, 5, seed=7)
    labels = [r["label"] for r in chosen]
    assert sorted(set(labels)) == ["DDI-effect", "DDI-false", "DDI-int"]
    assert max(labels.count(lab) for lab in set(labels)) == 2  # round robin over labels
    assert chosen == select_examples(task, pool, 5, seed=7)
    assert select_examples(task, pool, 1, seed=1)[0]["label"] in {
        "DDI-false",
        "DDI-int",
        "DDI-effect",
    }
    with pytest.raises(ValueError, match="pool has 3 items"):
        select_examples(task, pool[:3], 5, seed=0)


def test_five_shot_messages_alternate_examples_and_answers(demo_prepared):
    spec = get_dataset("ddi")
    pool = _re_pool({"DDI-false": 3, "DDI-mechanism": 3})
    examples = select_examples(get_task("re"), pool, 5, seed=0)
    rec = read_jsonl(demo_prepared["ddi"])[0]
    msgs = messages(spec, rec, "five-shot", examples)
    assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * 5 + ["user"]
    assert msgs[2]["content"] == examples[0]["label"]
    assert "DDI-mechanism:" in msgs[1]["content"]  # the description comes once, first
    assert "DDI-mechanism:" not in msgs[3]["content"]
    assert msgs[-1]["content"] == f"Sentence: {rec['text']}"
    with pytest.raises(ValueError, match="needs 5 example"):
        messages(spec, rec, "five-shot", examples[:2])


def test_cot_asks_for_a_marked_answer_and_plain_text_without_template(demo_prepared):
    spec = get_dataset("pubmedqa")
    rec = read_jsonl(demo_prepared["pubmedqa"])[0]
    msgs = messages(spec, rec, "cot", system_prompt="")
    assert msgs[0]["role"] == "user" and COT_INSTRUCTION in msgs[0]["content"]

    class NoTemplate:
        chat_template = None

    text = render(msgs, NoTemplate())
    assert text.startswith("Answer research questions") and text.endswith("Answer:")


def test_ner_gold_answer_renders_in_the_output_protocol():
    rec = {
        "id": "1",
        "tokens": ["Low", "dose", "lithium", "carbonate", "."],
        "tags": ["O", "O", "B", "I", "O"],
    }
    answer = get_task("ner").render_answer(get_dataset("bc5cdr_chem"), rec)
    assert answer == 'Low dose <span class="chemical">lithium carbonate</span> .'


def test_votes():
    ok = lambda p: Parsed(p, OK)  # noqa: E731
    bad = Parsed(None, NO_ANSWER)
    assert vote_label([ok("b"), ok("a"), ok("a"), bad, ok("b")]).prediction == "b"  # tie: first
    assert vote_label([bad, bad]).status == NO_ANSWER
    assert vote_labelset([ok(["x", "y"]), ok(["x"]), ok(["y", "z"])]).prediction == ["x", "y"]
    spans = [
        ok(["B", "I", "O"]),
        ok(["B", "I", "O"]),
        ok(["O", "B", "O"]),
        Parsed(["O"] * 3, NO_ANSWER),
    ]
    assert vote_spans(spans).prediction == ["B", "I", "O"]


def _tokenizer(template: str):
    """A small real tokenizer carrying ``template`` (the vocabulary does not matter here)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<bos>": 1, "<eos>": 2, "<start_of_turn>": 3, "<end_of_turn>": 4}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    tok.chat_template = template
    return tok


GEMMA2 = "google/gemma-2-9b-it"


def test_gemma2_template_is_shipped_and_refuses_a_system_role():
    template = shipped_chat_template(GEMMA2)
    assert template is not None and "System role not supported" in template
    tok = _tokenizer(template)
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template(
            [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], tokenize=False
        )
    assert not accepts_system_role(tok)
    assert accepts_system_role(_tokenizer(CHATML))
    assert end_of_turn_tokens(tok) == ["<end_of_turn>"]


def test_system_text_is_merged_into_the_first_user_turn_when_refused(demo_prepared):
    spec = get_dataset("medqa")
    rec = read_jsonl(demo_prepared["medqa"])[0]
    msgs = messages(spec, rec, "zero-shot", system_prompt=DEFAULT_SYSTEM_PROMPT)
    text = render(msgs, _tokenizer(shipped_chat_template(GEMMA2)))
    expected_user = f"{DEFAULT_SYSTEM_PROMPT}\n\n{msgs[1]['content']}".strip()
    assert text == f"<bos><start_of_turn>user\n{expected_user}<end_of_turn>\n<start_of_turn>model\n"
    # A template that takes a system role keeps it as its own turn.
    assert "<|im_start|>system\n" in render(msgs, _tokenizer(CHATML))
    assert merge_system(msgs)[0]["content"].startswith(DEFAULT_SYSTEM_PROMPT)


def test_every_gemma2_job_of_the_paper_config_builds_its_prompts(demo_prepared):
    """All datasets x prompting methods of config/paper.yaml, on the shipped template."""
    paper = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "config" / "paper.yaml").read_text()
    )
    assert paper["models"]["gemma2_9b"]["id"] == GEMMA2
    tok = _tokenizer(shipped_chat_template(GEMMA2))
    system = paper.get("prompting", {}).get("system_prompt") or DEFAULT_SYSTEM_PROMPT
    for dataset in paper["datasets"]:
        spec = get_dataset(dataset)
        items = read_jsonl(demo_prepared[dataset])
        for method in paper["prompts"]:
            build = builder(method, tok, pool=items[1:], spec=spec, seed=0, system_prompt=system)
            prompt = build(spec, items[0])
            assert prompt.startswith(f"<bos><start_of_turn>user\n{system}")
            assert prompt.endswith("<start_of_turn>model\n")


def test_stop_strings_are_the_next_examples_header():
    assert stop_strings(get_dataset("ddi")) == ["\nSentence:"]
    assert stop_strings(get_dataset("medqa")) == ["\nQuestion:"]
    assert stop_strings(get_dataset("pubmedqa")) == ["\nAbstract:"]
    assert stop_strings(get_dataset("hoc")) == ["\nText:"]
    assert end_of_turn_tokens(type("NoTemplate", (), {"chat_template": None})()) == []
