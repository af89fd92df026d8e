"""Downloads against real local HTTP servers (127.0.0.1 only) that cut, trickle and fail.

Each server misbehaves in one way a real one does: a body cut short of its Content-Length, a
connection closed mid-transfer, a byte every few tenths of a second, errors, a changed file.
Every case is bounded in time: per-read timeouts and per-file deadlines of a second or two.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.servers import BODY, misbehaving_server

from biomedquant.common.files import _host_tag, atomic_path, read_json
from biomedquant.datasets.checksum_lock import ChecksumLock
from biomedquant.datasets.download import (
    ChecksumError,
    DownloadError,
    demo_root,
    download_split,
    fetch_file,
    redact_url,
)
from biomedquant.datasets.prepare import DatasetValidationError, prepare_split
from biomedquant.datasets.registry import get_dataset


@pytest.fixture
def server(tmp_path):
    with misbehaving_server(tmp_path / "served") as srv:
        yield srv


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_full_transfer_is_kept(server, tmp_path):
    res = fetch_file(server.url, "full/x.bin", tmp_path / "x.bin", None, backoff=0.01)
    assert (tmp_path / "x.bin").read_bytes() == BODY and res.bytes == len(BODY)


def test_a_transfer_cut_short_of_its_length_is_retried_then_fails(server, tmp_path):
    with pytest.raises(DownloadError, match="after 3 attempts: transfer cut short: 500 of 1000"):
        fetch_file(server.url, "cut/x.bin", tmp_path / "x.bin", None, backoff=0.01, timeout=2)
    assert server.hits["cut"] == 3
    assert not (tmp_path / "x.bin").exists() and _leftovers(tmp_path) == []


def test_a_transfer_cut_once_is_retried_and_completes(server, tmp_path):
    fetch_file(server.url, "cut-once/x.bin", tmp_path / "x.bin", None, backoff=0.01, timeout=2)
    assert server.hits["cut-once"] == 2 and (tmp_path / "x.bin").read_bytes() == BODY


def test_a_server_error_is_retried(server, tmp_path):
    fetch_file(server.url, "fail-once/x.bin", tmp_path / "x.bin", None, backoff=0.01)
    assert server.hits["fail-once"] == 2
    with pytest.raises(DownloadError, match="after 2 attempts: HTTP 503"):
        fetch_file(server.url, "fail/x.bin", tmp_path / "y.bin", None, retries=2, backoff=0.01)


def test_a_missing_file_fails_at_once(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_file(server.url, "missing/x.bin", tmp_path / "x.bin", None, backoff=0.01)
    assert server.hits["missing"] == 1  # a 404 does not improve by asking again


def test_a_trickling_server_meets_the_per_file_deadline(server, tmp_path):
    """One byte every 0.2 s never trips the 5 s per-read timeout; the 1 s deadline ends it."""
    start = time.monotonic()
    with pytest.raises(DownloadError, match="not complete after the 1 s deadline"):
        fetch_file(
            server.url, "trickle/x.bin", tmp_path / "x.bin", None,
            retries=2, backoff=0.01, timeout=5, deadline=1,
        )  # fmt: skip
    elapsed = time.monotonic() - start
    print(f"trickle: gave up after {elapsed:.1f} s (2 attempts, 1 s deadline each)")
    assert elapsed < 30  # bounded: without the deadline this transfer takes 200 s per try
    assert not (tmp_path / "x.bin").exists() and _leftovers(tmp_path) == []


def test_credentials_in_the_url_are_never_logged(server, tmp_path, caplog):
    assert redact_url("https://ann:s3cret@host/a?b=1") == "https://***@host/a?b=1"
    assert redact_url("https://host/a") == "https://host/a"
    base = server.url.replace("http://", "http://ann:s3cret@")
    with pytest.raises(DownloadError) as err:
        fetch_file(base, "fail/x.bin", tmp_path / "x.bin", None, retries=2, backoff=0.01)
    res = fetch_file(base, "full/x.bin", tmp_path / "x.bin", None, backoff=0.01)
    assert "s3cret" not in str(err.value) and "s3cret" not in caplog.text
    assert "s3cret" not in res.url and "***@127.0.0.1" in res.url
    assert server.auth[-1] == "Basic " + base64.b64encode(b"ann:s3cret").decode()  # still used


def _serve_chemprot(server, text: str) -> str:
    """The demo ChemProt test file at its upstream path: the registry pins no hash for it."""
    rel = get_dataset("chemprot").files["test"].path
    assert get_dataset("chemprot").files["test"].sha256 is None
    (server.root / rel).parent.mkdir(parents=True, exist_ok=True)
    (server.root / rel).write_text(text, encoding="utf-8")
    return rel


def test_a_file_without_pinned_hash_is_locked_on_first_download(server, tmp_path):
    rel = _serve_chemprot(server, (demo_root() / get_dataset("chemprot").files["test"].path)
                          .read_text(encoding="utf-8"))  # fmt: skip
    lock = tmp_path / "raw" / "checksums.lock"
    base = f"{server.url}/tree/"
    first = download_split("chemprot", "test", base, tmp_path / "a.raw", lock_path=lock)
    entry = ChecksumLock(lock).get(rel)
    assert entry is not None and entry.sha256 == first["sha256"]
    assert "recorded in" in first["hash_source"] and first["verified"] is False
    again = download_split("chemprot", "test", base, tmp_path / "b.raw", lock_path=lock)
    assert again["verified"] is True and again["sha256"] == first["sha256"]
    # Upstream changes (or a server without Content-Length cuts the file): refused.
    (server.root / rel).write_text("index\tsentence\tlabel\n", encoding="utf-8")
    with pytest.raises(ChecksumError, match=f"expected sha256 {entry.sha256} \\(recorded in"):
        download_split("chemprot", "test", base, tmp_path / "c.raw", lock_path=lock)
    assert not (tmp_path / "c.raw").exists()
    assert len(lock.read_text().splitlines()) == 3  # two comment lines and one entry


def test_prepare_refuses_a_full_test_split_of_the_wrong_size(tmp_path):
    """A local mirror (not the demo) whose HoC test file is cut short: prepare names both
    counts instead of scoring 10 items as if they were the benchmark's 315."""
    mirror = tmp_path / "mirror"
    rel = get_dataset("hoc").files["test"].path
    (mirror / rel).parent.mkdir(parents=True)
    shutil.copy2(demo_root() / rel, mirror / rel)
    raw = tmp_path / "hoc.raw"
    prov = fetch_file(str(mirror), rel, raw, None)
    (tmp_path / "hoc.raw.provenance.json").write_text('{"demo": false}')
    with pytest.raises(DatasetValidationError, match="items, but the official test set has 315"):
        prepare_split("hoc", "test", raw, tmp_path / "hoc.jsonl")
    assert prov.bytes > 0 and not (tmp_path / "hoc.jsonl").exists()
    # The packaged demo holds small samples on purpose: exempt.
    download_split("hoc", "test", "demo", tmp_path / "demo.raw")
    assert prepare_split("hoc", "test", tmp_path / "demo.raw", tmp_path / "d.jsonl")["n_source"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_download_leaves_no_temporary_file(server, tmp_path, sig):
    """SIGTERM is what SLURM sends at a time limit and Snakemake on cancel; SIGINT is Ctrl-C."""
    rel = _serve_chemprot(server, "x" * 200)
    server.trickle_s = 0.05
    out = tmp_path / "raw" / "chemprot" / "test.raw"
    proc = subprocess.Popen(
        [sys.executable, "-m", "biomedquant.cli", "download", "--dataset", "chemprot",
         "--split", "test", "--base-url", f"{server.url}/trickle/", "--out", str(out),
         "--lock", str(tmp_path / "checksums.lock")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a foreground process, as Ctrl-C reaches it: a process started with SIGINT ignored
        # (a background job; or an earlier test of this session left it ignored) keeps it
        # ignored, as Python does
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.parent.is_dir() and _leftovers(out.parent)):
        time.sleep(0.05)
    assert _leftovers(out.parent), "the download never started"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err and "Traceback" not in err
    assert _leftovers(out.parent) == [] and not out.exists() and rel


def test_a_stale_temporary_of_a_killed_writer_is_removed_on_the_next_start(tmp_path):
    """kill -9 runs no handler: the next writer of the same target removes what it left."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = _host_tag()
    target = tmp_path / "a.json"
    stale = tmp_path / f".a.json.{host}-{dead.pid}-abcd1234.tmp"
    stale.write_text("half")
    stale_dir = tmp_path / f".a.json.{host}-{dead.pid}-dir12345.tmp"
    stale_dir.mkdir()
    keep = [
        tmp_path / f".a.json.{host}-{os.getppid()}-live1234.tmp",  # a writer still running
        tmp_path / f".a.json.0000abcd-{dead.pid}-other123.tmp",  # another host's: unknown
        tmp_path / f".a.json.provenance.json.{host}-{dead.pid}-abcd1234.tmp",  # another target
    ]
    for path in keep:
        path.write_text("busy")
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert not stale.exists() and not stale_dir.exists()
    assert all(p.exists() for p in keep) and read_json(target) == {}


def _download_cli(base_url: str, out: Path, lock: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "download", "--dataset", "chemprot",
         "--split", "test", "--base-url", base_url, "--out", str(out), "--lock", str(lock)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_credentials_never_follow_a_redirect_to_another_host(server, tmp_path):
    """A mirror given as ``http://user:token@mirror/`` that redirects to another host (a CDN,
    or a host taken over): the file arrives, the token stays with the mirror (urllib would
    copy the Authorization header to any host). A redirect on the mirror itself keeps it."""
    genuine = (demo_root() / get_dataset("chemprot").files["test"].path).read_bytes()
    with misbehaving_server(tmp_path / "cdn") as cdn:
        rel = get_dataset("chemprot").files["test"].path
        (cdn.root / rel).parent.mkdir(parents=True)
        (cdn.root / rel).write_bytes(genuine)
        server.redirect_to = f"{cdn.url}/tree"
        base = server.url.replace("http://", "http://ann:s3cret@") + "/redirect/"
        proc = _download_cli(base, tmp_path / "raw" / "a.raw", tmp_path / "checksums.lock")
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "raw" / "a.raw").read_bytes() == genuine
        token = "Basic " + base64.b64encode(b"ann:s3cret").decode()
        assert server.auth == [token] and cdn.auth == [None]  # sent to the mirror only
        # the same host redirecting to itself: the credentials go along, as curl's do
        _serve_chemprot(server, genuine.decode("utf-8"))
        server.redirect_to = f"{server.url}/tree"
        proc = _download_cli(base, tmp_path / "raw" / "b.raw", tmp_path / "checksums.lock")
        assert proc.returncode == 0, proc.stderr
        assert server.auth[-2:] == [token, token] and "s3cret" not in proc.stderr


def test_an_html_page_served_as_success_is_refused_and_never_locked(server, tmp_path):
    """A login or error page with status 200 in place of a file whose hash nothing pins: one
    line, exit 1, nothing kept and nothing recorded in the lock, so the genuine file is
    accepted on the next try (it used to be pinned, and the genuine file refused)."""
    rel = _serve_chemprot(server, "unused")
    genuine = (demo_root() / rel).read_text(encoding="utf-8")
    lock, out = tmp_path / "raw" / "checksums.lock", tmp_path / "raw" / "chemprot" / "test.raw"
    proc = _download_cli(f"{server.url}/html/", out, lock)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "the server sent an HTML page, not the .tsv file" in proc.stderr
    assert "nothing was kept or recorded" in proc.stderr
    assert not out.exists() and _leftovers(out.parent) == []
    assert ChecksumLock(lock).get(rel) is None
    _serve_chemprot(server, genuine)
    proc = _download_cli(f"{server.url}/tree/", out, lock)
    assert proc.returncode == 0, proc.stderr
    assert ChecksumLock(lock).get(rel).sha256 == read_json(f"{out}.provenance.json")["sha256"]
