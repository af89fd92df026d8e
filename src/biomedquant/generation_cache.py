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
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from biomedquant.io import read_json, sha256_text, sha256_tree
from biomedquant.provenance import versions

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


class GenerationCache:
    """Generations of one model key: ``get_many`` before generating, ``put_many`` after each
    batch (committed at once, so a killed job keeps every batch it finished)."""

    def __init__(self, folder: str | Path, model: str) -> None:
        self.path = Path(folder) / f"{model}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=120)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        self._db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, value FROM generations WHERE key IN ({marks})", chunk
            )
            found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, items: dict[str, dict[str, Any]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO generations (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in items.items()],
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def cache_summary(folder: str | Path) -> list[dict[str, Any]]:
    """One row per model key: entries and bytes on disk."""
    rows = []
    for path in sorted(Path(folder).glob("*.sqlite")):
        db = sqlite3.connect(path, timeout=120)
        try:
            n = int(db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])
        finally:
            db.close()
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        rows.append({"model_key": path.stem, "entries": n, "bytes": size})
    return rows


def clear_cache(folder: str | Path, model: str | None = None) -> int:
    """Delete the cache of one model key, or all of it; returns the files removed."""
    pattern = f"{model}.sqlite*" if model else "*.sqlite*"
    removed = 0
    for path in Path(folder).glob(pattern):
        path.unlink()
        removed += 1
    return removed
