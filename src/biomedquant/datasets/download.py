"""Download benchmark source files: streaming HTTP with retries, or a local mirror; always hashed.

:func:`download_split` (the workflow's ``download_dataset`` step) fetches the source file of
one split of one dataset, checks it against the registry's pinned hash (or the checksum lock
for a file without one) and writes its provenance beside it.

The file is written to a temporary name and renamed only once complete and verified, so a
failed or interrupted download never leaves a file behind that a later run would trust.

A transfer is complete only when it has as many bytes as the server announced
(``Content-Length``); a short one is retried like any network error. Each read has a timeout
and each file an overall deadline, so a server that trickles a byte every few seconds cannot
stall a study for days. URLs are logged and recorded without the ``user:password@`` part.
"""

from __future__ import annotations

import base64
import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from biomedquant.common.files import atomic_path, sha256_file, write_json
from biomedquant.common.provenance import now
from biomedquant.datasets.checksum_lock import ChecksumLock
from biomedquant.datasets.registry import DatasetSpec, get_dataset

log = logging.getLogger(__name__)

DEMO_SOURCE = "demo"


class ChecksumError(RuntimeError):
    """A downloaded file's SHA-256 differs from the pinned one."""


class DownloadError(RuntimeError):
    """A file could not be fetched after all retries."""


class TransferError(OSError):
    """One attempt failed in a way worth retrying: cut short, too slow, or a network error."""


def redact_url(url: str) -> str:
    """The URL without credentials (``https://user:pass@host/x`` -> ``https://***@host/x``),
    for logs, errors and provenance."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


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
    return Path(__file__).resolve().parent / "demo_data"


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


def _with_basic_auth(url: str) -> tuple[str, dict[str, str]]:
    """urllib does not read ``user:password@`` from a URL: send it as a Basic auth header."""
    headers = {"User-Agent": "biomedquant"}
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        url = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return url, headers


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def credentials_may_follow(old_url: str, new_url: str) -> bool:
    """Whether credentials sent to ``old_url`` may be sent on to ``new_url`` it redirects to:
    only on the same host and port, or on the same host's upgrade from http to https (the
    rule curl and requests follow)."""
    old, new = _origin(old_url), _origin(new_url)
    if old == new:
        return True
    upgrade = old[0] == "http" and new[0] == "https" and old[2] == 80 and new[2] == 443
    return upgrade and old[1] == new[1]


class _RedirectKeepingCredentialsHome(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handling, but the Authorization header (our ``user:password@``) and
    cookies never go to another host.

    urllib copies every header of a request onto the redirected one, whatever its host: a
    mirror that redirects to a CDN, or one taken over, would receive the user's token.
    """

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not credentials_may_follow(req.full_url, new.full_url):
            for name in ("Authorization", "Cookie"):
                new.remove_header(name)
            log.info("redirected to another host (%s): credentials not sent", _origin(newurl)[1])
        return new


_OPENER = urllib.request.build_opener(_RedirectKeepingCredentialsHome)


def _content_length(resp: object) -> int | None:
    value = getattr(resp, "headers", {}).get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _stream(url: str, dest: Path, timeout: float, deadline: float, chunk: int = 1 << 16) -> int:
    """One attempt: copy the body to ``dest``; raise :class:`TransferError` when it is cut
    short, exceeds the deadline (seconds for the whole file) or fails on the network."""
    start = time.monotonic()
    plain_url, headers = _with_basic_auth(url)
    req = urllib.request.Request(plain_url, headers=headers)
    got = 0
    try:
        with _OPENER.open(req, timeout=min(timeout, deadline)) as resp:
            expected = _content_length(resp)
            # read1 returns what one read of the socket gives, so the deadline is checked at
            # least once per per-read timeout, however slowly the bytes come.
            read = getattr(resp, "read1", resp.read)
            with dest.open("wb") as fh:
                while block := read(chunk):
                    fh.write(block)
                    got += len(block)
                    if time.monotonic() - start > deadline:
                        raise TransferError(
                            f"not complete after the {deadline:g} s deadline ({got} bytes)"
                        )
    except http.client.HTTPException as err:  # e.g. IncompleteRead of a chunked body
        raise TransferError(
            f"transfer broken off after {got} bytes ({type(err).__name__})"
        ) from err
    if expected is not None and got != expected:
        raise TransferError(f"transfer cut short: {got} of {expected} bytes")
    return got


class UnexpectedContentError(DownloadError):
    """A body that is not the kind of file its source names (an HTML page for a .tsv)."""


_HTML_START = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")
_JSON_START = {".json": (b"{", b"["), ".jsonl": (b"{",)}


def check_body(path: Path, relpath: str, shown: str) -> None:
    """Refuse a downloaded body that is not what ``relpath`` names: an HTML (or XML) page
    where a data file was expected, or, for ``.json``/``.jsonl``, text that cannot start a
    JSON document.

    A login page, a proxy's error page or a mirror's "not found" page is often served with
    status 200; hashed as it is, it would be recorded in the checksum lock as the file's
    hash, and the genuine file refused afterwards as a mismatch. Only the first kilobytes are
    read.
    """
    suffix = Path(relpath).suffix.lower()
    if suffix in (".html", ".htm", ".xml"):
        return
    with path.open("rb") as fh:
        head = fh.read(4096)
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    found = None
    if start.lower().startswith(_HTML_START):
        found = "an HTML page"
    elif suffix in _JSON_START and start and not start.startswith(_JSON_START[suffix]):
        found = f"text that is not JSON (it starts {start[:20]!r})"
    if found:
        raise UnexpectedContentError(
            f"{shown}: the server sent {found}, not the {suffix or 'data'} file the source"
            " names (an error or login page served as success?); nothing was kept or recorded:"
            " check --base-url and the mirror, then run again"
        )


def fetch_file(
    base_url: str,
    relpath: str,
    dest: str | Path,
    expected_sha256: str | None,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    deadline: float = 3600.0,
    hash_source: str = "the registry",
) -> FetchResult:
    """Download ``relpath`` under ``base_url`` to ``dest`` and verify its SHA-256.

    ``expected_sha256=None`` means the hash could not be pinned; the observed hash is returned
    so the caller records it (in the lock file and the provenance). ``timeout`` bounds each
    read, ``deadline`` each attempt at the whole file. ``hash_source`` says where the
    expected hash comes from, for the error message.
    """
    url = source_url(base_url, relpath)
    shown = redact_url(url)
    dest = Path(dest)
    last_err: Exception | None = None
    with atomic_path(dest) as tmp:
        for attempt in range(1, retries + 1):
            try:
                _stream(url, tmp, timeout, deadline)
                break
            except urllib.error.HTTPError as err:
                if 400 <= err.code < 500 and err.code not in (408, 429):  # asking again won't help
                    raise DownloadError(
                        f"could not download {shown}: HTTP {err.code} {err.reason}"
                    ) from None
                last_err = TransferError(f"HTTP {err.code} {err.reason}")
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", None) or err
                last_err = err if isinstance(err, TransferError) else TransferError(str(reason))
            log.warning("download %s failed (attempt %d/%d): %s", shown, attempt, retries, last_err)
            if attempt < retries:
                time.sleep(backoff * 2 ** (attempt - 1))
        else:
            raise DownloadError(f"could not download {shown} after {retries} attempts: {last_err}")
        check_body(tmp, relpath, shown)  # before its hash is compared, or recorded in a lock
        actual = sha256_file(tmp)
        if expected_sha256 is not None and actual != expected_sha256:
            raise ChecksumError(
                f"checksum mismatch for {shown}: expected sha256 {expected_sha256} "
                f"({hash_source}), got {actual}; the file was not kept"
            )
        size = tmp.stat().st_size
    if expected_sha256 is None:
        log.warning("%s has no pinned checksum; its observed sha256 is %s", shown, actual)
    return FetchResult(str(dest), shown, actual, expected_sha256, expected_sha256 is not None, size)


def expected_hash(spec: DatasetSpec, split: str, base_url: str) -> str | None:
    """The pinned hash for this split; the demo mirror has its own manifest."""
    src = spec.files[split]
    if base_url == DEMO_SOURCE:
        manifest = demo_manifest()
        if src.path not in manifest:
            raise KeyError(f"the demo holds no {split!r} split of {spec.name!r}")
        return manifest[src.path]
    return src.sha256


def download_split(
    name: str,
    split: str,
    base_url: str,
    dest: str | Path,
    *,
    lock_path: str | Path | None = None,
    timeout: float = 60.0,
    deadline: float = 3600.0,
) -> dict[str, Any]:
    """Fetch the source file of ``name``/``split`` and write its provenance beside it.

    A file without a pinned hash is checked against ``lock_path`` (see
    :mod:`biomedquant.datasets.checksum_lock`), and recorded there on its first download.
    """
    spec = get_dataset(name)
    src = spec.source(split)
    expected = expected_hash(spec, split, base_url)
    hash_source = "the demo manifest" if base_url == DEMO_SOURCE else "the registry"
    lock = ChecksumLock(lock_path) if lock_path and expected is None else None
    locked = lock.get(src.path) if lock else None
    if locked is not None:
        expected, hash_source = locked.sha256, f"recorded in {lock_path} on first download"
    result = fetch_file(
        base_url,
        src.path,
        dest,
        expected,
        timeout=timeout,
        deadline=deadline,
        hash_source=hash_source,
    )
    if lock is not None and locked is None:
        entry = lock.record(src.path, result.sha256, result.bytes)
        if entry.sha256 != result.sha256:  # another job recorded a different file first
            Path(dest).unlink(missing_ok=True)
            raise ChecksumError(
                f"checksum mismatch for {result.url}: {lock_path} holds sha256 {entry.sha256},"
                f" this download gave {result.sha256}; the file was not kept"
            )
        hash_source = f"none pinned: recorded in {lock_path} (first download)"
        result.verified = False
    elif expected is None:
        hash_source = "none pinned (no lock file in use)"
    prov = {"dataset": name, "split": split, "source_path": src.path, "reader": src.reader}
    prov.update(asdict(result))
    prov["hash_source"] = hash_source
    prov["demo"] = base_url == DEMO_SOURCE
    prov["downloaded_at"] = now()
    write_json(f"{dest}.provenance.json", prov)
    return prov
