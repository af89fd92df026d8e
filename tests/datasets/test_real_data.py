"""The real benchmark files, served over HTTP, through the workflow's download and prepare rules.

Reads ../shared/data/bionlp-benchmarks (never copied into the repository); skips when absent.
"""

from __future__ import annotations

import csv
import functools
import http.server
import threading
from collections import Counter

import pytest

from biomedquant.common.files import read_jsonl
from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import DATASETS

from conftest import SHARED_DATA, copy_workflow, snakemake

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="real benchmark files (../shared/data) are not present"
)


@pytest.fixture(scope="module")
def served_shared():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SHARED_DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def prepared(served_shared, tmp_path_factory, tiny_source):
    """Every split present in ../shared, downloaded and prepared by the workflow's rules."""
    present = [
        (name, split)
        for name, spec in DATASETS.items()
        for split, src in spec.files.items()
        if (SHARED_DATA / src.path).exists()
    ]
    config = {
        "data": {"base_url": served_shared},
        "datasets": list(DATASETS),
        # never loaded (only data targets are built), but a config names a real model folder
        "models": {"unused": {"source": "local", "path": str(tiny_source)}},
        "methods": {"none": {"kind": "none"}},
        "prompts": ["zero-shot"],
    }
    wd = copy_workflow(tmp_path_factory.mktemp("real"), config)
    targets = [f"resources/datasets/{n}/{s}.jsonl" for n, s in present]
    snakemake(wd, *targets)
    return wd, present


def _records(wd, name: str, split: str = "test") -> list[dict]:
    return read_jsonl(wd / f"resources/datasets/{name}/{split}.jsonl")


def test_every_present_split_was_prepared(prepared):
    wd, present = prepared
    assert len(present) >= 18
    for name, split in present:
        assert _records(wd, name, split), (name, split)


def test_official_test_counts(prepared):
    wd, _ = prepared
    bc5 = _records(wd, "bc5cdr_chem")
    assert len(bc5) == 4797 and sum(r["tags"].count("B") for r in bc5) == 5385
    ncbi = _records(wd, "ncbi_disease")
    assert len(ncbi) == 940 and sum(r["tags"].count("B") for r in ncbi) == 960
    assert Counter(r["label"] for r in _records(wd, "ddi")) == {
        "DDI-false": 4782,
        "DDI-effect": 360,
        "DDI-mechanism": 302,
        "DDI-advise": 221,
        "DDI-int": 96,
    }
    assert len(_records(wd, "hoc")) == 315
    assert len(_records(wd, "litcovid")) == 2500
    assert Counter(r["answer"] for r in _records(wd, "medqa")) == {
        "A": 273,
        "B": 277,
        "C": 252,
        "D": 269,
        "E": 202,
    }
    assert Counter(r["answer"] for r in _records(wd, "pubmedqa")) == {
        "yes": 276,
        "no": 169,
        "maybe": 55,
    }


def _tsv_rows(path) -> int:
    with path.open(encoding="utf-8", newline="") as fh:
        return sum(1 for _ in csv.DictReader(fh, delimiter="\t"))


def test_chemprot_dev_and_sample_parse_without_loss(prepared):
    wd, _ = prepared
    dev = SHARED_DATA / DATASETS["chemprot"].files["dev"].path
    assert len(_records(wd, "chemprot", "dev")) == _tsv_rows(dev)
    sample = SHARED_DATA / "sample200" / "chemprot-sample200.tsv"
    records = read_source(sample, "re_tsv")
    assert len(records) == _tsv_rows(sample) == 200
    assert {r["label"] for r in records} <= set(DATASETS["chemprot"].labels)


def _evaluated(wd, present):
    """(dataset, split) pairs whose file is an evaluation split here: test, or ChemProt dev."""
    return [(n, s) for n, s in present if s == "test" or (n == "chemprot" and s == "dev")]


def test_gold_as_prediction_scores_one_on_every_dataset(prepared):
    from biomedquant.tasks import get_task

    wd, present = prepared
    evaluated = _evaluated(wd, present)
    assert {n for n, _ in evaluated} == set(DATASETS)
    for name, split in evaluated:
        task = get_task(DATASETS[name].task)
        gold = [task.gold(r) for r in _records(wd, name, split)]
        assert all(v == 1.0 for v in task.metrics(gold, gold).values()), name


def test_dropping_every_third_entity_gives_the_expected_scores(prepared):
    from biomedquant.tasks.metrics import iob2_spans, ner_scores

    wd, _ = prepared
    for name in ("bc5cdr_chem", "ncbi_disease"):
        gold = [r["tags"] for r in _records(wd, name)]
        pred, k, kept, total = [], 0, 0, 0
        for tags in gold:
            new = list(tags)
            for start, end in sorted(iob2_spans(tags)):
                total += 1
                if k % 3 == 2:  # drop the 3rd, 6th, 9th ... entity of the test set
                    new[start:end] = ["O"] * (end - start)
                else:
                    kept += 1
                k += 1
            pred.append(new)
        recall = kept / total
        s = ner_scores(gold, pred)
        assert s["precision"] == 1.0
        assert s["recall"] == pytest.approx(recall)
        assert s["f1"] == pytest.approx(2 * recall / (1 + recall))
        assert total == {"bc5cdr_chem": 5385, "ncbi_disease": 960}[name]


def test_relabelling_every_tenth_item_gives_the_expected_scores(prepared):
    sk = pytest.importorskip("sklearn.metrics")
    from biomedquant.tasks.metrics import single_label_scores

    wd, _ = prepared
    for name, split, field in (
        ("ddi", "test", "label"),
        ("chemprot", "dev", "label"),
        ("medqa", "test", "answer"),
        ("pubmedqa", "test", "answer"),
    ):
        labels = DATASETS[name].labels
        gold = [r[field] for r in _records(wd, name, split)]
        pred = [
            labels[(labels.index(g) + 1) % len(labels)] if i % 10 == 0 else g
            for i, g in enumerate(gold)
        ]
        changed = len(range(0, len(gold), 10))
        s = single_label_scores(gold, pred)
        assert s["accuracy"] == pytest.approx(1 - changed / len(gold))
        assert s["micro_f1"] == pytest.approx(1 - changed / len(gold))
        assert s["macro_f1"] == pytest.approx(sk.f1_score(gold, pred, average="macro"))
