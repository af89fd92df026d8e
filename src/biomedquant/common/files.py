"""Atomic file writes and JSON Lines helpers.

Every output of the pipeline is written to a temporary sibling and renamed into place, so a
killed job never leaves a half-written file that a later run would mistake for a finished one.
Temporary names carry the writer's host and process id: a job killed outright (``kill -9``)
leaves its temporary behind, and the next writer of the same target on the same host removes
it once that process is gone. (A temporary left by another host is kept: its process cannot be
looked up from here, and on a shared file system it may still be writing.)

Finished files and folders get the permissions the user's umask allows (the temporary ones
Python creates are private, 0600 and 0700, which a lab's group could not read).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask. POSIX offers no way to read it without setting it, so it is set and
    restored under a lock (threads of this process never see a changed umask)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _open_to_umask(path: Path, is_dir: bool) -> None:
    """Give a temporary file or folder the mode a plain ``open``/``mkdir`` would have."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~current_umask())


def _host_tag() -> str:
    """Eight hex digits naming this host: host names may hold dots and dashes, which would
    make temporary names ambiguous."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.{_host_tag()}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove temporaries of ``path`` left by writers that no longer run; return them.

    Only names of exactly the shape this module makes (``.NAME.HOST-PID-XXXXXXXX.tmp``) count,
    so the temporaries of a sibling whose name starts the same (``a.json`` and
    ``a.json.provenance.json``) are never touched, nor those of a writer still running or of
    another host.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    shape = re.compile(rf"\.{re.escape(path.name)}\.([0-9a-f]{{8}})-(\d+)-[A-Za-z0-9_]+\.tmp")
    host = _host_tag()
    removed = []
    for entry in path.parent.iterdir():
        m = shape.fullmatch(entry.name)
        if not m or m.group(1) != host:
            continue
        pid = int(m.group(2))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        log.warning("removing %s, left by an interrupted writer", entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        _open_to_umask(tmp_path, is_dir=False)
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; move it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        _open_to_umask(tmp, is_dir=True)
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    """A CSV table with a header, written atomically; missing or None cells are empty.

    Keys outside ``columns`` are left out, so a row may carry fields a table does not show.
    Returns the number of rows written.
    """
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
            n += 1
    return n


class ProvenanceMismatchError(ValueError):
    """A file differs from what its ``<file>.provenance.json`` records of it: it was changed
    (cut, edited, replaced) after the step that wrote it."""


def provenance_path(path: str | Path) -> Path:
    """Where the step that wrote ``path`` records what it wrote (downloads, prepared splits)."""
    return Path(f"{path}.provenance.json")


def check_provenance(path: str | Path, data: bytes | None = None) -> None:
    """Check ``path`` against what its ``<path>.provenance.json`` records of it, if anything:
    ``sha256`` and ``bytes`` (the file as written) and, for JSON Lines, ``n_written`` (its
    records). No provenance beside it, nothing to check.

    A prepared split cut at a line boundary is still valid JSON Lines: read without this
    check, it is scored as a smaller test set without a word (n drops from 4 to 3), and
    every number computed from it changes. Every reader of a JSON Lines file calls this
    (:func:`read_jsonl`, :meth:`JsonLines.read`), so no stage can read such a file unseen.
    ``data``: the file's bytes, when the caller has read them already.
    """
    prov_path = provenance_path(path)
    if not prov_path.is_file():
        return
    prov = read_json(prov_path)
    if not isinstance(prov, dict) or not ({"sha256", "bytes", "n_written"} & set(prov)):
        return
    if data is None:
        data = Path(path).read_bytes()
    fix = (
        "it was changed after it was written: delete it and its provenance and run again"
        " (Snakemake writes both again)"
    )
    recorded = prov.get("n_written")
    if isinstance(recorded, int) and str(path).endswith(".jsonl"):
        found = sum(1 for line in io.StringIO(data.decode("utf-8"), newline=None) if line.strip())
        if found != recorded:
            raise ProvenanceMismatchError(
                f"{path}: {found} records, but {prov_path.name} records {recorded}"
                f" (n_written); {fix}"
            )
    if isinstance(prov.get("bytes"), int) and len(data) != prov["bytes"]:
        raise ProvenanceMismatchError(
            f"{path}: {len(data)} bytes, but {prov_path.name} records {prov['bytes']}; {fix}"
        )
    if isinstance(prov.get("sha256"), str):
        actual = hashlib.sha256(data).hexdigest()
        if actual != prov["sha256"]:
            raise ProvenanceMismatchError(
                f"{path}: sha256 {actual}, but {prov_path.name} records {prov['sha256']}; {fix}"
            )


def read_json(path: str | Path) -> Any:
    """A JSON file's value; a file that is not JSON (cut short, edited) is an error naming
    the file, line and column (``json``'s own says neither which file nor what to do)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}): the file is cut"
            " short or was edited; restore it or delete it and run the step that writes it"
        ) from None


def jsonl_line(record: dict[str, Any]) -> str:
    """One record as a line of a JSON Lines file (what :func:`write_jsonl` writes)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(jsonl_line(rec))


def _decode_lines(lines: Iterable[str], where: str | Path) -> list[dict[str, Any]]:
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}:{lineno}: not valid JSON ({err.msg})") from err
    return out


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """A JSON Lines file's records, checked against its provenance (:func:`check_provenance`)."""
    if provenance_path(path).is_file():
        return JsonLines.read(path).records
    with Path(path).open(encoding="utf-8") as fh:
        return _decode_lines(fh, path)


@dataclass(frozen=True)
class JsonLines:
    """A JSON Lines file's records as every reader of the file sees them, with the file's
    SHA-256: what one step of a stage hands the next in memory instead of writing a file and
    reading it back.

    Built from records (:meth:`of`), the records are decoded again from the exact text the
    file gets, so a tuple is a list here as it is on disk, and a comparison with a file that
    another job wrote compares like with like; the hash is the written file's.
    """

    records: list[dict[str, Any]]
    text: str
    sha256: str
    where: str

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]], where: str | Path) -> JsonLines:
        """Records that ``where`` will hold once :meth:`write` is called."""
        text = "".join(jsonl_line(rec) for rec in records)
        # json.dumps escapes every newline inside a value: "\n" ends the records, and only it
        # (str.splitlines would also split at U+2028 or U+0085, which stay unescaped)
        return cls(_decode_lines(text.split("\n"), where), text, sha256_text(text), str(where))

    @classmethod
    def read(cls, path: str | Path) -> JsonLines:
        """A file as :func:`read_jsonl` reads it (universal newlines), hashed as stored, and
        checked against its provenance (:func:`check_provenance`)."""
        data = Path(path).read_bytes()
        check_provenance(path, data)
        text = data.decode("utf-8")
        records = _decode_lines(io.StringIO(text, newline=None), path)
        return cls(records, text, hashlib.sha256(data).hexdigest(), str(path))

    def write(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(self.text.encode("utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_tree(folder: str | Path) -> str:
    """Hash of every file's relative path and content in ``folder`` (order independent)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def dir_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
