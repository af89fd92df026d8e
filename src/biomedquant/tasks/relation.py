"""Relation extraction: one label for the pair of masked entities in a sentence.

Read by the reading rule of :mod:`.answer_reading`. Besides the labels themselves (any case,
":", "-", "_" or a space between their parts: "cpr-4", "ddi_advise"), these wordings count:

- The label's other wordings from the dataset's table of facts
  (:attr:`~biomedquant.datasets.registry.DatasetSpec.label_synonyms`): the relation names of
  the annotation guidelines and the verbs of the prompt's definitions ("@CHEMICAL$ inhibits
  @GENE$" is CPR:4, "acts as an agonist" CPR:5, "a pharmacokinetic interaction"
  DDI-mechanism, "they do not interact" DDI-false), wherever they stand.
- Statements of no relation name the negative class (ChemProt ``false``, DDI ``DDI-false``):
  "no relation", "no relationship", "no interaction", "no DDI", "no CPR", also with up to two
  words in between ("no known drug interaction"), besides the table's "none", "false" ...
- Bare type words (``label_bare_words``), when the answer is one (the output or its marked
  answer opens with it, and no other type follows as an alternative): DDI "effect",
  "mechanism", "advice"; ChemProt "activation", "inhibition", "products". Inside prose they
  describe rather than answer ("cardiomyocyte activation by the chemical ...").
- A label's definition as the prompt lists it ("the chemical downregulates or inhibits the
  gene/protein"): a model that echoes the definition names that label.
- A JSON flag and type (``{"interaction": true, "type": "advise"}``; a false flag is the
  negative class).

A label under negation ("not CPR:4", "rather than DDI-effect") is not an answer.
"""

from __future__ import annotations

import re
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DatasetSpec
from biomedquant.tasks.answer_reading import (
    ChoiceReader,
    find_phrases,
    read_choice,
    unnegated,
)
from biomedquant.tasks.metrics import single_label_scores
from biomedquant.tasks.text import word_pattern

# "No <up to two words> relation/interaction ...": how any relation task states its negative
# class, whatever the dataset calls its relations.
NO_RELATION_STATEMENT = re.compile(
    r"(?<![\w-])no\s+(?:[\w-]+\s+){0,2}?(?:relations?|relationships?|interactions?|ddi|cpr)"
    r"(?![\w-])|(?<![\w-])(?:ddi|cpr)[\s:_-]*false(?![\w-])",
    re.IGNORECASE,
)


def description(spec: DatasetSpec) -> str:
    options = "\n".join(
        f"- {lab}: {spec.label_help[lab]}" if lab in spec.label_help else f"- {lab}"
        for lab in spec.labels
    )
    return (
        "Each sentence below comes from a biomedical article; the two entities of interest are "
        f"masked as {spec.extra.get('entity_markers', 'markers')}. Classify the relation "
        f"between them with exactly one of these labels:\n{options}\n"
        "Answer with the label only."
    )


def render_input(spec: DatasetSpec, rec: Record) -> str:
    return f"Sentence: {rec['text']}"


def headers(spec: DatasetSpec) -> tuple[str, ...]:
    """The line that starts the next example in the prompt format."""
    return ("Sentence:",)


def render_answer(spec: DatasetSpec, rec: Record) -> str:
    return rec["label"]


def negative_label(spec: DatasetSpec) -> str | None:
    """The label of the negative class (the one that says there is no relation)."""
    return next((lab for lab in spec.labels if lab.lower().endswith("false")), None)


def _definition_pattern(text: str) -> re.Pattern[str]:
    """A label definition as a whole phrase: any case and spacing, "the" optional at its start."""
    words = [re.escape(w) for w in text.split()]
    if words and words[0].lower() == "the":
        words[0] = "(?:the\\s+)?"
        body = words[0] + r"\s+".join(words[1:])
    else:
        body = r"\s+".join(words)
    return re.compile(rf"(?<![\w-]){body}(?![\w-])", re.IGNORECASE)


def reader(spec: DatasetSpec) -> ChoiceReader:
    """What names a relation label of ``spec`` (see the module docstring)."""
    negative = negative_label(spec)
    formal = [(lab, word_pattern(lab)) for lab in spec.labels]
    formal += [
        (lab, word_pattern(wording))
        for lab, wordings in spec.label_synonyms.items()
        for wording in wordings
    ]
    # A label's definition as the prompt lists it, echoed as the answer ("the chemical
    # downregulates or inhibits the gene/protein"), names that label.
    formal += [(lab, _definition_pattern(text)) for lab, text in spec.label_help.items()]
    if negative is not None:
        formal.append((negative, NO_RELATION_STATEMENT))
    types = [
        (lab, word_pattern(word)) for lab, words in spec.label_bare_words.items() for word in words
    ]

    def lead(line: str) -> tuple[str, int] | None:
        """The longest wording at the line's start (a label or its wordings before bare words),
        found by anchored matches: only the start matters, and lines can be long."""
        for phrases in (formal, types):
            ends = [(m.end(), lab) for lab, pat in phrases if (m := pat.match(line))]
            if ends:
                end, lab = max(ends, key=lambda hit: hit[0])
                return lab, end
        return None

    def answer_line(line: str) -> str | None:
        hit = lead(line)
        return hit[0] if hit and not re.sub(r"\W", "", line[hit[1] :]) else None

    def mentions(text: str) -> list[tuple[int, str]]:
        return unnegated(text, find_phrases(text, formal))

    return ChoiceReader(lead=lead, answer_line=answer_line, mentions=mentions, negative=negative)


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[str | None, str, str | None]:
    reading = read_choice(text, reader(spec), headers(spec))
    return reading.prediction, reading.status, reading.rule


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return single_label_scores(gold, pred)
