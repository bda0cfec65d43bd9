"""A small parsed-row cache in front of the faust tables.

Why: every event reads its customer's ledger, customer row and tax book from RocksDB
as bytes; parsing JSON and validating a pydantic Customer again for every event of a
busy customer dominated the per-event cost. The cache maps a table key to the bytes
it last saw and what they parsed into, and only trusts an entry whose bytes are
equal to what the table returns now — so it can never serve state the table (e.g.
after a changelog recovery) does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class ParsedRows(Generic[T]):
    def __init__(self, parse: Callable[[bytes | None], T], max_entries: int = 50_000) -> None:
        self._parse = parse
        self._max = max_entries
        self._rows: dict[Hashable, tuple[bytes | None, T]] = {}

    def get(self, key: Hashable, raw: bytes | None,
            parse: Callable[[bytes | None], T] | None = None) -> T:
        """The parsed form of ``raw`` (``parse`` overrides the cache's parser)."""
        hit = self._rows.get(key)
        if hit is not None and hit[0] == raw:
            return hit[1]
        value = (parse or self._parse)(raw)
        self.put(key, raw, value)
        return value

    def put(self, key: Hashable, raw: bytes | None, value: T) -> None:
        if len(self._rows) >= self._max and key not in self._rows:
            self._rows.pop(next(iter(self._rows)))
        self._rows[key] = (raw, value)

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (its row will not be asked for again)."""
        self._rows.pop(key, None)
