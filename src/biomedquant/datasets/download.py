"""Fetch benchmark source files: streaming HTTP with retries, or a local mirror; always hashed.

The file is written to a temporary name and renamed only once complete and verified, so a
failed or interrupted download never leaves a file behind that a later run would trust.
"""

from __future__ import annotations

import logging
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from biomedquant.io import atomic_path, sha256_file

log = logging.getLogger(__name__)

DEMO_SOURCE = "demo"


class ChecksumError(RuntimeError):
    """A downloaded file's SHA-256 differs from the pinned one."""


class DownloadError(RuntimeError):
    """A file could not be fetched after all retries."""


@dataclass
class FetchResult:
    path: str
    url: str
    sha256: str
    expected_sha256: str | None
    verified: bool
    bytes: int


def demo_root() -> Path:
    """The packaged demo mirror: same relative paths as upstream, small files of our own."""
    return Path(__file__).resolve().parent.parent / "demo_data"


def demo_manifest() -> dict[str, str]:
    """relative path -> SHA-256 of the packaged demo files (``demo_data/MANIFEST.tsv``)."""
    out = {}
    for line in (demo_root() / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, _size, rel = line.split("\t")
            out[rel] = digest
    return out


def source_url(base_url: str, relpath: str) -> str:
    """Join a base URL (http(s)://, file:// or a folder) and an upstream relative path."""
    if base_url == DEMO_SOURCE:
        return (demo_root() / relpath).as_uri()
    if "://" not in base_url:
        return (Path(base_url).resolve() / relpath).as_uri()
    quoted = urllib.parse.quote(relpath, safe="/")
    return base_url.rstrip("/") + "/" + quoted


def _stream(url: str, dest: Path, timeout: float, chunk: int = 1 << 20) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "biomedquant"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, dest.open("wb") as fh:
        shutil.copyfileobj(resp, fh, chunk)


def fetch_file(
    base_url: str,
    relpath: str,
    dest: str | Path,
    expected_sha256: str | None,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> FetchResult:
    """Download ``relpath`` under ``base_url`` to ``dest`` and verify its SHA-256.

    ``expected_sha256=None`` means the hash could not be pinned; the observed hash is returned
    so the caller records it in the provenance, and a warning says the file is unverified.
    """
    url = source_url(base_url, relpath)
    dest = Path(dest)
    last_err: Exception | None = None
    with atomic_path(dest) as tmp:
        for attempt in range(1, retries + 1):
            try:
                _stream(url, tmp, timeout)
                break
            except (urllib.error.URLError, OSError, TimeoutError) as err:
                last_err = err
                log.warning("download %s failed (attempt %d/%d): %s", url, attempt, retries, err)
                if attempt < retries:
                    time.sleep(backoff * 2 ** (attempt - 1))
        else:
            raise DownloadError(f"could not download {url} after {retries} attempts: {last_err}")
        actual = sha256_file(tmp)
        if expected_sha256 is not None and actual != expected_sha256:
            raise ChecksumError(
                f"checksum mismatch for {url}: expected sha256 {expected_sha256}, "
                f"got {actual}; the file was not kept"
            )
        size = tmp.stat().st_size
    if expected_sha256 is None:
        log.warning("%s has no pinned checksum; recording the observed sha256 %s", url, actual)
    return FetchResult(str(dest), url, actual, expected_sha256, expected_sha256 is not None, size)
