"""One small registry: an ordered, read-only name -> record mapping with a helpful lookup.

Datasets, tasks, prompting methods and method kinds are each declared once, as data, in a
:class:`Registry`. A mistyped name is the commonest config error, so a failed lookup names
the closest known names ("did you mean 'ncbi_disease'?") and lists the rest; the error is
both a ``KeyError`` (what a mapping raises) and a ``ValueError`` (what a bad config value
raises), so callers catching either keep working and the CLI prints it as one line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["Registry", "UnknownNameError"]

R = TypeVar("R")


class UnknownNameError(KeyError, ValueError):
    """A name that is not in a registry; its message says which names are close."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, R], Generic[R]):
    """Records by name, in declaration order (the order tables and listings follow).

    ``what`` names the kind of record in error messages ("dataset", "method kind").
    """

    def __init__(self, what: str, records: Mapping[str, R] | Iterable[tuple[str, R]]) -> None:
        self.what = what
        items = records.items() if isinstance(records, Mapping) else records
        self._records: dict[str, R] = {}
        for name, record in items:
            if name in self._records:
                raise ValueError(f"{what} {name!r} is registered twice")
            self._records[name] = record

    def __getitem__(self, name: str) -> R:
        try:
            return self._records[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown_message(name)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._records

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._records)})"

    def names(self) -> tuple[str, ...]:
        """Every registered name, in declaration order."""
        return tuple(self._records)

    def unknown_message(self, name: object) -> str:
        """``unknown <what> 'x' (did you mean 'y'?); known: a, b, c``."""
        close = difflib.get_close_matches(str(name), self.names(), n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        return f"unknown {self.what} {name!r}{hint}; known: {', '.join(self.names())}"
