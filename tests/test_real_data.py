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

from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import DATASETS
from biomedquant.io import read_jsonl

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
def prepared(served_shared, tmp_path_factory):
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
        "models": {"unused": {"source": "local", "path": "/nonexistent"}},
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
