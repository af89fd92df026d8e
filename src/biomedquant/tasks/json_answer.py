"""Answers given as JSON: an object with an answer field, a list of labels, or a label map.

Instruct models asked for "the label only" often answer ``{"label": "CPR:4"}`` or, for a set
of labels, ``{"Treatment": 1, "Diagnosis": 0}``. Only a JSON value that is the output's answer
counts: the whole output, or a fenced code block, or a single object or list the output holds.
Objects and lists inside prose are found one by one from each opening bracket (a greedy search
from the first "[" to the last "]" would swallow "[see results]" and miss the answer after it).
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_OPENING = re.compile(r"[\[{]")
# JSON values looked for in prose (a degenerate output can hold thousands of brackets).
MAX_JSON_STARTS = 200
_DECODER = json.JSONDecoder()
# Keys whose value is the answer, in the order they are preferred.
ANSWER_KEYS = (
    "answer",
    "final_answer",
    "label",
    "labels",
    "relation",
    "relation_type",
    "prediction",
    "classification",
    "category",
    "categories",
    "topics",
    "decision",
    "option",
    "choice",
    "type",
    "interaction_type",
    "ddi_type",
)
# Keys of a flag that says whether a relation holds ({"interaction": true, "type": "advise"}).
PRESENCE_KEYS = (
    "interaction",
    "interacts",
    "has_interaction",
    "drug_interaction",
    "relation",
    "related",
    "has_relation",
    "relationship",
    "is_related",
)
_TRUE = {"1", "true", "yes", "y", "present", "applies"}
_FALSE = {"0", "false", "no", "n", "absent"}


def json_values_in(text: str) -> list[Any]:
    """Every JSON object or list that stands in ``text`` (not inside another one), in order."""
    found: list[Any] = []
    pos = 0
    for _ in range(MAX_JSON_STARTS):
        m = _OPENING.search(text, pos)
        if m is None:
            break
        try:
            value, end = _DECODER.raw_decode(text, m.start())
        except (json.JSONDecodeError, ValueError, RecursionError):
            pos = m.start() + 1
            continue
        found.append(value)
        pos = end
    return found


def json_value(text: str) -> Any:
    """The JSON value the output gives as its answer, or ``None`` when it gives none: the
    whole output, a fenced block, the one object or list the output holds, or its one object
    when lists stand beside it ("[1]")."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    candidates.append(text.strip())
    for cand in candidates:
        try:
            value = json.loads(cand.strip())
        except (json.JSONDecodeError, ValueError, RecursionError):
            continue
        if isinstance(value, (dict, list)):
            return value
    inside = json_values_in(text)
    objects = [v for v in inside if isinstance(v, dict)]
    if len(inside) == 1:
        return inside[0]
    return objects[0] if len(objects) == 1 else None  # an object beside a citation "[1]"


def norm_key(key: str) -> str:
    """A JSON key as compared: lower case, spaces and hyphens as underscores."""
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def answer_field(value: Any) -> Any:
    """The answer inside a JSON object (its first answer-like key), or the value itself."""
    if isinstance(value, dict):
        keys = {norm_key(k): v for k, v in value.items()}
        for key in ANSWER_KEYS:
            if key in keys:
                return keys[key]
    return value


def truth(value: Any) -> bool | None:
    """A label map's value as applies (True), does not (False) or unknown (None)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value >= 0.5
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None
