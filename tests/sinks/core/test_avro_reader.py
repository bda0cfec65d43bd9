"""The sink's fastavro ledger-entry reader decodes exactly what confluent-kafka's
deserializer decodes, and refuses what it refuses."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas import examples as ex
from schemas import serde
from sinks.core.avro_reader import LedgerEntryReader
from sinks.core.decoding import ledger_entry_decoder
from sinks.core.runner import Record

TOPIC = "ledger.entries"
CTX = SerializationContext(TOPIC, MessageField.VALUE)


@pytest.fixture
def client():
    return serde.registry_client(f"mock://{uuid.uuid4().hex}")


@pytest.mark.parametrize("event", [
    ex.sample_invoice_event(), ex.sample_payment_event(), ex.sample_refund_event(),
    ex.sample_credit_note_event(), ex.sample_customer_event(), ex.sample_tax_rate_event(),
], ids=lambda e: str(e.aggregate_type))
@pytest.mark.parametrize("checked", [False, True], ids=["unchecked", "checked"])
def test_same_entry_as_the_confluent_deserializer(client, event, checked) -> None:
    data = serde.ledger_entry_serializer(client)(ex.sample_ledger_entry(event), CTX)
    expected = serde.ledger_entry_deserializer(client)(data, CTX)
    assert LedgerEntryReader(client, checked=checked)(data, CTX) == expected


def test_bad_bytes_are_a_bad_record_not_a_registry_outage(client) -> None:
    decode = ledger_entry_decoder(LedgerEntryReader(client))
    for value in (b"\x01\x00\x00\x00\x01garbage", b"\x00\x00"):
        with pytest.raises(ValueError):
            decode(Record(TOPIC, 0, 0, None, value))
