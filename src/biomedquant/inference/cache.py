"""A content-addressed store of generations, so that no prompt is generated twice.

Key: SHA-256 of (model key, exact prompt text, decoding parameters). The model key hashes the
artifact's weights hash (from its provenance, computed once when it was written), the method
entry (bitsandbytes quantizes at load time, so its parameters are part of the model) and the
versions of the libraries that compute the generation. A rerun that Snakemake triggers for an
unrelated reason (a new prompt wording elsewhere, a scoring change upstream of a file) then
costs nothing for the prompts that did not change.

One SQLite file per model key under the cache folder: concurrent jobs of one model share it
(SQLite serializes writers), and clearing one model is deleting one file. SQLite locking is
unreliable on some network file systems; on a cluster put the cache on node-local or
lock-capable storage, or turn it off (``inference.generation_cache.enabled: false``).

A cache file that SQLite cannot read (a disk fault, a copy cut short) is moved aside under a
name that says so, with a warning naming it, and the run goes on with a fresh cache: a cache
only saves time, so losing one never stops a study. For the same reason a cache that cannot
be opened or written at all (a full disk or quota, a read-only or foreign-owned shared cache
folder, a lock held past the timeout) turns the job's cache off with one warning: the job
then generates what it would have read, and keeps what it generates in its own files only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from biomedquant.common.files import read_json, sha256_text, sha256_tree
from biomedquant.common.provenance import versions

log = logging.getLogger(__name__)

# Libraries whose versions change what a model generates.
GENERATION_PACKAGES = (
    "torch",
    "transformers",
    "gptqmodel",
    "bitsandbytes",
    "vllm",
    "llama-cpp-python",
)


def model_key(model_dir: str | Path, method: dict[str, Any], backend: str = "transformers") -> str:
    """Identity of what generates: weights, method, backend and library versions."""
    prov_path = Path(model_dir) / "provenance.json"
    weights = read_json(prov_path).get("weights_sha256") if prov_path.exists() else None
    if not weights:  # an artifact from before hashes were recorded: hash it now (slow once)
        log.warning("%s records no weights hash; hashing the folder", model_dir)
        weights = sha256_tree(model_dir)
    identity = {
        "weights_sha256": weights,
        "method": method,
        "backend": backend,
        "versions": versions(GENERATION_PACKAGES),
    }
    return sha256_text(json.dumps(identity, sort_keys=True))


def entry_key(prompt: str, decoding: dict[str, Any]) -> str:
    return sha256_text(json.dumps({"prompt": prompt, "decoding": decoding}, sort_keys=True))


class CacheKeyError(ValueError):
    """A model key that names no cache file in the folder."""


def _open(path: Path) -> sqlite3.Connection:
    """Open a cache file and make sure it is a readable cache (raises sqlite3.DatabaseError)."""
    # SQLite creates files 0644 at most; made here first, the file follows the umask (a
    # group-shared cache stays writable by the group). Its WAL files copy its mode.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))
    db = sqlite3.connect(path, timeout=120)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        # What the last job that loaded this model key measured (load time, peak memory,
        # hardware): a job served wholly from the cache loads nothing and measures nothing,
        # and its run records carry these instead (marked as measured earlier).
        db.execute(
            "CREATE TABLE IF NOT EXISTS measurements (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        db.execute("SELECT COUNT(*) FROM generations").fetchone()
        db.commit()
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def is_corrupt(err: sqlite3.DatabaseError) -> bool:
    """Damage to the file itself, not a lock, permission or a missing table (those are
    OperationalError and say nothing about the file's contents)."""
    return not isinstance(err, sqlite3.OperationalError)


def move_aside(path: Path, err: Exception) -> Path:
    """Move a corrupt cache file (and its WAL/SHM companions) out of the way; return where."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for companion in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
        if companion.exists():
            companion.rename(target.with_name(target.name + companion.name[len(path.name) :]))
    log.warning(
        "generation cache %s is unreadable (%s): moved aside to %s; going on without it",
        path,
        err,
        target,
    )
    return target


class GenerationCache:
    """Generations of one model key: ``get_many`` before generating, ``put_many`` after each
    batch (committed at once, so a killed job keeps every batch it finished)."""

    def __init__(self, folder: str | Path, model: str) -> None:
        self.path = Path(folder) / f"{model}.sqlite"
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = _open(self.path)
            except sqlite3.DatabaseError as err:
                if not is_corrupt(err):
                    raise
                move_aside(self.path, err)
                self._db = _open(self.path)
        except (sqlite3.Error, OSError) as err:
            self._go_on_without(err)

    @property
    def enabled(self) -> bool:
        """False once the cache could not be opened or written: the job goes on without it."""
        return self._db is not None

    def _go_on_without(self, err: Exception) -> None:
        """Turn the cache off for the rest of the job, with one warning saying why.

        A full disk, a quota, a read-only or another user's cache folder, a lock held past
        the timeout: SQLite says ``OperationalError`` (or the file system an ``OSError``),
        and none of them is worth stopping a study for, since the cache only saves time.
        What the job generates is still written to its own outputs.
        """
        reason = " ".join(str(err).split()) or type(err).__name__
        log.warning(
            "generation cache %s cannot be used (%s: %s): going on without it for this job"
            " (free space or fix the folder's permissions to cache again)",
            self.path,
            type(err).__name__,
            reason,
        )
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if self._db is None:
            return found
        keys = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, value FROM generations WHERE key IN ({marks})", chunk
                )
                found.update((k, json.loads(v)) for k, v in rows)
        except (sqlite3.Error, OSError) as err:
            self._go_on_without(err)
            return {}
        return found

    def put_many(self, items: dict[str, dict[str, Any]]) -> None:
        if self._db is None:
            return
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO generations (key, value) VALUES (?, ?)",
                    [(k, json.dumps(v)) for k, v in items.items()],
                )
        except (sqlite3.Error, OSError) as err:
            self._go_on_without(err)

    def put_measurement(self, facts: dict[str, Any]) -> None:
        """Keep what a job that loaded this model key measured (replacing an older one)."""
        if self._db is None:
            return
        try:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO measurements (name, value) VALUES ('load', ?)",
                    (json.dumps(facts),),
                )
        except (sqlite3.Error, OSError) as err:
            self._go_on_without(err)

    def measurement(self) -> dict[str, Any] | None:
        """What the last job that loaded this model key measured, or None (never measured, or
        a cache written before measurements were kept, or no cache)."""
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT value FROM measurements WHERE name = 'load'").fetchone()
        except (sqlite3.Error, OSError) as err:
            self._go_on_without(err)
            return None
        return json.loads(row[0]) if row else None

    def __len__(self) -> int:
        if self._db is None:
            return 0
        return int(self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):  # nothing uncommitted is left to lose
                self._db.close()


def cache_summary(folder: str | Path) -> list[dict[str, Any]]:
    """One row per model key: entries and bytes on disk."""
    rows = []
    for path in sorted(Path(folder).glob("*.sqlite")):
        try:
            db = sqlite3.connect(path, timeout=120)
            try:
                n = int(db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])
            finally:
                db.close()
        except sqlite3.DatabaseError as err:
            if is_corrupt(err):
                move_aside(path, err)
                continue
            if "no such table" not in str(err):
                raise
            n = 0  # an empty SQLite file: a cache that never stored anything
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        rows.append({"model_key": path.stem, "entries": n, "bytes": size})
    return rows


def cache_keys(folder: str | Path) -> list[str]:
    """The model keys that have a cache file in ``folder`` (what ``cache info`` lists)."""
    return sorted(p.stem for p in Path(folder).glob("*.sqlite") if p.is_file())


def clear_cache(folder: str | Path, model: str | None = None, *, dry_run: bool = False) -> int:
    """Delete the cache of one model key, or all of it; returns the files removed (with
    ``dry_run``, those it would remove, after the same checks).

    A model key must be one of :func:`cache_keys`: a path (``../x``), a pattern or an empty
    string never reaches the file system, so nothing outside the cache, and never the whole
    cache by accident, is deleted.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no cache folder {folder}")
    if model is not None:
        keys = cache_keys(folder)
        if model not in keys:
            shown = ", ".join(k[:12] + "..." for k in keys[:5]) or "none"
            raise CacheKeyError(
                f"--model-key {model!r} is not a cache in {folder} (keys: {shown}; "
                "`biomedquant cache info` lists them in full)"
            )
        names = [f"{model}.sqlite{suffix}" for suffix in ("", "-wal", "-shm")]
        paths = [folder / n for n in names if (folder / n).exists()]
    else:
        paths = [p for p in folder.glob("*.sqlite*") if p.is_file()]
    if dry_run:
        return len(paths)
    for path in paths:
        path.unlink()
    return len(paths)
