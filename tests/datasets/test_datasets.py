"""Readers, registry, download (real HTTP against a local server) and preparation."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections import Counter

import pytest

from biomedquant.common.files import read_json, read_jsonl, sha256_file
from biomedquant.datasets.download import (
    ChecksumError,
    DownloadError,
    demo_manifest,
    demo_root,
    download_split,
    fetch_file,
)
from biomedquant.datasets.prepare import (
    DatasetValidationError,
    prepare_split,
    stratified_sample,
    validate_records,
    write_study_data,
)
from biomedquant.datasets.readers import FormatError, read_conll, read_source
from biomedquant.datasets.registry import DATASETS, get_dataset

from conftest import SHARED_DATA


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a copy of the demo mirror."""
    root = tmp_path / "www"
    shutil.copytree(demo_root(), root)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_every_dataset_has_a_demo_test_split_read_by_its_reader():
    for spec in DATASETS.values():
        src = spec.files["test"]
        records = read_source(demo_root() / src.path, src.reader)
        assert 8 <= len(records) <= 12, spec.name
        validate_records(spec, records, spec.name)


def test_demo_record_shapes():
    ner = read_source(demo_root() / DATASETS["bc5cdr_chem"].files["test"].path, "conll")
    assert all(len(r["tokens"]) == len(r["tags"]) for r in ner)
    assert any("B" in r["tags"] for r in ner) and any("B" not in r["tags"] for r in ner)
    medqa = read_source(demo_root() / DATASETS["medqa"].files["test"].path, "medqa_tsv")
    assert all(sorted(r["options"]) == list("ABCDE") for r in medqa)
    pqa = read_source(demo_root() / DATASETS["pubmedqa"].files["test"].path, "pubmedqa_tsv")
    assert {r["answer"] for r in pqa} == {"yes", "no", "maybe"}
    assert all(r["context"] for r in pqa)


def test_conll_reader_rejects_a_bad_tag(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Aspirin\tB\nworks\tX\n\n")
    with pytest.raises(FormatError, match=r"bad.tsv:2"):
        read_conll(bad)


def test_validation_names_an_unknown_label():
    spec = get_dataset("ddi")
    with pytest.raises(DatasetValidationError, match="DDI-unknown"):
        validate_records(spec, [{"id": "x", "text": "a @DRUG$ b", "label": "DDI-unknown"}], "t")
    with pytest.raises(DatasetValidationError, match="duplicate id"):
        rec = {"id": "x", "text": "t", "label": "DDI-int"}
        validate_records(spec, [rec, rec], "t")


def test_http_download_verifies_checksum(http_root, tmp_path):
    root, url = http_root
    rel = DATASETS["ddi"].files["test"].path  # brackets in the path must be URL-quoted
    res = fetch_file(url, rel, tmp_path / "ddi.raw", demo_manifest()[rel])
    assert res.verified and res.sha256 == sha256_file(root / rel)
    assert (tmp_path / "ddi.raw").read_bytes() == (root / rel).read_bytes()


def test_one_changed_byte_fails_and_leaves_nothing(http_root, tmp_path):
    root, url = http_root
    rel = DATASETS["hoc"].files["test"].path
    data = bytearray((root / rel).read_bytes())
    data[100] ^= 1
    (root / rel).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="expected sha256") as err:
        fetch_file(url, rel, tmp_path / "hoc.raw", demo_manifest()[rel])
    assert rel.split("/")[-1] in str(err.value)
    assert list(tmp_path.glob("*hoc*")) == []


def test_unreachable_url_fails_after_retries_naming_it(tmp_path):
    url = "http://127.0.0.1:9/"  # discard port: nothing listens
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1:9/.*after 2 attempts"):
        fetch_file(url, "a/b.tsv", tmp_path / "b.raw", None, retries=2, backoff=0.01, timeout=2)
    assert list(tmp_path.iterdir()) == []


def test_download_and_prepare_write_provenance(tmp_path):
    raw = tmp_path / "medqa.raw"
    prov = download_split("medqa", "test", "demo", raw)
    assert prov["verified"] and read_json(f"{raw}.provenance.json")["sha256"] == prov["sha256"]
    out = tmp_path / "medqa.jsonl"
    p = prepare_split("medqa", "test", raw, out)
    assert p["n_written"] == len(read_jsonl(out)) == 10


def test_stratified_sample_is_seeded_and_proportional():
    spec = get_dataset("ddi")
    recs = [
        {"id": str(i), "text": "t", "label": "DDI-false" if i % 4 else "DDI-int"}
        for i in range(100)
    ]
    a = stratified_sample(spec, recs, 20, seed=1)
    assert a == stratified_sample(spec, recs, 20, seed=1)
    assert a != stratified_sample(spec, recs, 20, seed=2)
    assert Counter(r["label"] for r in a) == {"DDI-false": 15, "DDI-int": 5}


needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="real benchmark files (../shared/data) are not present"
)


@needs_shared
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_pinned_hashes_match_the_real_files(name):
    for src in DATASETS[name].files.values():
        path = SHARED_DATA / src.path
        if src.sha256 and path.exists():
            assert sha256_file(path) == src.sha256, src.path


def test_re_reader_keeps_a_pair_with_two_relations(tmp_path):
    path = tmp_path / "re.tsv"
    path.write_text(
        "index\tsentence\tlabel\r\n"
        "1.T1.T2\t@CHEMICAL$ is both an agonist and antagonist of @GENE$.\tCPR:5\r\n"
        "1.T1.T2\t@CHEMICAL$ is both an agonist and antagonist of @GENE$.\tCPR:6\r\n"
    )
    records = read_source(path, "re_tsv")
    assert [(r["id"], r["label"]) for r in records] == [
        ("1.T1.T2", "CPR:5"),
        ("1.T1.T2#2", "CPR:6"),
    ]
    validate_records(get_dataset("chemprot"), records, "re.tsv")


def test_cli_prints_the_registry(capsys):
    from biomedquant.cli import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for spec in DATASETS.values():
        line = next(x for x in out.splitlines() if x.startswith(spec.name))
        assert spec.task in line and str(spec.test_size) in line and spec.licence in line


def test_study_data_records_each_prepared_split_once_with_its_hash(tmp_path):
    """The one input of the jobs that read every dataset: each split once, hashed, so that a
    re-prepared split changes it; a missing split is named."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"id": 1}\n')
    b.write_text('{"id": 2}\n{"id": 3}\n')
    record = write_study_data(tmp_path / "study.json", [a, b, a])
    assert record == read_json(tmp_path / "study.json")
    assert [f["path"] for f in record["files"]] == [str(a), str(b)]
    assert record["files"][1] == {"path": str(b), "sha256": sha256_file(b), "bytes": 20}
    with pytest.raises(FileNotFoundError, match="missing.jsonl: prepared split not found"):
        write_study_data(tmp_path / "x.json", [tmp_path / "missing.jsonl"])
