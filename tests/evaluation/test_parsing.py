"""Parsers read messy model output into predictions, or say why they cannot (never guess)."""

from __future__ import annotations

import re

import pytest

from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import DATASETS
from biomedquant.evaluation.parsing import parse_output
from biomedquant.tasks import AMBIGUOUS, EMPTY, NO_ANSWER, OK

from conftest import SHARED_DATA

TOKENS = ["Cisplatin", "-", "induced", "nephrotoxicity", "in", "rats", "."]
NER_REC = {"id": "1", "tokens": TOKENS, "tags": []}
O7 = ["O"] * 7
B0 = ["B", "O", "O", "O", "O", "O", "O"]
SPAN = '<span class="chemical">'


def parse(dataset, output, rec):
    return parse_output(dataset, output, rec, "zero-shot")


@pytest.mark.parametrize(
    ("output", "tags", "status"),
    [
        (f"{SPAN}Cisplatin</span> - induced nephrotoxicity in rats .", B0, OK),
        ("<span class='chemical'>Cisplatin</span>-induced nephrotoxicity in rats.", B0, OK),
        ('<SPAN CLASS="Chemical">cisplatin</SPAN> - induced nephrotoxicity', B0, OK),
        (
            f"Sure! Here it is:\n{SPAN}Cisplatin - induced</span> nephrotoxicity",
            ["B", "I", "I", *O7[3:]],
            OK,
        ),
        (f"Cisplatin - induced {SPAN}nephrotoxicity", ["O", "O", "O", "B", "O", "O", "O"], OK),
        (f"{SPAN}{SPAN}Cisplatin</span></span> - induced nephrotoxicity in rats .", B0, OK),
        (f"**{SPAN}Cisplatin</span>** - induced nephrotoxicity in rats.", B0, OK),
        (f"`{SPAN}Cisplatin</span> - induced nephrotoxicity in rats .`", B0, OK),
        ("Cisplatin - induced nephrotoxicity in rats .", O7, OK),
        ("There are no chemical entities in this sentence.", O7, OK),
        ('["Cisplatin"]', B0, OK),
        ("- cisplatin", B0, OK),
        ('["cisplatin", "cisplatin"]', B0, OK),
        (f"Reasoning... Answer: {SPAN}Cisplatin</span> - induced nephrotoxicity", B0, OK),
        (f"{SPAN}Platinum</span> salts are toxic.", O7, NO_ANSWER),
        ("", O7, EMPTY),
        ("   \n ", O7, EMPTY),
        ("I cannot help with that.", O7, NO_ANSWER),
    ],
)
def test_ner_parser(output, tags, status):
    parsed = parse("bc5cdr_chem", output, NER_REC)
    assert parsed[:2] == (tags, status)


@pytest.mark.parametrize(
    ("dataset", "output", "expected", "status"),
    [
        ("chemprot", "CPR:4", "CPR:4", OK),
        ("chemprot", "**cpr-4**", "CPR:4", OK),
        ("chemprot", "The relation is CPR 9 (substrate).", "CPR:9", OK),
        ("chemprot", "false", "false", OK),
        ("chemprot", "'CPR:6'", "CPR:6", OK),
        ("chemprot", "CPR:5: the chemical is an agonist", "CPR:5", OK),
        ("chemprot", "CPR:3\nCPR:3", "CPR:3", OK),
        ("chemprot", '{"label": "CPR:4"}', "CPR:4", OK),
        ("chemprot", "CPR:3, no wait, CPR:4", None, AMBIGUOUS),
        ("chemprot", "It could be CPR:3 or CPR:4. Final answer: CPR:4", "CPR:4", OK),
        ("chemprot", "Answer: CPR:3\nActually, the answer is CPR:9", "CPR:9", OK),
        ("chemprot", "CPR:30", None, NO_ANSWER),
        ("chemprot", "I am not sure.", None, NO_ANSWER),
        ("chemprot", "", None, EMPTY),
        ("ddi", "DDI-mechanism", "DDI-mechanism", OK),
        ("ddi", "Label: ddi_advise", "DDI-advise", OK),
        ("ddi", "`DDI-int`", "DDI-int", OK),
        ("ddi", "DDI-effect: the sentence states an effect.", "DDI-effect", OK),
        ("ddi", "  ddi-FALSE  ", "DDI-false", OK),
        ("ddi", "DDI-effect or DDI-advise", None, AMBIGUOUS),
    ],
)
def test_relation_parser(dataset, output, expected, status):
    parsed = parse(dataset, output, {"id": "1", "text": "", "label": ""})
    assert parsed[:2] == (expected, status)


@pytest.mark.parametrize(
    ("output", "expected", "status"),
    [
        ("Treatment; Prevention", ["Treatment", "Prevention"], OK),
        ("- treatment\n- case report", ["Treatment", "Case Report"], OK),
        ('["Diagnosis", "Mechanism"]', ["Diagnosis", "Mechanism"], OK),
        ("TREATMENT", ["Treatment"], OK),
        ("**Prevention**, *Transmission*", ["Prevention", "Transmission"], OK),
        ("Treatment; Treatment; Treatment", ["Treatment"], OK),
        (
            "The labels are: 'Diagnosis' and 'Epidemic Forecasting'.",
            ["Diagnosis", "Epidemic Forecasting"],
            OK,
        ),
        ("Mechanism\nAnswer: Treatment", ["Treatment"], OK),
        ("Thinking about diagnosis... Answer: none", [], OK),
        ("None of the labels apply.", [], OK),
        ("none", [], OK),
        ("Case report", ["Case Report"], OK),
        ("Treatment;Prevention;Diagnosis", ["Treatment", "Prevention", "Diagnosis"], OK),
        ("case-report", ["Case Report"], OK),
        ("", [], EMPTY),
        ("This is about viruses.", [], NO_ANSWER),
    ],
)
def test_multilabel_parser(output, expected, status):
    parsed = parse("litcovid", output, {"id": "1", "text": "", "labels": []})
    assert (sorted(parsed[0]), parsed[1]) == (sorted(expected), status)


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
    ("output", "expected", "status"),
    [
        ("D", "D", OK),
        ("D. Apixaban", "D", OK),
        ("(B)", "B", OK),
        ("The answer is C because ...", "C", OK),
        ("**Answer: E**", "E", OK),
        ("I would give apixaban.", "D", OK),
        ("answer: (a)", "A", OK),
        ("A. Aspirin\n\nThe correct answer is D. Apixaban.", "D", OK),
        ("Option B is best.", "B", OK),
        ("D\nD\nD", "D", OK),
        ("B) Heparin", "B", OK),
        ("A 45-year-old patient needs anticoagulation: warfarin", "C", OK),
        ("A. Aspirin\nB. Heparin", None, AMBIGUOUS),
        ("Either heparin or warfarin.", None, AMBIGUOUS),
        ("", None, EMPTY),
        ("I don't know", None, NO_ANSWER),
    ],
)
def test_medqa_parser(output, expected, status):
    parsed = parse("medqa", output, MEDQA_REC)
    assert parsed[:2] == (expected, status)


@pytest.mark.parametrize(
    ("output", "expected", "status"),
    [
        ("yes", "yes", OK),
        ("No.", "no", OK),
        ("Maybe, the evidence is mixed", "maybe", OK),
        ("**YES**", "yes", OK),
        ("'no'", "no", OK),
        ("The answer is no, although some think yes.", "no", OK),
        ("yes or no", None, AMBIGUOUS),
        ("Unclear", None, NO_ANSWER),
        ("", None, EMPTY),
    ],
)
def test_pubmedqa_parser(output, expected, status):
    rec = {"id": "1", "question": "q", "context": "c", "options": {}, "answer": "yes"}
    parsed = parse("pubmedqa", output, rec)
    assert parsed[:2] == (expected, status)


def test_parsers_never_raise_on_odd_input():
    odd = ["\x00", "<span", "</span></span>", "[1, 2", '["a", 3]', "Answer:", "é" * 500, "(" * 50]
    recs = {
        "bc5cdr_chem": NER_REC,
        "chemprot": {"id": "1", "text": "", "label": ""},
        "hoc": {"id": "1", "text": "", "labels": []},
        "medqa": MEDQA_REC,
    }
    for name, rec in recs.items():
        for text in odd:
            parsed = parse(name, text, rec)
            assert parsed[1] in (OK, EMPTY, NO_ANSWER, AMBIGUOUS)


# Every wording the parsers used to misread or reject, as a careful annotator reads it.
HTN = {"A": "Hydrochlorothiazide", "B": "Nifedipine", "C": "Lisinopril", "D": "B12", "E": "x"}
HEPB = {"A": "Hepatitis B", "B": "Hepatitis B vaccine", "C": "Tetanus toxoid", "D": "d", "E": "e"}


@pytest.mark.parametrize(
    ("options", "output", "expected", "status", "rule"),
    [
        (HTN, "The answer is a calcium channel blocker, option B.", "B", OK, "marker"),
        (MEDQA_REC["options"], "The answer is a deficiency of vitamin B12 (D).", "D", OK, "marker"),
        (MEDQA_REC["options"], "The correct answer is e.g. D", "D", OK, "marker"),
        (HEPB, "Answer: Hepatitis B vaccine", "B", OK, "marker"),
        (HEPB, "Answer: Hepatitis B", "A", OK, "marker"),
        (HEPB, "The patient needs the hepatitis B vaccine.", "B", OK, "mention"),
        (MEDQA_REC["options"], "C. Warfarin ... heparin is used acutely.", "C", OK, "opening"),
        (MEDQA_REC["options"], "b", "B", OK, "opening"),
        (MEDQA_REC["options"], "(b)", "B", OK, "opening"),
        (MEDQA_REC["options"], "b.", "B", OK, "opening"),
        (MEDQA_REC["options"], "a", "A", OK, "opening"),
        (MEDQA_REC["options"], "A patient like this needs warfarin.", "C", OK, "mention"),
        (MEDQA_REC["options"], "It is not B; warfarin.", "C", OK, "mention"),
        (MEDQA_REC["options"], "C or D", None, AMBIGUOUS, "opening"),
        (MEDQA_REC["options"], "D. Heparin", None, AMBIGUOUS, "mention"),
    ],
)
def test_medqa_letters_and_option_texts(options, output, expected, status, rule):
    rec = {**MEDQA_REC, "options": options}
    assert parse_output("medqa", output, rec) == (expected, status, rule)


PUBMEDQA_REC = {"id": "1", "question": "q", "context": "c", "options": {}, "answer": "yes"}


@pytest.mark.parametrize(
    ("output", "expected", "status"),
    [
        ("Yes, the results suggest there is no increased risk.", "yes", OK),
        ("No. The study found no association.", "no", OK),
        ("Yes - no adverse events were seen.", "yes", OK),
        ("The study found no association.", None, NO_ANSWER),
        ("Yes/no", None, AMBIGUOUS),
    ],
)
def test_pubmedqa_opening_decision_word_wins_over_later_prose(output, expected, status):
    assert parse_output("pubmedqa", output, PUBMEDQA_REC)[:2] == (expected, status)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Answer:\n- Prevention\n- Diagnosis", ["Prevention", "Diagnosis"]),
        ("Answer:\nTreatment\nMechanism\n\nExplanation: not Diagnosis", ["Treatment", "Mechanism"]),
        ("Labels: Treatment\nReason: mentions Diagnosis too", ["Treatment"]),
        ("The text does not discuss Diagnosis. It is about Treatment.", ["Treatment"]),
        ("Treatment, without any Prevention content", ["Treatment"]),
        ('{"Treatment": 1, "Diagnosis": 0, "Mechanism": 1}', ["Treatment", "Mechanism"]),
        ('{"Treatment": true, "Prevention": false}', ["Treatment"]),
        ("None of the labels apply.", []),
        ("Treatment: yes\nDiagnosis: no", ["Treatment"]),
    ],
)
def test_multilabel_answers_span_lines_and_negations_are_dropped(output, expected):
    prediction, status, _ = parse_output("litcovid", output, {"id": "1", "text": "", "labels": []})
    assert (prediction, status) == (expected, OK)


@pytest.mark.parametrize(
    ("dataset", "output", "expected", "status"),
    [
        ("chemprot", "not CPR:4", None, NO_ANSWER),
        ("chemprot", "No relation", "false", OK),
        ("chemprot", "none", "false", OK),
        ("chemprot", "There is no relationship between them.", "false", OK),
        ("ddi", "false", "DDI-false", OK),
        ("ddi", "No DDI", "DDI-false", OK),
        ("ddi", "no interaction", "DDI-false", OK),
        ("ddi", "DDI-false", "DDI-false", OK),
        ("ddi", "effect", "DDI-effect", OK),
        ("ddi", "mechanism", "DDI-mechanism", OK),
        ("ddi", "Effect, not mechanism.", "DDI-effect", OK),
        ("ddi", "effect or mechanism", None, AMBIGUOUS),
        ("chemprot", "Antagonist.", "CPR:6", OK),
        ("chemprot", "Cardiomyocyte activation by the chemical is a consequence.", None, NO_ANSWER),
    ],
)
def test_relation_negative_class_synonyms_and_type_words(dataset, output, expected, status):
    rec = {"id": "1", "text": "", "label": ""}
    assert parse_output(dataset, output, rec)[:2] == (expected, status)


@pytest.mark.parametrize(
    ("dataset", "output", "expected"),
    [
        ("ddi", "DDI-effect\n\nSentence: @DRUG$ and @DRUG$.\nAnswer: DDI-advise", "DDI-effect"),
        ("chemprot", "Answer: CPR:4\nSentence: @CHEMICAL$ binds @GENE$.\nAnswer: CPR:9", "CPR:4"),
        ("pubmedqa", "yes\n\nAbstract: ...\nQuestion: Is it safe?\nAnswer: no", "yes"),
        ("medqa", "Answer: D\n\nQuestion: Which drug is a P2Y12 inhibitor?\nAnswer: E", "D"),
        ("litcovid", "Treatment\n\nText: A case report.\nAnswer: Case Report", ["Treatment"]),
        ("ddi", "DDI-effect\nUser: next one\nAnswer: DDI-advise", "DDI-effect"),
    ],
)
def test_invented_follow_up_examples_are_cut(dataset, output, expected):
    rec = {**MEDQA_REC, "text": "", "label": "", "labels": []}
    assert parse_output(dataset, output, rec)[:2] == (expected, OK)


def test_every_parse_records_the_rule_that_decided():
    rec = {"id": "1", "text": "", "label": ""}
    assert parse_output("ddi", '{"label": "DDI-int"}', rec)[2] == "json"
    assert parse_output("ddi", "Reasoning...\nAnswer: DDI-int", rec)[2] == "marker"
    assert parse_output("ddi", "DDI-int. The sentence says so.", rec)[2] == "opening"
    assert parse_output("ddi", "I think it is DDI-int.", rec)[2] == "mention"
    assert parse_output("ddi", "No idea.", rec)[2] is None
    ner = parse_output("bc5cdr_chem", f"{SPAN}Cisplatin</span> - induced", NER_REC)
    assert ner[2] == "tagged"


def test_self_consistency_votes_over_samples_and_records_each_rule():
    rec = {"id": "1", "text": "", "label": ""}
    samples = ["Answer: DDI-int", "DDI-effect", "The answer is DDI-int.", "unsure"]
    assert parse_output("ddi", samples, rec, "sc-cot") == ("DDI-int", OK, "vote")


REAL_MEDQA = SHARED_DATA / DATASETS["medqa"].files["test"].path


@pytest.mark.skipif(not REAL_MEDQA.is_file(), reason="real MedQA test file is not present")
def test_every_real_medqa_option_reads_as_itself_also_when_nested_in_another():
    """All 1,273 items: an option given by its text, by its letter and text, or by a marked
    lower-case letter is read as that option, including the items where one option's text
    lies inside another's ("Hepatitis B" / "Hepatitis B vaccine")."""
    items = read_source(REAL_MEDQA, DATASETS["medqa"].files["test"].reader)
    nested = 0
    for rec in items:
        options = rec["options"]
        nested += any(
            a != b and re.search(rf"(?<!\w){re.escape(ta.lower())}(?!\w)", tb.lower())
            for a, ta in options.items()
            for b, tb in options.items()
        )
        for key, text in options.items():
            for output in (f"Answer: {text}", f"{key}. {text}", f"Answer: ({key.lower()})"):
                assert parse_output("medqa", output, rec)[:2] == (key, OK), (output, options)
    assert len(items) == 1273 and nested == 24


TWO_ANSWER_FORMS = (
    "{a} or {b}",
    "{a}\n{b}",
    "{a}, no wait, {b}",
    "Answer: {a} or {b}",
    "The answer is {a}, or maybe {b}.",
    "It is {a}. It could also be {b}.",
    '{{"answer": "{a} or {b}"}}',
)


@pytest.mark.parametrize("dataset", ["chemprot", "ddi", "medqa", "pubmedqa"])
def test_two_different_answers_at_the_same_level_never_parse(dataset):
    labels = DATASETS[dataset].labels
    rec = {**MEDQA_REC, "text": "", "label": ""}
    for a in labels:
        for b in labels:
            if a == b:
                continue
            for form in TWO_ANSWER_FORMS:
                output = form.format(a=a, b=b)
                prediction, status, _ = parse_output(dataset, output, rec)
                assert status == AMBIGUOUS, (output, prediction)


@pytest.mark.parametrize("dataset", sorted(DATASETS.names()))
def test_degenerate_outputs_at_the_token_cap_are_read_within_bounds(dataset):
    """Quantized models loop to the token cap; thousands of sentence starts ("so yes, so yes,
    ...") once cost minutes of CPU per item in the conclusion level, which now reads at most
    the last MAX_SENTENCES sentences of SENTENCE_WINDOW characters each. The time it takes is
    printed by ``python benchmarks/audit_answer_reading.py``."""
    from biomedquant.tasks import answer_reading

    assert answer_reading.MAX_SENTENCES * answer_reading.SENTENCE_WINDOW <= 25_000
    rec = {**MEDQA_REC, **NER_REC, "text": "", "label": "", "labels": []}
    for output in ("so yes, " * 3000, "The chemical inhibits the gene. " * 400, "[" * 5000):
        prediction, status, rule = parse_output(dataset, output, rec)
        assert isinstance(status, str), (output[:30], prediction, rule)
