"""A record the broker refuses is dead-lettered by row, though delivery reports carry no
headers (the relay names a failed record by its value, see ``relay._Reports``)."""

from __future__ import annotations

import secrets
import time
import uuid

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from producers.relay import RelaySettings, run_relay
from schemas import examples
from schemas.models import DeadLetter, FinancialEvent
from schemas.topics import Topics
from tests.producers.conftest import TopicReader, outbox_count
from tests.producers.test_relay import _raw_row

pytestmark = pytest.mark.integration


def limit_record_size(kafka_bootstrap: str, topic: str, limit: int) -> None:
    """Lower the topic's ``max.message.bytes`` and wait until the broker applies it."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource("topic", topic, set_config={"max.message.bytes": str(limit)})
    for future in admin.alter_configs([resource]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while True:  # the broker applies the change asynchronously: wait until it reports it
        check = ConfigResource("topic", topic)
        config = admin.describe_configs([check])[check].result(30)
        if config["max.message.bytes"].value == str(limit):
            break
        assert time.monotonic() < deadline, "max.message.bytes was not applied"
        time.sleep(0.2)
    time.sleep(1.0)  # the metadata image and the log's config are updated one after the other


def huge_customer_event(version: int = 1) -> FinancialEvent:
    return examples.sample_customer_event(
        event_id=str(uuid.uuid4()), version=version, customer=examples.sample_customer(
            "c1", company_name=secrets.token_hex(6000)))  # lz4 cannot shrink it enough


def dead_rows(crm_db: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(crm_db) as conn:
        return {str(i): (cls, reason) for i, cls, reason in conn.execute(
            "SELECT id, error_class, reason FROM outbox_dead_letter")}


def test_a_record_the_broker_refuses_is_dead_lettered_and_the_others_published(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str,
    kafka_bootstrap: str
) -> None:
    limit_record_size(kafka_bootstrap, topics.crm_customers, 3000)
    huge = huge_customer_event()
    invoice = examples.sample_invoice_event(event_id=str(uuid.uuid4()))
    with psycopg.connect(crm_db, autocommit=True) as conn:
        _raw_row(conn, huge, "t1:c1", huge.model_dump(mode="json"))
        _raw_row(conn, invoice, "t1:c1", invoice.model_dump(mode="json"))

    run_relay(relay_settings)

    published = reader.read(topics.crm_financial_events, expect=1)
    assert [r.event.event_id for r in published] == [invoice.event_id]
    assert outbox_count(crm_db) == 0
    dead = dead_rows(crm_db)
    assert list(dead) == [huge.event_id]
    assert dead[huge.event_id][0] == "BrokerRejected"
    assert "too large" in dead[huge.event_id][1].lower()
    letters = reader.read(topics.crm_dlq, expect=1)
    assert len(letters) == 1 and isinstance(letters[0].value, DeadLetter)
    assert letters[0].value.event_id == huge.event_id


def test_the_batch_mates_of_a_refused_record_are_not_dead_lettered_with_it(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str,
    kafka_bootstrap: str
) -> None:
    """Same key, so the same partition and produce batch: the broker refuses the batch,
    librdkafka fails all of its records; only the one refused alone is dead-lettered."""
    limit_record_size(kafka_bootstrap, topics.crm_customers, 3000)
    huge = huge_customer_event(version=1)
    after = [examples.sample_customer_event(event_id=str(uuid.uuid4()), version=v)
             for v in (2, 3)]
    with psycopg.connect(crm_db, autocommit=True) as conn:
        for event in (huge, *after):
            _raw_row(conn, event, "t1:c1", event.model_dump(mode="json"))

    run_relay(relay_settings)

    published = reader.read(topics.crm_customers, expect=2)
    assert [r.event.event_id for r in published] == [e.event_id for e in after]
    assert outbox_count(crm_db) == 0
    assert {k: v[0] for k, v in dead_rows(crm_db).items()} == {huge.event_id: "BrokerRejected"}
