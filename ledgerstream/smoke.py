"""A smoke round trip over the real services: Avro through the registry, Kafka, PostgreSQL.

Used by `ledgerstream demo` while the full pipeline is being built, and useful to
an operator as a quick "is my cluster usable by ledgerstream" check: it needs
topic creation, idempotent produce, a consumer group, schema registration and a
database write to all work.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from deploy.localstack.stack import Endpoints

SMOKE_SCHEMA = """
{"type": "record", "name": "SmokeInvoice", "namespace": "io.ledgerstream.smoke",
 "doc": "A throw-away record proving the registry and the wire format work.",
 "fields": [{"name": "number", "type": "string"},
            {"name": "total", "type": {"type": "bytes", "logicalType": "decimal",
                                        "precision": 18, "scale": 4}}]}
"""


@dataclass(frozen=True)
class SmokeResult:
    topic: str
    schema_id: int
    round_trip_ms: float
    database_ok: bool


def run_smoke(endpoints: Endpoints, timeout_s: float = 30.0) -> SmokeResult:
    topic = f"ledgerstream.smoke.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": endpoints.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=timeout_s)
    try:
        registry = SchemaRegistryClient({"url": endpoints.schema_registry_url})
        ctx = SerializationContext(topic, MessageField.VALUE)
        record = {"number": "SMOKE-1", "total": Decimal("149.9900")}
        started = time.monotonic()
        payload = AvroSerializer(registry, SMOKE_SCHEMA)(record, ctx)
        producer = Producer(
            {"bootstrap.servers": endpoints.kafka_bootstrap, "enable.idempotence": True}
        )
        producer.produce(topic, payload)
        if producer.flush(timeout_s) != 0:
            raise RuntimeError(f"smoke record to {topic} was not delivered in {timeout_s}s")
        received = _consume_one(endpoints.kafka_bootstrap, topic, timeout_s)
        decoded = AvroDeserializer(registry)(received, ctx)
        elapsed_ms = (time.monotonic() - started) * 1000
        if decoded != record:
            raise RuntimeError(f"smoke record changed in transit: {decoded!r} != {record!r}")
        schema_id = int.from_bytes(received[1:5], "big")
        with psycopg.connect(endpoints.database_url, connect_timeout=10) as conn:
            value = conn.execute("SELECT %s::numeric(18,4)", (record["total"],)).fetchone()
        return SmokeResult(topic, schema_id, elapsed_ms, value == (record["total"],))
    finally:
        admin.delete_topics([topic])


def _consume_one(bootstrap: str, topic: str, timeout_s: float) -> bytes:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ledgerstream.smoke.{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise RuntimeError(f"consuming {topic}: {msg.error()}")
            value = msg.value()
            if value is not None:
                return bytes(value)
    finally:
        consumer.close()
    raise RuntimeError(f"no smoke record came back from {topic} within {timeout_s}s")
