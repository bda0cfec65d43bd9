"""Confluent serializer/deserializer round trips against the mock:// registry."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas import avsc, serde
from schemas import examples as ex
from schemas.models import AvroRecord, CustomerBalance, DeadLetter, FinancialEvent, LedgerEntry
from schemas.topics import Topics


@pytest.fixture
def client():
    return serde.registry_client(f"mock://{uuid.uuid4().hex}")


CASES = [
    (
        serde.financial_event_serializer,
        serde.financial_event_deserializer,
        ex.sample_invoice_event(),
        "crm_financial_events",
    ),
    (
        serde.financial_event_serializer,
        serde.financial_event_deserializer,
        ex.sample_refund_event(),
        "crm_financial_events",
    ),
    (
        serde.financial_event_serializer,
        serde.financial_event_deserializer,
        ex.sample_customer_event(),
        "crm_customers",
    ),
    (
        serde.ledger_entry_serializer,
        serde.ledger_entry_deserializer,
        ex.sample_ledger_entry(),
        "ledger_entries",
    ),
    (
        serde.customer_balance_serializer,
        serde.customer_balance_deserializer,
        ex.sample_customer_balance(),
        "ledger_balances",
    ),
    (
        serde.dead_letter_serializer,
        serde.dead_letter_deserializer,
        ex.sample_dead_letter(),
        "ledger_dlq",
    ),
]


@pytest.mark.parametrize(
    ("make_ser", "make_de", "value", "topic"),
    CASES,
    ids=[type(c[2]).__name__ + ":" + c[3] for c in CASES],
)
def test_round_trip_through_wire_format(client, make_ser, make_de, value, topic) -> None:
    name = getattr(Topics(suffix="t"), topic)
    ctx = SerializationContext(name, MessageField.VALUE)
    data = make_ser(client)(value, ctx)
    assert data[0] == 0
    registered = client.get_latest_version(f"{name}-value")
    assert serde.wire_schema_id(data) == registered.schema_id
    back = make_de(client)(data, ctx)
    assert back == value and type(back) is type(value)


def test_serializer_refuses_the_wrong_model(client) -> None:
    ser = serde.avro_serializer(CustomerBalance, client)
    with pytest.raises(Exception, match="expected CustomerBalance"):
        ser(ex.sample_dead_letter(), SerializationContext("x", MessageField.VALUE))


def test_no_auto_register_needs_a_registered_schema(client) -> None:
    ser = serde.financial_event_serializer(client, auto_register=False)
    ctx = SerializationContext("crm.financial-events.x", MessageField.VALUE)
    with pytest.raises(Exception):  # noqa: B017 - SchemaRegistryError 40403
        ser(ex.sample_invoice_event(), ctx)
    client.register_schema(
        "crm.financial-events.x-value", Schema(avsc.schema_str("FinancialEvent"), "AVRO")
    )
    data = ser(ex.sample_invoice_event(), ctx)
    assert data is not None and data[0] == 0


def test_v1_writer_is_resolved_by_id_into_the_current_model(client) -> None:
    """An old producer (v1 schema) and a new consumer: BACKWARD in practice."""
    import json

    v1 = json.dumps(avsc.history("FinancialEvent")[0])

    def v1_dict(obj: object, ctx: SerializationContext) -> dict:
        assert isinstance(obj, FinancialEvent)
        body = obj.to_avro()
        del body["causation_id"]
        del body["payload"][1]["po_number"]
        return body

    old_producer = AvroSerializer(client, v1, to_dict=v1_dict)
    ctx = SerializationContext("crm.financial-events.v1", MessageField.VALUE)
    event = ex.sample_invoice_event()
    data = old_producer(event, ctx)
    assert data is not None
    new_consumer = serde.financial_event_deserializer(client)
    assert new_consumer(data, ctx) == event
    assert client.get_schema(serde.wire_schema_id(data)).schema_str == v1


def test_keys_are_plain_strings() -> None:
    ctx = SerializationContext("t", MessageField.KEY)
    assert serde.key_serializer()("t1:c1", ctx) == b"t1:c1"
    assert serde.key_deserializer()(b"t1:c1", ctx) == "t1:c1"


def test_wire_schema_id_rejects_unframed_bytes() -> None:
    with pytest.raises(ValueError, match="too short"):
        serde.wire_schema_id(b"\x00\x01")
    with pytest.raises(ValueError, match="magic byte"):
        serde.wire_schema_id(b"\x01\x00\x00\x00\x01body")


@pytest.mark.parametrize("model", [FinancialEvent, LedgerEntry, CustomerBalance, DeadLetter])
def test_factories_use_the_composed_schema(client, model: type[AvroRecord]) -> None:
    assert serde.avro_serializer(model, client) is not None
    assert serde.avro_deserializer(model, client) is not None
