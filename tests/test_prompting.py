"""Prompting methods: few-shot selection, message layout, chain of thought, voting."""

from __future__ import annotations

import pytest

from biomedquant.datasets.registry import get_dataset
from biomedquant.io import read_jsonl
from biomedquant.prompting import (
    COT_INSTRUCTION,
    PROMPT_METHODS,
    messages,
    render,
    select_examples,
)
from biomedquant.tasks import NO_ANSWER, OK, Parsed, get_task, vote_label, vote_labelset, vote_spans


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
