"""Text clean-up shared by the parsers: what small and quantized models wrap answers in."""

from __future__ import annotations

import re

_MARKDOWN = re.compile(r"[*_`#>]+")


def clean(text: str) -> str:
    """Drop markdown emphasis/code marks and normalise whitespace; keep everything else."""
    text = _MARKDOWN.sub(" ", text or "")
    return re.sub(r"\s+", " ", text).strip()
