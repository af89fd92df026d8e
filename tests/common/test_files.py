"""JSON Lines in memory (:class:`biomedquant.common.files.JsonLines`): what a step hands the
next equals what a reader of the written file sees, hash included."""

from __future__ import annotations

import pytest

from biomedquant.common.files import JsonLines, read_jsonl, sha256_file, write_jsonl


def test_records_in_memory_are_those_read_back_from_the_written_file(tmp_path):
    # a tuple (a list on disk), text with U+2028 and U+0085 (not line ends in JSON Lines),
    # a newline inside a value (escaped)
    records = [
        {"id": "a", "prediction": ("x", "y")},
        {"id": "b", "output": "one\u2028two\x85three\nfour"},
    ]
    lines = JsonLines.of(records, tmp_path / "p.jsonl")
    lines.write(tmp_path / "p.jsonl")
    assert lines.records == read_jsonl(tmp_path / "p.jsonl")
    assert lines.records[0]["prediction"] == ["x", "y"]
    assert lines.sha256 == sha256_file(tmp_path / "p.jsonl")
    write_jsonl(tmp_path / "q.jsonl", records)  # the same bytes as the file writer's
    assert sha256_file(tmp_path / "q.jsonl") == lines.sha256


def test_a_file_reads_as_read_jsonl_reads_it_and_hashes_as_stored(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b'{"id": "a"}\r\n\r\n{"id": "b"}\r\n')
    lines = JsonLines.read(path)
    assert lines.records == read_jsonl(path) == [{"id": "a"}, {"id": "b"}]
    assert lines.sha256 == sha256_file(path) and lines.where == str(path)
    path.write_text('{"id": "a"}\n{"id": \n')
    with pytest.raises(ValueError, match="crlf.jsonl:2: not valid JSON"):
        JsonLines.read(path)
