"""StagedTable: a batch reads its own writes, and each key is written once, under the
event that wrote it last (faust routes a row's store and changelog partition by the
current event)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from faust.streams import current_event

from stream_processors.staging import StagedTable, use_event


class FakeStore:
    def __init__(self, rows: dict[bytes, bytes]) -> None:
        self.rows = rows

    def _get(self, key: bytes) -> bytes | None:
        return self.rows.get(key)


class FakeTable:
    """What StagedTable uses of a faust table, recording the partition of the
    current event at each write (as faust's changelog routing would)."""

    def __init__(self, rows: dict[bytes, bytes] | None = None) -> None:
        self.data = FakeStore(dict(rows or {}))
        self.writes: list[tuple[bytes, bytes | None, int]] = []

    def _partition(self) -> int:
        event = current_event()
        assert event is not None, "a table write outside an event"
        partition: int = event.message.partition
        return partition

    def get(self, key: bytes) -> bytes | None:
        return self.data.rows.get(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes.append((key, value, self._partition()))
        self.data.rows[key] = value

    def __delitem__(self, key: bytes) -> None:
        self.writes.append((key, None, self._partition()))
        del self.data.rows[key]


class FakeEvent:
    """Weak-referenceable, as faust's events are."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def event(partition: int) -> Any:
    return FakeEvent(partition)


def counting_encoder(calls: list[dict[str, int]]) -> Any:
    def encode(value: dict[str, int]) -> bytes:
        calls.append(value)
        return json.dumps(value).encode()
    return encode


def parse(raw: bytes | None) -> dict[str, int] | None:
    return json.loads(raw) if raw else None


def test_a_batch_reads_its_own_writes_and_each_key_is_encoded_and_written_once() -> None:
    table = FakeTable({b"a": b'{"n": 1}'})
    encoded: list[dict[str, int]] = []
    staged = StagedTable(table, parse, counting_encoder(encoded))
    first, second = event(3), event(3)
    assert staged.get(b"a") == {"n": 1}
    staged.set(b"a", {"n": 2}, first)
    staged.set(b"a", {"n": 3}, second)
    assert staged.get(b"a") == {"n": 3}
    assert table.writes == [] and encoded == []  # nothing reaches the table before flush

    assert staged.flush() == 1
    assert table.writes == [(b"a", b'{"n": 3}', 3)]
    assert encoded == [{"n": 3}]
    assert staged.get(b"a") == {"n": 3} and len(staged) == 0


def test_each_row_is_written_under_the_partition_of_the_event_that_staged_it() -> None:
    table = FakeTable()
    staged = StagedTable(table, parse, counting_encoder([]))
    use_event(event(9))  # the batch's last event: must not route the other rows
    staged.set(b"x", {"n": 1}, event(1))
    staged.set(b"y", {"n": 2}, event(7))
    staged.flush()
    assert sorted(table.writes) == [(b"x", b'{"n": 1}', 1), (b"y", b'{"n": 2}', 7)]


def test_a_staged_delete_reads_as_absent_and_removes_only_an_existing_row() -> None:
    table = FakeTable({b"gone": b'{"n": 1}'})
    staged = StagedTable(table, parse, counting_encoder([]), cache=False)
    staged.delete(b"gone", event(2))
    staged.delete(b"never", event(2))
    assert staged.get(b"gone") is None
    staged.flush()
    assert table.writes == [(b"gone", None, 2)]
    assert table.get(b"gone") is None


def test_a_cached_row_is_not_served_once_the_store_holds_other_bytes() -> None:
    table = FakeTable({b"k": b'{"n": 1}'})
    staged = StagedTable(table, parse, counting_encoder([]))
    assert staged.get(b"k") == {"n": 1}
    table.data.rows[b"k"] = b'{"n": 5}'  # e.g. restored from the changelog
    assert staged.get(b"k") == {"n": 5}
