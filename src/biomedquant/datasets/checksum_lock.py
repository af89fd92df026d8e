"""``resources/raw/checksums.lock``: the hashes of source files that have none pinned.

Some upstream files could not be hashed when the registry was written (they were too large to
bring into the project). Like a package lock, the first download of such a file records its
SHA-256 and size here, and every later download must match them: a file that changes upstream,
or a transfer cut short where the server sent no length, is then an error instead of a silent
change in the numbers. Delete a line to accept a new version of that file on purpose.

One line per file, ``sha256<TAB>bytes<TAB>upstream path``, appended under an exclusive
``flock`` so that parallel download jobs of one study never lose or duplicate an entry.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from biomedquant.common.files import current_umask

LOCK_NAME = "checksums.lock"
DEFAULT_LOCK = f"resources/raw/{LOCK_NAME}"
HEADER = (
    "# SHA-256 and size of benchmark files without a pinned hash, recorded on first download\n"
    "# and checked on every later one. Delete a line to accept a new upstream version.\n"
)


class LockFileError(ValueError):
    """The lock file is not in the format this module writes."""


@dataclass(frozen=True)
class LockEntry:
    sha256: str
    size: int


class ChecksumLock:
    """Read and append entries of one lock file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _parse(self, text: str) -> dict[str, LockEntry]:
        entries: dict[str, LockEntry] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 3 or len(parts[0]) != 64 or not parts[1].isdigit():
                raise LockFileError(
                    f"{self.path}:{lineno}: expected 'sha256<TAB>bytes<TAB>path', got {line[:80]!r}"
                )
            entries.setdefault(parts[2], LockEntry(parts[0], int(parts[1])))
        return entries

    def entries(self) -> dict[str, LockEntry]:
        """Every recorded file: upstream path -> entry (the first line of a path wins)."""
        if not self.path.exists():
            return {}
        return self._parse(self.path.read_text(encoding="utf-8"))

    def get(self, relpath: str) -> LockEntry | None:
        return self.entries().get(relpath)

    @contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666 & ~current_umask())
        with os.fdopen(fd, "r+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield fh
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def record(self, relpath: str, sha256: str, size: int) -> LockEntry:
        """Record a first download; return the entry in force, which is an earlier one when
        another job recorded this file first (the caller compares)."""
        with self._locked() as fh:
            fh.seek(0)
            text = fh.read()
            existing = self._parse(text).get(relpath)
            if existing is not None:
                return existing
            fh.write(("" if text else HEADER) + f"{sha256}\t{size}\t{relpath}\n")
            fh.flush()
            os.fsync(fh.fileno())
        return LockEntry(sha256, size)
