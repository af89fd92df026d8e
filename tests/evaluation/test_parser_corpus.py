"""The parser corpus: realistic outputs of instruct models, each with what a careful annotator
reads from it (see tests/parser_corpus/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biomedquant.evaluation.parsing import parse_output
from biomedquant.tasks import OK
from biomedquant.tasks.metrics import iob2_spans

CORPUS = Path(__file__).resolve().parents[1] / "parser_corpus"


def _cases() -> list:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text("utf-8"))
        for n, case in enumerate(spec["cases"], 1):
            item = {"id": f"{path.stem}-{n}", **spec["items"][case["item"]]}
            cases.append(
                pytest.param(
                    spec["dataset"], item, case["output"], case["expect"], id=f"{path.stem}-{n}"
                )
            )
    return cases


CASES = _cases()


def _readable(prediction, item):
    """NER tags as the entity strings they cover; multi-label lists in label-set order."""
    if "tokens" in item:
        return [" ".join(item["tokens"][s:e]) for s, e in sorted(iob2_spans(prediction))]
    return prediction


def test_corpus_is_large_and_covers_every_dataset_and_style():
    datasets = {c.values[0] for c in CASES}
    assert len(CASES) >= 150
    assert len(datasets) == 8
    styles = set()
    for path in CORPUS.glob("*.yaml"):
        styles |= {c["style"] for c in yaml.safe_load(path.read_text("utf-8"))["cases"]}
    assert styles == {
        "terse",
        "verbose",
        "markdown",
        "json",
        "list",
        "reasoning",
        "refusal",
        "follow-up",
        "truncated",
    }


@pytest.mark.parametrize(("dataset", "item", "output", "expect"), CASES)
def test_corpus_case(dataset, item, output, expect):
    prediction, status, rule = parse_output(dataset, output, item, "zero-shot")
    if expect == "unparsable":
        assert status != OK, f"read {prediction!r} by rule {rule}"
    else:
        got = _readable(prediction, item)
        assert (status, sorted(got) if isinstance(got, list) else got) == (
            OK,
            sorted(expect) if isinstance(expect, list) else expect,
        ), f"rule {rule}"
        assert rule is not None


def test_docs_state_the_corpus_size():
    page = Path(__file__).resolve().parents[2] / "docs" / "design" / "answers.md"
    assert f"corpus of {len(CASES)} realistic outputs" in page.read_text("utf-8")
