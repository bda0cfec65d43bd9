"""The Confluent-Avro codec (mock registry), parked-event rows and the parsed-row cache."""

from __future__ import annotations

import uuid

import pytest

from schemas import serde
from schemas.examples import sample_invoice_event, sample_ledger_entry
from schemas.models import FinancialEvent, LedgerEntry
from stream_processors.codec import AvroDecodeError, ConfluentAvroCodec
from stream_processors.pending import ParkedEvent, dump_queue, load_queue
from stream_processors.rowcache import ParsedRows


@pytest.fixture
def registry() -> object:
    return serde.registry_client(f"mock://{uuid.uuid4().hex}")


def test_codec_round_trips_in_confluent_framing(registry: object) -> None:
    events = ConfluentAvroCodec("crm.financial-events", FinancialEvent, registry)  # type: ignore[arg-type]
    ledger = ConfluentAvroCodec("ledger.entries", LedgerEntry, registry)  # type: ignore[arg-type]
    ev = sample_invoice_event()
    data = events.encode(ev)
    assert data[0] == 0 and serde.wire_schema_id(data) >= 0
    assert events.decode(data) == ev
    assert events.loads(events.dumps(ev)) == ev  # the faust Codec interface
    entry = sample_ledger_entry()
    assert ledger.decode(ledger.encode(entry)) == entry
    assert serde.wire_schema_id(ledger.encode(entry)) != serde.wire_schema_id(data)


@pytest.mark.parametrize("bad", [b"", b"\x01\x00\x00\x00\x01abc", b"\x00\x00\x00\x7f\xffxx"])
def test_codec_turns_garbage_into_a_decode_error(registry: object, bad: bytes) -> None:
    codec = ConfluentAvroCodec("t", FinancialEvent, registry)  # type: ignore[arg-type]
    with pytest.raises(AvroDecodeError):
        codec.decode(bad)


def test_parked_queue_round_trips_and_expires() -> None:
    p = ParkedEvent("crm.financial-events", 3, 42, b"t1:c1", b"\x00\x01", "e1", 100.0,
                    "unknown customer t1:c1", "UnknownCustomer")
    assert load_queue(dump_queue([p, p])) == [p, p]
    assert not p.expired(now=399.0, grace_seconds=300)
    assert p.expired(now=400.0, grace_seconds=300)


def test_parsed_rows_only_trust_identical_bytes() -> None:
    calls: list[bytes | None] = []

    def parse(raw: bytes | None) -> int:
        calls.append(raw)
        return len(raw or b"")

    rows = ParsedRows(parse, max_entries=2)
    assert rows.get(b"k", b"abc") == 3 and rows.get(b"k", b"abc") == 3
    assert rows.get(b"k", b"abcd") == 4  # the table changed under us: re-parse
    rows.get(b"a", b"x")
    rows.get(b"b", b"y")  # evicts the oldest
    assert rows.get(b"k", b"abcd") == 4
    assert calls == [b"abc", b"abcd", b"x", b"y", b"abcd"]


def test_codec_bytes_are_what_schemas_serde_writes_and_reads(registry: object) -> None:
    from confluent_kafka.serialization import MessageField, SerializationContext

    ctx = SerializationContext("crm.financial-events", MessageField.VALUE)
    ours = ConfluentAvroCodec("crm.financial-events", FinancialEvent, registry)  # type: ignore[arg-type]
    ev = sample_invoice_event()
    theirs = serde.financial_event_serializer(registry)(ev, ctx)  # type: ignore[arg-type]
    assert ours.encode(ev) == theirs
    assert serde.financial_event_deserializer(registry)(ours.encode(ev), ctx) == ev  # type: ignore[arg-type]
