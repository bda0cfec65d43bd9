"""Against the real Kafka broker and Apicurio Registry 3 (Confluent-compatible API).

Findings recorded here (Apicurio 3 ccompat v7):
* ``PUT /config/{subject}`` {"compatibility": "BACKWARD"} is accepted even before the
  subject exists, and IS enforced: an incompatible version gets HTTP 409
  (``RuleViolationException``) from ``POST /subjects/{s}/versions``.
* Apicurio's Avro check ignores logical types, like Avro Java's SchemaCompatibility:
  changing a decimal's scale (bytes stays bytes) is ACCEPTED by the registry although
  it changes the meaning of every stored amount. ``schemas.compatibility`` rejects it,
  so CI must run our checker too; the registry alone is not a sufficient gate.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas import avsc, registry, serde
from schemas import examples as ex
from schemas.compatibility import check_backward
from schemas.models import FinancialEvent
from schemas.topics import Topics, message_key

pytestmark = pytest.mark.integration


def _bad_required_field() -> dict:
    schema = avsc.compose("FinancialEvent")
    schema["fields"].append({"name": "region_code", "type": "string"})
    return schema


def _bad_enum_symbol_removed() -> dict:
    schema = avsc.compose("FinancialEvent")
    schema["fields"][2]["type"]["symbols"].remove("DELETE")  # Op
    return schema


def _decimal_scale_changed() -> dict:
    return json.loads(
        json.dumps(avsc.compose("FinancialEvent")).replace('"scale": 4', '"scale": 2')
    )


def test_invoice_event_through_kafka_and_the_registry(
    kafka_bootstrap: str, schema_registry_url: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("crm.financial-events")
    topics = Topics(suffix=topic.rpartition(".")[2])
    assert topics.crm_financial_events == topic
    client = serde.registry_client(schema_registry_url)
    subject = topics.subject(topic)
    registry.set_backward(client, subject)
    schema_id = registry.register(client, subject, avsc.schema_str("FinancialEvent"))

    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    spec = topics.spec(topic)
    admin.create_topics([NewTopic(topic, spec.partitions, 1, config=dict(spec.config))])[
        topic
    ].result(30)

    event = ex.sample_invoice_event(tenant="t1", customer_id="c42", invoice_id="inv-9")
    key = message_key(event.tenant_id, event.customer_id or "")
    ser = serde.financial_event_serializer(client, auto_register=False)
    value = ser(event, SerializationContext(topic, MessageField.VALUE))
    assert value is not None and value[0] == 0
    assert serde.wire_schema_id(value) == schema_id == client.get_latest_version(subject).schema_id

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    producer.produce(
        topic,
        key=serde.key_serializer()(key, None),
        value=value,
        headers={"event_id": event.event_id.encode()},
    )
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": topics.sink_group("test"),
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    try:
        msg = None
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None
        raw = msg.value()
        assert raw is not None and raw[0] == 0
        assert int.from_bytes(raw[1:5], "big") == schema_id
        de = serde.financial_event_deserializer(serde.registry_client(schema_registry_url))
        back = de(raw, SerializationContext(topic, MessageField.VALUE))
        assert isinstance(back, FinancialEvent) and back == event
        assert msg.key() == b"t1:c42"
    finally:
        consumer.close()


def test_history_registers_in_order_under_backward(
    schema_registry_url: str, unique_topic: Callable[[str], str]
) -> None:
    client = serde.registry_client(schema_registry_url)
    subject = f"{unique_topic('crm.financial-events')}-value"
    ids = registry.register_record(client, subject, "FinancialEvent")
    assert client.get_compatibility(subject) == "BACKWARD"
    assert len(ids) == len(avsc.versions("FinancialEvent")) >= 2
    assert len(set(ids)) == len(ids)
    assert client.get_versions(subject) == list(range(1, len(ids) + 1))
    assert client.get_latest_version(subject).schema_id == ids[-1]


@pytest.mark.parametrize(
    "bad",
    [_bad_required_field, _bad_enum_symbol_removed],
    ids=["required-field-added", "enum-symbol-removed"],
)
def test_registry_rejects_an_incompatible_change(
    schema_registry_url: str,
    unique_topic: Callable[[str], str],
    bad: Callable[[], dict],
) -> None:
    client = serde.registry_client(schema_registry_url)
    subject = f"{unique_topic('crm.financial-events')}-value"
    registry.register_record(client, subject, "FinancialEvent")
    schema = bad()
    assert check_backward(schema, avsc.compose("FinancialEvent"))  # our checker agrees
    assert registry.is_compatible(client, subject, schema) is False
    with pytest.raises(SchemaRegistryError) as err:
        registry.register(client, subject, schema)
    assert err.value.http_status_code == 409
    assert len(client.get_versions(subject)) == len(avsc.versions("FinancialEvent"))


def test_without_backward_the_registry_accepts_anything(
    schema_registry_url: str, unique_topic: Callable[[str], str]
) -> None:
    """Control: the rejection above comes from the subject config, not by accident."""
    client = serde.registry_client(schema_registry_url)
    subject = f"{unique_topic('crm.financial-events')}-value"
    registry.register(client, subject, avsc.schema_str("FinancialEvent"))
    # (Apicurio answers 404 to level NONE on a subject that does not exist yet.)
    client.set_compatibility(subject_name=subject, level="NONE")
    assert registry.register(client, subject, _bad_required_field()) > 0


def test_apicurio_does_not_check_decimal_scale_but_we_do(
    schema_registry_url: str, unique_topic: Callable[[str], str]
) -> None:
    client = serde.registry_client(schema_registry_url)
    subject = f"{unique_topic('crm.financial-events')}-value"
    registry.register_record(client, subject, "FinancialEvent")
    changed = _decimal_scale_changed()
    assert any(
        "decimal scale changed 4 -> 2" in str(p)
        for p in check_backward(changed, avsc.compose("FinancialEvent"))
    )
    # Documented registry behaviour; if Apicurio starts enforcing it, this flips and the
    # module docstring above should be updated.
    assert registry.is_compatible(client, subject, changed) is True
