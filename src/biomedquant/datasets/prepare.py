"""Prepare one split of one dataset: its downloaded source file (see
:mod:`biomedquant.datasets.download`) read, validated and written as normalized JSON Lines."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from biomedquant.common.files import (
    JsonLines,
    check_provenance,
    read_json,
    sha256_file,
    write_json,
)
from biomedquant.common.provenance import now, versions
from biomedquant.datasets.download import DEMO_SOURCE, demo_manifest
from biomedquant.datasets.readers import Record, read_source
from biomedquant.datasets.registry import DatasetSpec, get_dataset


class DatasetValidationError(ValueError):
    """Parsed records break the dataset's contract (unknown label, empty text, duplicate id)."""


def fewshot_split(name: str, base_url: str) -> str:
    """Where few-shot examples come from: the train split if the source has one, else dev.

    The demo mirror is small and holds a train or a dev file per dataset, never both.
    """
    spec = get_dataset(name)
    if base_url == DEMO_SOURCE:
        manifest = demo_manifest()
        for split in (spec.fewshot_split, "dev"):
            if split in spec.files and spec.files[split].path in manifest:
                return split
        raise KeyError(f"the demo holds no train or dev split of {name!r}")
    return spec.fewshot_split


def check_official_size(spec: DatasetSpec, split: str, n_items: int, raw_path: str | Path) -> None:
    """A full test split must hold the benchmark's official number of items.

    A file cut short (where neither a pinned hash nor the server's length could tell) then
    fails here instead of being scored as if it were the benchmark. Only test sizes are
    published; the packaged demo holds small samples and is exempt.
    """
    if split != "test":
        return
    prov_path = Path(f"{raw_path}.provenance.json")
    if prov_path.exists() and read_json(prov_path).get("demo"):
        return
    if n_items != spec.test_size:
        raise DatasetValidationError(
            f"{spec.name}/test ({raw_path}): {n_items} items, but the official test set has "
            f"{spec.test_size}: the download may be cut short or the file is not the benchmark's"
            " test split (delete it and download again)"
        )


def validate_records(spec: DatasetSpec, records: list[Record], where: str) -> None:
    """Check the task's contract on every record; raise naming the first offending item."""
    seen: set[str] = set()
    labels = set(spec.labels)
    for rec in records:
        rid = rec.get("id")
        if not rid:
            raise DatasetValidationError(f"{where}: record without id: {str(rec)[:80]}")
        if rid in seen:
            raise DatasetValidationError(f"{where}: duplicate id {rid!r}")
        seen.add(rid)
        if spec.task == "ner":
            if not rec["tokens"] or len(rec["tokens"]) != len(rec["tags"]):
                raise DatasetValidationError(f"{where}: item {rid}: empty or misaligned tokens")
        elif spec.task == "re":
            _check_text(rec["text"], rid, where)
            _check_labels([rec["label"]], labels, rid, where)
        elif spec.task == "mlc":
            _check_text(rec["text"], rid, where)
            _check_labels(rec["labels"], labels, rid, where)
        elif spec.task == "qa":
            _check_text(rec["question"], rid, where)
            _check_labels([rec["answer"]], set(rec["options"]), rid, where)
            _check_labels(list(rec["options"]), labels, rid, where)


def _check_text(text: str, rid: str, where: str) -> None:
    if not text or not text.strip():
        raise DatasetValidationError(f"{where}: item {rid}: empty text")


def _check_labels(found: list[str], allowed: set[str], rid: str, where: str) -> None:
    bad = [lab for lab in found if lab not in allowed]
    if bad:
        raise DatasetValidationError(
            f"{where}: item {rid}: label(s) {bad} not in the label set {sorted(allowed)}"
        )


def stratum(spec: DatasetSpec, rec: Record) -> str:
    """The label (or label set) a record is stratified on when subsampling."""
    if spec.task == "re":
        return rec["label"]
    if spec.task == "mlc":
        return ";".join(sorted(rec["labels"]))
    if spec.task == "qa":
        return rec["answer"]
    return "B" if "B" in rec["tags"] else "O"


def stratified_sample(spec: DatasetSpec, records: list[Record], n: int, seed: int) -> list[Record]:
    """Seeded sample of ``n`` records, proportional per stratum, in source order."""
    if n >= len(records):
        return list(records)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        groups[stratum(spec, rec)].append(i)
    rng = random.Random(seed)
    quotas = {k: n * len(v) / len(records) for k, v in groups.items()}
    take = {k: int(q) for k, q in quotas.items()}
    # Largest remainders get the leftover slots (ties broken by the seeded shuffle).
    order = sorted(groups, key=lambda k: (-(quotas[k] - take[k]), rng.random()))
    for k in order[: n - sum(take.values())]:
        take[k] += 1
    chosen: list[int] = []
    for k, idx in groups.items():
        chosen.extend(rng.sample(idx, take[k]))
    return [records[i] for i in sorted(chosen)]


def prepare_split(
    name: str,
    split: str,
    raw_path: str | Path,
    out_path: str | Path,
    *,
    limit: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Parse a downloaded source file, validate it, subsample if asked, write JSON Lines."""
    spec = get_dataset(name)
    check_provenance(raw_path)  # the download's recorded hash and size
    records = read_source(raw_path, spec.source(split).reader)
    validate_records(spec, records, f"{name}/{split} ({raw_path})")
    n_source = len(records)
    check_official_size(spec, split, n_source, raw_path)
    if limit:
        records = stratified_sample(spec, records, limit, seed)
    written = JsonLines.of(records, out_path)
    written.write(out_path)
    prov = {
        "dataset": name,
        "split": split,
        "task": spec.task,
        "raw_sha256": sha256_file(raw_path),
        "n_source": n_source,
        "n_written": len(records),
        # what every reader checks the file against (common.files.check_provenance)
        "sha256": written.sha256,
        "bytes": len(written.text.encode("utf-8")),
        "limit": limit,
        "seed": seed,
        "versions": versions(("biomedquant",)),
        "written_at": now(),
    }
    write_json(f"{out_path}.provenance.json", prov)
    return prov


def check_prepared_splits(folder: str | Path = "resources/datasets") -> int:
    """Check every prepared split under ``folder`` (``<dataset>/<split>.jsonl``) against its
    provenance; return how many were checked.

    The workflow calls this as a real run starts (``onstart``), before any job: a split
    changed since it was prepared is newer than what was computed from it, so Snakemake would
    rerun those jobs, and delete their finished outputs (a quantized artifact, say) as each
    starts, before the job's own reading of the split refuses it.
    """
    checked = 0
    for path in sorted(Path(folder).glob("*/*.jsonl")):
        check_provenance(path)
        checked += 1
    return checked


def write_study_data(out: str | Path, files: list[str | Path]) -> dict[str, Any]:
    """Record every prepared split of a study (evaluated splits and few-shot pools) with its
    hash and size, in one file.

    The workflow's inference, perplexity and evaluate jobs each read every dataset; they take
    this one file as their input rather than each split, so that Snakemake plans one edge per
    job instead of one per dataset and pool (planning time grows with edges). A re-prepared
    split rewrites it, and everything that reads the datasets follows, as it would have.
    """
    seen: set[str] = set()
    entries = []
    for f in files:
        path = Path(f)
        if str(path) in seen:
            continue
        seen.add(str(path))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: prepared split not found (run prepare first)")
        data = path.read_bytes()
        check_provenance(path, data)  # a split cut or edited since prepare wrote it
        entries.append(
            {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        )
    record = {"files": entries}
    write_json(out, record)
    return record
