"""Held-out perplexity reads each sentence once, whatever entity pair relation extraction made
of it (datasets/texts.py's ``distinct_sentences``, which ``run_perplexity`` reads through)."""

from __future__ import annotations

import re

from biomedquant.common.files import write_jsonl
from biomedquant.datasets.registry import DATASETS
from biomedquant.datasets.texts import (
    ENTITY_MARKER,
    _tokens,
    distinct_sentences,
    distinct_texts,
    same_sentence,
)

# One DDI sentence (the benchmark's own five-shot prompt shows two of its pairs): only the
# pair's two drugs are masked, the others stay named, so the texts differ by names too.
DDI_PAIRS = [
    "@DRUG$: Plasma concentrations of @DRUG$ decreased approximately 25% when colestipol and "
    "atorvastatin were coadministered.",
    "@DRUG$: Plasma concentrations of atorvastatin decreased approximately 25% when "
    "@DRUG$ and atorvastatin were coadministered.",
    "@DRUG$: Plasma concentrations of atorvastatin decreased approximately 25% when "
    "colestipol and @DRUG$ were coadministered.",
    "Colestipol: Plasma concentrations of @DRUG$ decreased approximately 25% when @DRUG$ and "
    "atorvastatin were coadministered.",
]
OTHER = (
    "Administration of @DRUG$ concomitantly with @DRUG$ in five normal volunteers resulted in "
    "increased propranolol levels."
)


def test_the_pairs_of_one_sentence_are_one_text_the_first():
    texts = [DDI_PAIRS[0], OTHER, *DDI_PAIRS[1:], DDI_PAIRS[0]]
    assert distinct_sentences(texts) == [DDI_PAIRS[0], OTHER]


def test_chemprot_pairs_sharing_or_not_sharing_a_mention_are_one_sentence():
    pairs = [
        "@CHEMICAL$ and ritonavir inhibited @GENE$ and CYP2D6 in liver microsomes.",
        "Ketoconazole and @CHEMICAL$ inhibited @GENE$ and CYP2D6 in liver microsomes.",
        "@CHEMICAL$ and ritonavir inhibited CYP3A4 and @GENE$ in liver microsomes.",
        "Ketoconazole and @CHEMICAL$ inhibited CYP3A4 and @GENE$ in liver microsomes.",
    ]
    assert distinct_sentences(pairs) == pairs[:1]


def test_a_multi_word_mention_and_punctuation_on_the_marker():
    a = "Co-administration of 5-fluorouracil with @DRUG$'s active metabolite raised @DRUG$."
    b = "Co-administration of @DRUG$ with sodium valproate's active metabolite raised @DRUG$."
    assert same_sentence(_tokens(a), _tokens(b))
    assert distinct_sentences([a, b]) == [a]


def test_different_sentences_stay_apart():
    a = "@DRUG$ increased the plasma levels of @DRUG$."
    longer = "@DRUG$ increased the plasma levels of @DRUG$ in patients with renal failure."
    other_word = "@DRUG$ decreased the plasma levels of @DRUG$."
    assert distinct_sentences([a, longer, other_word]) == [a, longer, other_word]
    # a marker stands for one mention, not for a stretch of another sentence
    far = "Warfarin " + "and more words " * 10 + "increased the plasma levels of @DRUG$."
    assert not same_sentence(_tokens(a), _tokens(far))
    assert same_sentence(_tokens(a), _tokens(far), max_span=40)


def test_texts_without_markers_are_deduplicated_as_texts_only():
    texts = ["Aspirin inhibits COX-1 .", "Ibuprofen inhibits COX-1 .", "Aspirin inhibits COX-1 ."]
    assert distinct_sentences(texts) == texts[:2]


def test_a_sentence_listed_out_of_order_is_still_found():
    # pairs of many sentences, the file shuffled: the shingle index finds the first copy
    sentences = [
        f"In study {k}, @DRUG$ given with @DRUG$ changed the clearance of theophylline by "
        f"{k} percent."
        for k in range(30)
    ]
    seconds = [
        s.replace("@DRUG$ given", "digoxin given").replace("theophylline", "@DRUG$")
        for s in sentences
    ]
    assert distinct_sentences(sentences + seconds[::-1]) == sentences


def test_every_marker_the_registry_declares_is_one_the_dedup_reads():
    declared = [
        marker
        for spec in DATASETS.values()
        for marker in re.findall(r"@\S+?\$", spec.extra.get("entity_markers", ""))
    ]
    assert {"@CHEMICAL$", "@GENE$", "@DRUG$"} <= set(declared)
    assert all(ENTITY_MARKER.fullmatch(m) for m in declared)


def test_distinct_texts_reads_each_split_by_sentence(tmp_path):
    ddi, hoc = tmp_path / "ddi.jsonl", tmp_path / "hoc.jsonl"
    write_jsonl(
        ddi,
        [
            {"id": f"p{i}", "text": t, "label": "DDI-false"}
            for i, t in enumerate([*DDI_PAIRS, OTHER])
        ],
    )
    write_jsonl(hoc, [{"id": "h0", "text": "An abstract."}, {"id": "h1", "text": "  "}])
    assert distinct_texts([ddi, hoc]) == {
        str(ddi): [DDI_PAIRS[0], OTHER],
        str(hoc): ["An abstract."],
    }
