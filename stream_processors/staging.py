"""Table writes held until the end of a batch, and the batch's current event.

Why: a faust table write is not just a RocksDB put. Each one builds a changelog
record, queues it in faust's producer buffer, hands it to the partition's
transactional producer and, on delivery, records the changelog offset — about
0.3 ms of CPU per write on the benchmark machine (``bench/RESULTS.md``), more than
the business step it stores. Within one batch the same key is often written many
times: a customer's arrival drains every event parked for it (one ledger write per
event), and each parked event rewrites its key's queue. Only the last value of a key
matters to the changelog (it is compacted) and to RocksDB, so :class:`StagedTable`
keeps the newest value per key and writes it once when the batch ends, still inside
the batch's transaction (the caller holds the processing lock until the producer
buffer is drained, see :mod:`.eos`).

Reads see staged values first, so the processor never reads a value older than one
it wrote. faust routes a key's RocksDB read and write, and its changelog record, by
the partition of the *current event*; :func:`use_event` sets it for each event of a
batch (faust sets it per event only when a stream is iterated one event at a time),
and :meth:`StagedTable.flush` restores, per key, the event that wrote it last.

A table of parsed rows (the ledgers, the customers) stages the *object* and encodes
it once at the flush, not once per event; a :class:`~.rowcache.ParsedRows` cache
keeps what each stored row parses into.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from faust.streams import _current_event
from faust.types import EventT

from stream_processors.rowcache import ParsedRows

T = TypeVar("T")

_DELETED = object()


def use_event(event: EventT) -> None:
    """Make ``event`` the one faust's tables route by (its partition's store and
    changelog partition)."""
    _current_event.set(weakref.ref(event))


class StagedTable(Generic[T]):
    """A faust table of ``bytes`` rows seen as ``T`` (``parse``/``encode``), with
    writes staged per key until :meth:`flush`."""

    def __init__(self, table: Any, parse: Callable[[bytes | None], T],
                 encode: Callable[[T], bytes], *, cache: bool = True) -> None:
        self.table = table
        self._encode = encode
        self._rows: ParsedRows[T] | None = ParsedRows(parse) if cache else None
        self._parse = parse
        self._staged: dict[bytes, tuple[EventT, object]] = {}

    def get(self, key: bytes) -> T:
        """The newest value of ``key``: staged this batch, else stored (parsed)."""
        hit = self._staged.get(key)
        if hit is not None:
            return self._parse(None) if hit[1] is _DELETED else hit[1]  # type: ignore[return-value]
        # the store itself: ``table.get`` asks RocksDB twice (``in``, then ``[]``) and
        # runs faust's per-read sensors; keys and values are raw bytes either way
        raw: bytes | None = self.table.data._get(key)
        return self._rows.get(key, raw) if self._rows is not None else self._parse(raw)

    def set(self, key: bytes, value: T, event: EventT) -> None:
        self._staged[key] = (event, value)

    def delete(self, key: bytes, event: EventT) -> None:
        self._staged[key] = (event, _DELETED)

    def __len__(self) -> int:
        return len(self._staged)

    def flush(self) -> int:
        """Write every staged key to the faust table (RocksDB + changelog), each under
        the event that staged it; returns how many writes were made."""
        staged, self._staged = self._staged, {}
        for key, (event, value) in staged.items():
            use_event(event)
            if value is _DELETED:
                if self.table.get(key) is not None:
                    del self.table[key]
                if self._rows is not None:
                    self._rows.discard(key)
                continue
            raw = self._encode(value)  # type: ignore[arg-type]
            self.table[key] = raw
            if self._rows is not None:
                self._rows.put(key, raw, value)  # type: ignore[arg-type]
        return len(staged)
