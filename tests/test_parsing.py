"""Parsers read messy model output into predictions, or say it is unparsable."""

from __future__ import annotations

import pytest

from biomedquant.datasets.registry import get_dataset
from biomedquant.tasks import parse_output

NER_TOKENS = ["Cisplatin", "-", "induced", "nephrotoxicity", "in", "rats", "."]
NER_REC = {"id": "1", "tokens": NER_TOKENS, "tags": []}


@pytest.mark.parametrize(
    ("output", "tags", "ok"),
    [
        (
            '<span class="chemical">Cisplatin</span> - induced nephrotoxicity in rats .',
            ["B", "O", "O", "O", "O", "O", "O"],
            True,
        ),
        # the model joins the hyphen and uses single quotes in the tag
        (
            "<span class='chemical'>Cisplatin</span>-induced nephrotoxicity in rats.",
            ["B", "O", "O", "O", "O", "O", "O"],
            True,
        ),
        # explanation around the answer, multi-token span
        (
            'Sure! Here it is:\n<span class="chemical">Cisplatin - induced</span> nephrotoxicity',
            ["B", "I", "I", "O", "O", "O", "O"],
            True,
        ),
        # unclosed tag runs to the end of the output
        (
            'Cisplatin - induced <span class="chemical">nephrotoxicity',
            ["O", "O", "O", "B", "O", "O", "O"],
            True,
        ),
        # echo without entities: parsed, no entity
        ("Cisplatin - induced nephrotoxicity in rats .", ["O"] * 7, True),
        ("", ["O"] * 7, False),
        ("I cannot help with that.", ["O"] * 7, False),
    ],
)
def test_ner_parser(output, tags, ok):
    parsed = parse_output(output, get_dataset("bc5cdr_chem"), NER_REC)
    assert parsed.prediction == tags
    assert parsed.ok is ok


@pytest.mark.parametrize(
    ("dataset", "output", "expected"),
    [
        ("chemprot", "CPR:4", "CPR:4"),
        ("chemprot", "**cpr-4**", "CPR:4"),
        ("chemprot", "The relation is CPR 9 (substrate).", "CPR:9"),
        ("chemprot", "false", "false"),
        ("chemprot", "CPR:3, no wait, CPR:4", "CPR:3"),
        ("chemprot", "I am not sure.", None),
        ("chemprot", "", None),
        ("ddi", "DDI-mechanism", "DDI-mechanism"),
        ("ddi", "Label: ddi_advise", "DDI-advise"),
        ("ddi", "`DDI-int`", "DDI-int"),
        ("ddi", "DDI-effect: the sentence states an effect.", "DDI-effect"),
        ("chemprot", "CPR:5: the chemical is an agonist", "CPR:5"),
        ("chemprot", "CPR:30", None),
    ],
)
def test_relation_parser(dataset, output, expected):
    parsed = parse_output(output, get_dataset(dataset), {"id": "1", "text": "", "label": ""})
    assert parsed.prediction == expected
    assert parsed.ok is (expected is not None)


@pytest.mark.parametrize(
    ("output", "expected", "ok"),
    [
        ("Treatment; Prevention", ["Treatment", "Prevention"], True),
        ("- treatment\n- case report", ["Treatment", "Case Report"], True),
        ('["Diagnosis", "Mechanism"]', ["Diagnosis", "Mechanism"], True),
        ("None of the labels apply.", [], True),
        ("", [], False),
        ("This is about viruses.", [], False),
    ],
)
def test_multilabel_parser(output, expected, ok):
    parsed = parse_output(output, get_dataset("litcovid"), {"id": "1", "text": "", "labels": []})
    assert sorted(parsed.prediction) == sorted(expected)
    assert parsed.ok is ok


MEDQA_REC = {
    "id": "1",
    "question": "q",
    "context": "",
    "options": {
        "A": "Aspirin",
        "B": "Heparin",
        "C": "Warfarin",
        "D": "Apixaban",
        "E": "Clopidogrel",
    },
    "answer": "D",
}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("D", "D"),
        ("D. Apixaban", "D"),
        ("(B)", "B"),
        ("The answer is C because ...", "C"),
        ("**Answer: E**", "E"),
        ("I would give apixaban.", "D"),
        ("", None),
        ("I don't know", None),
    ],
)
def test_medqa_parser(output, expected):
    parsed = parse_output(output, get_dataset("medqa"), MEDQA_REC)
    assert parsed.prediction == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [("yes", "yes"), ("No.", "no"), ("Maybe, the evidence is mixed", "maybe"), ("Unclear", None)],
)
def test_pubmedqa_parser(output, expected):
    rec = {"id": "1", "question": "q", "context": "c", "options": {}, "answer": "yes"}
    assert parse_output(output, get_dataset("pubmedqa"), rec).prediction == expected
