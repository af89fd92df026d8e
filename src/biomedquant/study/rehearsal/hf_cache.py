"""Place a model folder in a Hugging Face hub cache, as ``huggingface_hub`` lays one out.

``<HF_HOME>/hub/models--{org}--{name}/`` holds ``blobs/`` (each file once, named by its hash),
``snapshots/<commit>/`` (the files as relative links to the blobs) and ``refs/main`` (the
commit ``main`` points at). ``snapshot_download(repo_id, revision=<commit>)`` with
``HF_HUB_OFFLINE=1`` returns that snapshot folder without the network: what a lab with a
pre-filled cache (or a cache copied onto an air-gapped machine) runs on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from biomedquant.common.files import sha256_file


def fixed_commit(*parts: str) -> str:
    """A 40-hex-digit commit id fixed by ``parts`` (a rehearsal's models are pinned to it, so
    that strict revisions are exercised as for a real study)."""
    return hashlib.sha1("\x00".join(("biomedquant-rehearsal", *parts)).encode()).hexdigest()


def hub_repo_dir(hf_home: Path, repo_id: str) -> Path:
    return Path(hf_home) / "hub" / f"models--{repo_id.replace('/', '--')}"


def put_in_cache(hf_home: Path, repo_id: str, folder: Path, commit: str) -> Path:
    """Copy the files of ``folder`` into the cache as the snapshot ``commit`` of ``repo_id``
    (``main`` pointing at it); the snapshot folder is returned."""
    repo = hub_repo_dir(hf_home, repo_id)
    snapshot = repo / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for f in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        blob = repo / "blobs" / sha256_file(f)
        if not blob.exists():
            shutil.copy2(f, blob)
        link = snapshot / f.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
