"""The three real services do what the rest of the project relies on.

These run against the session's real broker, registry and database: Confluent
wire-format Avro through the registry, Kafka transactions with a read_committed
reader, and PostgreSQL round trips.
"""

from __future__ import annotations

import os
import time
import uuid
from decimal import Decimal

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

pytestmark = pytest.mark.integration

SCHEMA = """
{"type": "record", "name": "Probe", "namespace": "io.ledgerstream.test",
 "fields": [{"name": "id", "type": "string"},
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                         "precision": 18, "scale": 4}}]}
"""


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1)])
    futures[name].result(timeout=30)


def consume_all(bootstrap: str, topic: str, expected: int, **extra: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **extra,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        # Read until the expected count arrived and one more poll found nothing new
        # (so an unexpected extra record would be caught), or until the deadline.
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                if len(values) >= expected:
                    break
                continue
            if msg.error():
                raise AssertionError(msg.error())
            values.append(msg.value())
    finally:
        consumer.close()
    return values


def test_avro_round_trip_through_the_real_registry(
    kafka_bootstrap: str, schema_registry_url: str, unique_topic
) -> None:
    topic = unique_topic("probe.avro")
    create_topic(kafka_bootstrap, topic)
    registry = SchemaRegistryClient({"url": schema_registry_url})
    serializer = AvroSerializer(registry, SCHEMA)
    deserializer = AvroDeserializer(registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    record = {"id": "inv-1", "amount": Decimal("1234.5600")}

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    producer.produce(topic, serializer(record, ctx))
    assert producer.flush(30) == 0

    [raw] = consume_all(kafka_bootstrap, topic, 1)
    # Confluent wire format: magic byte 0, then the 4-byte big-endian schema id.
    assert raw[0] == 0
    schema_id = int.from_bytes(raw[1:5], "big")
    registered = registry.get_latest_version(f"{topic}-value")
    assert registered.schema_id == schema_id
    assert deserializer(raw, ctx) == record


def test_committed_transaction_is_seen_and_aborted_one_is_not(
    kafka_bootstrap: str, unique_topic
) -> None:
    topic = unique_topic("probe.txn")
    create_topic(kafka_bootstrap, topic)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    producer.produce(topic, b"committed-1")
    producer.produce(topic, b"committed-2")
    producer.commit_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)

    committed = consume_all(kafka_bootstrap, topic, 2, **{"isolation.level": "read_committed"})
    assert committed == [b"committed-1", b"committed-2"]
    uncommitted = consume_all(kafka_bootstrap, topic, 3, **{"isolation.level": "read_uncommitted"})
    assert b"aborted" in uncommitted


def test_postgres_round_trip(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        conn.execute("CREATE TABLE t (id text PRIMARY KEY, amount numeric(18,4), note text)")
        conn.execute(
            "INSERT INTO t VALUES (%s, %s, %s)", ("a", Decimal("10.0100"), "Réparation — 冷蔵庫")
        )
        conn.commit()
        row = conn.execute("SELECT amount, note FROM t WHERE id = 'a'").fetchone()
        assert row == (Decimal("10.0100"), "Réparation — 冷蔵庫")
        level = conn.execute("SHOW wal_level").fetchone()
    # The relay may use logical decoding later: the local stack must allow it.
    if "DATABASE_URL" not in os.environ:
        assert level == ("logical",)
