"""Where calibration text comes from: the texts of one source, as a list of strings.

Sources (the ``source`` key of a method's ``calibration``):

* ``hf_dataset``: a Hugging Face dataset through the ``datasets`` library (name or local
  folder, optional config and data files, a split and a text field). Loading goes through the
  library's cache, so a pre-filled cache works offline (``HF_DATASETS_OFFLINE=1``), and a
  folder written by ``save_to_disk`` loads without any network. The study's default: C4, the
  text the GPTQ paper calibrates on.
* ``in_domain``: the benchmarks' train texts (dev where a source has none), never a test item.
* ``generic``: English paragraphs written for this project, shipped with the package.
* ``file``: a local ``.txt`` (one text per paragraph, paragraphs separated by blank lines) or
  ``.jsonl`` file (one record per line, ``text_field`` holds the text), for a lab's own
  clinical text that may not leave the building.

Sources only deliver texts; :mod:`biomedquant.quantization.calibration.windows` packs them into
windows.
"""

from __future__ import annotations

import json
import logging
import random
import re
from importlib import resources
from pathlib import Path
from typing import Any

from biomedquant.common.files import read_jsonl
from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import get_dataset
from biomedquant.datasets.texts import record_text

log = logging.getLogger(__name__)

SOURCES = ("hf_dataset", "in_domain", "generic", "file")


class CalibrationError(ValueError):
    """A calibration set cannot be built as configured (the message says how to fix it)."""


def generic_calibration_texts() -> list[str]:
    """Generic English paragraphs written for this project (one per line)."""
    text = (
        resources.files("biomedquant")
        .joinpath("quantization/calibration/generic_en.txt")
        .read_text("utf-8")
    )
    return [line.strip() for line in text.splitlines() if line.strip()]


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def normalized_test_texts(test_raws: dict[str, str | Path]) -> set[str]:
    """Normalised input texts of every item of the given *full* test files."""
    texts: set[str] = set()
    for name, raw in test_raws.items():
        reader = get_dataset(name).files["test"].reader
        texts.update(_normalized(record_text(r)) for r in read_source(raw, reader))
    return texts


def in_domain_texts(
    pools: dict[str, str | Path], test_raws: dict[str, str | Path], seed: int
) -> tuple[list[str], dict[str, Any]]:
    """Every train (or dev) text of the pools, none of them a test item, in a seeded order.

    ``pools`` maps dataset -> prepared train/dev JSON Lines; ``test_raws`` maps dataset -> the
    downloaded *full* test file, so the check covers every test item, not just the evaluated
    sample. A pool text that equals a test text (after whitespace and case folding) is left
    out and counted; the result is then checked again to hold no test text at all. Datasets
    are interleaved round-robin, so windows cut from the start of the stream mix every task.
    """
    tests = normalized_test_texts(test_raws)
    rng = random.Random(seed)
    per_dataset: dict[str, list[str]] = {}
    n_overlap = 0
    for name in sorted(pools):
        texts = [record_text(r) for r in read_jsonl(pools[name])]
        kept = [t for t in texts if t.strip() and _normalized(t) not in tests]
        n_overlap += len([t for t in texts if t.strip()]) - len(kept)
        rng.shuffle(kept)
        per_dataset[name] = kept
    chosen: list[str] = []
    while any(per_dataset.values()):
        for name in sorted(per_dataset):
            if per_dataset[name]:
                chosen.append(per_dataset[name].pop())
    leaked = [t for t in chosen if _normalized(t) in tests]
    if leaked:  # cannot happen after the filter; a guard against future edits
        raise AssertionError(f"{len(leaked)} calibration text(s) are test items")
    if n_overlap:
        log.warning("calibration: %d train/dev text(s) equal a test text, left out", n_overlap)
    return chosen, {"datasets": sorted(pools), "n_test_overlap_removed": n_overlap}


def file_texts(path: str | Path, text_field: str = "text") -> list[str]:
    """Texts of a local file: ``.jsonl`` (``text_field`` of each record) or plain text (one
    text per paragraph; paragraphs are separated by blank lines)."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist")
    if path.suffix == ".jsonl":
        texts = []
        for i, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise CalibrationError(f"{path}:{i}: not JSON ({err.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get(text_field), str):
                raise CalibrationError(f"{path}:{i}: no string field {text_field!r}")
            texts.append(rec[text_field])
        return texts
    paragraphs = re.split(r"\n\s*\n", path.read_text("utf-8"))
    return [p.strip() for p in paragraphs if p.strip()]


def hf_dataset_texts(calib: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The text column of a Hugging Face dataset, as a lazily indexable sequence.

    ``dataset`` is a hub name (read through the ``datasets`` cache; offline with a filled
    cache) or a folder written by ``save_to_disk``. Returns the column and what was loaded.
    """
    import datasets

    name = str(calib["dataset"])
    split = calib.get("split", "train")
    field = calib.get("text_field", "text")
    info: dict[str, Any] = {"dataset": name, "split": split, "text_field": field}
    try:
        if Path(name).is_dir():
            ds = datasets.load_from_disk(name)
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[split]
        else:
            ds = datasets.load_dataset(
                name, calib.get("config"), data_files=calib.get("data_files"), split=split
            )
            info.update(config=calib.get("config"), data_files=calib.get("data_files"))
    except Exception as err:  # noqa: BLE001 - one clear line instead of a library traceback
        raise CalibrationError(
            f"calibration dataset {name!r} (split {split!r}) cannot be loaded: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            " (offline, the datasets cache must hold it; or give a save_to_disk folder)"
        ) from None
    if field not in ds.column_names:
        raise CalibrationError(
            f"calibration dataset {name!r} has no column {field!r} (columns: {ds.column_names})"
        )
    info["fingerprint"] = getattr(ds, "_fingerprint", None)
    info["n_rows"] = len(ds)
    return ds[field] if len(ds) <= 100_000 else _LazyColumn(ds, field), info


class _LazyColumn:
    """A text column read row by row, for datasets too large to hold as one list."""

    def __init__(self, ds: Any, field: str) -> None:
        self.ds, self.field = ds, field

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> str:
        return self.ds[i][self.field]
