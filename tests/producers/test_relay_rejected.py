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
from schemas.models import DeadLetter
from schemas.topics import Topics
from tests.producers.conftest import TopicReader, outbox_count
from tests.producers.test_relay import _raw_row

pytestmark = pytest.mark.integration


def test_a_record_the_broker_refuses_is_dead_lettered_and_the_others_published(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str,
    kafka_bootstrap: str
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource("topic", topics.crm_customers,
                              set_config={"max.message.bytes": "3000"})
    for future in admin.alter_configs([resource]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while True:  # the broker applies the change asynchronously: wait until it reports it
        check = ConfigResource("topic", topics.crm_customers)
        config = admin.describe_configs([check])[check].result(30)
        if config["max.message.bytes"].value == "3000":
            break
        assert time.monotonic() < deadline, "max.message.bytes was not applied"
        time.sleep(0.2)
    time.sleep(1.0)  # the metadata image and the log's config are updated one after the other
    huge = examples.sample_customer_event(
        event_id=str(uuid.uuid4()), customer=examples.sample_customer(
            "c1", company_name=secrets.token_hex(6000)))  # lz4 cannot shrink it enough
    invoice = examples.sample_invoice_event(event_id=str(uuid.uuid4()))
    with psycopg.connect(crm_db, autocommit=True) as conn:
        _raw_row(conn, huge, "t1:c1", huge.model_dump(mode="json"))
        _raw_row(conn, invoice, "t1:c1", invoice.model_dump(mode="json"))

    run_relay(relay_settings)

    published = reader.read(topics.crm_financial_events, expect=1)
    assert [r.event.event_id for r in published] == [invoice.event_id]
    assert outbox_count(crm_db) == 0
    with psycopg.connect(crm_db) as conn:
        dead = {str(i): (cls, reason) for i, cls, reason in conn.execute(
            "SELECT id, error_class, reason FROM outbox_dead_letter")}
    assert list(dead) == [huge.event_id]
    assert dead[huge.event_id][0] == "BrokerRejected"
    assert "too large" in dead[huge.event_id][1].lower()
    letters = reader.read(topics.crm_dlq, expect=1)
    assert len(letters) == 1 and isinstance(letters[0].value, DeadLetter)
    assert letters[0].value.event_id == huge.event_id
