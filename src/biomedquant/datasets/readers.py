"""One reader per source file format, shared by every dataset stored in that format.

Each reader turns a benchmark file into normalized records (plain dicts) with an ``id`` and the
task's gold fields:

* NER (``conll``): ``tokens`` (list of str), ``tags`` (B/I/O per token).
* Relation extraction (``re_tsv``): ``text`` (sentence with masked entities), ``label``.
* Multi-label (``mlc_tsv``): ``text``, ``labels`` (list of str, file order).
* QA (``medqa_tsv``, ``pubmedqa_tsv``, ``pubmedqa_json``): ``question``, ``context``
  (str, may be empty), ``options`` (letter -> text, or the decision words), ``answer``.

Readers only parse; validation against the dataset's label set happens in
:mod:`biomedquant.datasets.prepare`, so a reader stays reusable for any dataset in its format.
"""

from __future__ import annotations

import ast
import csv
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from biomedquant.common.registry import Registry

Record = dict[str, Any]

csv.field_size_limit(sys.maxsize)


class FormatError(ValueError):
    """A source file does not have the structure its reader expects."""


def _read_tsv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    # newline="" lets csv handle the CRLF line endings some upstream files use.
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise FormatError(f"{path}: missing column(s) {missing}; header is {header}")
        return [{k: (v or "") for k, v in row.items() if k is not None} for row in reader]


def read_conll(path: Path) -> list[Record]:
    """Token<TAB>tag lines, one sentence per block, blocks separated by blank lines."""
    records: list[Record] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            records.append({"id": f"s{len(records)}", "tokens": list(tokens), "tags": list(tags)})
            tokens.clear()
            tags.clear()

    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                flush()
                continue
            parts = line.split("\t")
            if len(parts) != 2 or parts[1] not in ("B", "I", "O"):
                raise FormatError(f"{path}:{lineno}: expected 'token<TAB>B|I|O', got {line!r}")
            tokens.append(parts[0])
            tags.append(parts[1])
    flush()
    return records


def read_re_tsv(path: Path) -> list[Record]:
    """``index sentence label`` with the two entities masked (@CHEMICAL$/@GENE$, @DRUG$).

    An entity pair with two relations appears twice under the same index (ChemProt does this:
    one row per relation) and the benchmark scores both rows, so both are kept; the repeat
    gets the id ``<index>#2`` (``#3`` ...) to keep ids unique.
    """
    rows = _read_tsv(path, ("index", "sentence", "label"))
    seen: Counter[str] = Counter()
    out = []
    for r in rows:
        seen[r["index"]] += 1
        n = seen[r["index"]]
        rid = r["index"] if n == 1 else f"{r['index']}#{n}"
        out.append({"id": rid, "text": r["sentence"], "label": r["label"].strip()})
    return out


def read_mlc_tsv(path: Path) -> list[Record]:
    """``pmid text labels`` with labels separated by ``;``."""
    rows = _read_tsv(path, ("pmid", "text", "labels"))
    return [
        {
            "id": r["pmid"],
            "text": r["text"],
            "labels": [lab.strip() for lab in r["labels"].split(";") if lab.strip()],
        }
        for r in rows
    ]


def _literal(value: str, what: str, path: Path) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError) as err:
        raise FormatError(f"{path}: cannot parse {what} {value[:80]!r}") from err


def read_medqa_tsv(path: Path) -> list[Record]:
    """MedQA: question, answer letter, options as a Python-literal list of {key, value}."""
    rows = _read_tsv(path, ("question", "answer_idx", "options"))
    out = []
    for i, r in enumerate(rows):
        opts = _literal(r["options"], "options", path)
        options = {str(o["key"]).strip(): str(o["value"]) for o in opts}
        rid = (r.get("") or "").strip() or str(i)
        out.append(
            {
                "id": rid,
                "question": r["question"],
                "context": "",
                "options": options,
                "answer": r["answer_idx"].strip(),
            }
        )
    return out


PUBMEDQA_OPTIONS = {"yes": "yes", "no": "no", "maybe": "maybe"}


def read_pubmedqa_tsv(path: Path) -> list[Record]:
    """PubMedQA TSV: QUESTION, CONTEXTS (Python-literal list of passages), final_decision."""
    rows = _read_tsv(path, ("QUESTION", "CONTEXTS", "final_decision", "pmid"))
    return [
        {
            "id": r["pmid"].strip(),
            "question": r["QUESTION"],
            "context": "\n".join(_literal(r["CONTEXTS"], "CONTEXTS", path)),
            "options": dict(PUBMEDQA_OPTIONS),
            "answer": r["final_decision"].strip().lower(),
        }
        for r in rows
    ]


def read_pubmedqa_json(path: Path) -> list[Record]:
    """PubMedQA JSON (train/dev pools): a list of {index, sentence, gold}.

    ``sentence`` holds the question followed by the context passages, as upstream stores it.
    """
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not valid JSON ({err.msg})") from err
    if not isinstance(items, list):
        raise FormatError(f"{path}: expected a JSON list of items")
    out = []
    for item in items:
        missing = [k for k in ("index", "sentence", "gold") if k not in item]
        if missing:
            raise FormatError(f"{path}: item without {missing}: {str(item)[:80]}")
        text = str(item["sentence"])
        question, sep, context = text.partition("? ")
        out.append(
            {
                "id": str(item["index"]),
                "question": question + ("?" if sep else ""),
                "context": context.strip(),
                "options": dict(PUBMEDQA_OPTIONS),
                "answer": str(item["gold"]).strip().lower(),
            }
        )
    return out


READERS: Registry[Callable[[Path], list[Record]]] = Registry(
    "reader",
    {
        "conll": read_conll,
        "re_tsv": read_re_tsv,
        "mlc_tsv": read_mlc_tsv,
        "medqa_tsv": read_medqa_tsv,
        "pubmedqa_tsv": read_pubmedqa_tsv,
        "pubmedqa_json": read_pubmedqa_json,
    },
)


def read_source(path: str | Path, reader: str) -> list[Record]:
    """The records of a source file, read by the named reader (a file format)."""
    return READERS[reader](Path(path))
