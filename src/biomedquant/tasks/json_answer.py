"""Answers given as JSON: an object with an answer field, a list of labels, or a label map.

Instruct models asked for "the label only" often answer ``{"label": "CPR:4"}`` or, for a set
of labels, ``{"Treatment": 1, "Diagnosis": 0}``. Only a JSON value that is the output's answer
counts: the whole output, or a fenced code block, or a single object or list the output holds.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}|\[.*\]", re.DOTALL)
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
)
_TRUE = {"1", "true", "yes", "y", "present", "applies"}
_FALSE = {"0", "false", "no", "n", "absent"}


def json_value(text: str) -> Any:
    """The JSON value the output gives as its answer, or ``None`` when it gives none."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    stripped = text.strip()
    candidates.append(stripped)
    m = _OBJECT.search(stripped)
    if m:
        candidates.append(m.group(0))
    for cand in candidates:
        try:
            value = json.loads(cand.strip())
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, (dict, list)):
            return value
    return None


def _norm_key(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def answer_field(value: Any) -> Any:
    """The answer inside a JSON object (its first answer-like key), or the value itself."""
    if isinstance(value, dict):
        keys = {_norm_key(k): v for k, v in value.items()}
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
