"""Fixtures for the producer tests: a CRM database with the outbox, isolated topics, and a
consumer that reads a topic back through the real registry."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from producers.relay import RelaySettings
from producers.sql import apply_crm_schema, apply_state_schema
from producers.topics_admin import ensure_topics
from schemas.models import DeadLetter, FinancialEvent
from schemas.topics import Topics


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    headers: dict[str, bytes]
    value: Any  # FinancialEvent or DeadLetter
    raw: bytes = b""  # the record's value as published (Confluent-framed Avro)

    @property
    def event(self) -> FinancialEvent:
        assert isinstance(self.value, FinancialEvent)
        return self.value


@pytest.fixture
def crm_db(fresh_database: str) -> str:
    """A fresh database with the reference CRM schema, outbox and producer state."""
    apply_crm_schema(fresh_database)
    apply_state_schema(fresh_database)
    return fresh_database


@pytest.fixture
def topics(kafka_bootstrap: str) -> Topics:
    t = Topics(suffix=uuid.uuid4().hex[:8])
    ensure_topics(kafka_bootstrap, t)
    return t


@pytest.fixture
def relay_settings(kafka_bootstrap: str, schema_registry_url: str, crm_db: str,
                   topics: Topics) -> RelaySettings:
    return RelaySettings(
        kafka_bootstrap_servers=kafka_bootstrap, schema_registry_url=schema_registry_url,
        database_url=crm_db, topic_suffix=topics.suffix, create_topics=False,
        exit_when_idle=True, idle_wait_s=0.2, batch_size=500,
    )


def outbox_count(dsn: str, table: str = "outbox") -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


class TopicReader:
    """Reads whole topics from the beginning (no group: assign every partition)."""

    def __init__(self, bootstrap: str, registry_url: str) -> None:
        self.bootstrap = bootstrap
        self.deser = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))

    def read(self, topic: str, *, expect: int | None = None, timeout_s: float = 30.0,
             quiet_s: float = 1.5) -> list[Record]:
        """All records; waits until ``expect`` arrived (then ``quiet_s`` more, to catch
        extras) or, with no expectation, until the topic is quiet."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "unused",
                             "enable.auto.commit": False, "isolation.level": "read_committed"})
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        out: list[Record] = []
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                now = time.monotonic()
                if msg is None:
                    reached = expect is None or len(out) >= expect
                    if reached and now - last > quiet_s:
                        break
                    continue
                if msg.error():
                    raise RuntimeError(str(msg.error()))
                last = now
                ctx = SerializationContext(topic, MessageField.VALUE)
                data = self.deser(msg.value(), ctx)
                model: Any = (DeadLetter.from_avro(data) if "error_class" in data
                              else FinancialEvent.from_avro(data))
                key = msg.key()
                out.append(Record(topic, msg.partition(), msg.offset(),
                                  key.decode() if key else "",
                                  {k: bytes(v) for k, v in (msg.headers() or [])}, model,
                                  msg.value() or b""))
        finally:
            consumer.close()
        return out


@pytest.fixture
def reader(kafka_bootstrap: str, schema_registry_url: str) -> TopicReader:
    return TopicReader(kafka_bootstrap, schema_registry_url)


@pytest.fixture
def crm_conn(crm_db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(crm_db) as conn:
        yield conn
