"""The status poller against the real PostgreSQL, Kafka and registry."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from producers import outbox
from producers.poller import Poller, PollerState, SqlPollSource
from producers.publisher import Publisher
from producers.relay import RelaySettings, run_relay
from schemas import examples
from schemas.models import EventSource, InvoiceStatus
from schemas.topics import Topics
from tests.producers.conftest import TopicReader
from tests.producers.scenario import comparable, run_scenario

pytestmark = pytest.mark.integration


def make_poller(crm_db: str, kafka_bootstrap: str, schema_registry_url: str, topics: Topics,
                overlap_s: float = 30) -> Poller:
    return Poller(SqlPollSource(crm_db), PollerState(crm_db, "sql"),
                  Publisher(kafka_bootstrap, schema_registry_url, topics),
                  overlap=timedelta(seconds=overlap_s), page_size=3)


def read_events(reader: TopicReader, topics: Topics, expect: int) -> list[Any]:
    recs = reader.read(topics.crm_customers, quiet_s=1) + reader.read(
        topics.crm_tax_rates, quiet_s=1)
    recs += reader.read(topics.crm_financial_events, expect=expect - len(recs))
    return recs


def test_poller_emits_the_same_envelopes_as_the_relay_and_nothing_twice(
    crm_db: str, kafka_bootstrap: str, schema_registry_url: str, topics: Topics,
    relay_settings: RelaySettings, reader: TopicReader
) -> None:
    poll_topics = Topics(suffix=topics.suffix + "p")
    from producers.topics_admin import ensure_topics
    ensure_topics(kafka_bootstrap, poll_topics)
    poller = make_poller(crm_db, kafka_bootstrap, schema_registry_url, poll_topics)
    counts: list[int] = []
    with psycopg.connect(crm_db, autocommit=True) as conn:
        written = run_scenario(conn, lambda: counts.append(poller.poll_once()))
    assert poller.poll_once() == 0  # re-polling the overlap window emits nothing
    run_relay(relay_settings)

    relayed = read_events(reader, topics, len(written))
    polled = read_events(reader, poll_topics, sum(counts))
    assert len(relayed) == len(written)
    assert len(polled) == sum(counts) == len(written)  # page_size=3 forced paging
    assert Counter(comparable(r.event) for r in polled) == Counter(
        comparable(r.event) for r in relayed)
    assert {r.event.source for r in polled} == {EventSource.POLLER}
    assert sorted((r.topic.rsplit(".", 1)[0], r.key) for r in polled) == sorted(
        (r.topic.rsplit(".", 1)[0], r.key) for r in relayed)
    # a fresh poller over the same state (a restart) finds nothing new either
    again = make_poller(crm_db, kafka_bootstrap, schema_registry_url, poll_topics)
    assert again.poll_once() == 0


@pytest.mark.parametrize("overlap_s, seen", [(30, True), (0, False)])
def test_overlap_window_catches_a_transaction_that_commits_out_of_order(
    crm_db: str, kafka_bootstrap: str, schema_registry_url: str, topics: Topics,
    overlap_s: float, seen: bool
) -> None:
    poller = make_poller(crm_db, kafka_bootstrap, schema_registry_url, topics, overlap_s)
    with psycopg.connect(crm_db, autocommit=True) as conn:
        outbox.ensure_tenant(conn, "t1", "Shop")
        outbox.save_customer(conn, "t1", examples.sample_customer("c1"))
        outbox.save_invoice(conn, "t1", examples.sample_invoice(
            "slow", "c1", status=InvoiceStatus.DRAFT))
        outbox.save_invoice(conn, "t1", examples.sample_invoice(
            "fast", "c1", status=InvoiceStatus.DRAFT))
    assert poller.poll_once() == 3

    slow = psycopg.connect(crm_db)  # stamps updated_at now, commits later
    slow.execute("UPDATE invoices SET status='SENT' WHERE id='slow'")
    with psycopg.connect(crm_db, autocommit=True) as conn:
        conn.execute("UPDATE invoices SET status='SENT' WHERE id='fast'")
    assert poller.poll_once() == 1  # 'fast' only: 'slow' is not committed yet
    slow.commit()
    slow.close()
    assert poller.poll_once() == (1 if seen else 0)


def test_poller_run_loop_stops_on_request(crm_db: str, kafka_bootstrap: str,
                                          schema_registry_url: str, topics: Topics) -> None:
    poller = make_poller(crm_db, kafka_bootstrap, schema_registry_url, topics)
    thread = threading.Thread(target=poller.run, args=(0.05,))
    thread.start()
    poller.stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_http_poller_dead_letters_bad_items_without_blocking_the_rest(
    crm_db: str, kafka_bootstrap: str, schema_registry_url: str, topics: Topics,
    reader: TopicReader
) -> None:
    from tests.producers.test_poller_unit import T0, FakeCrmApi, make_source
    api = FakeCrmApi()
    api.put_invoice("a", T0)
    api.put_invoice("bad", T0 + timedelta(seconds=1), due_date="not a date")
    api.put_invoice("b", T0 + timedelta(seconds=2))
    poller = Poller(make_source(api), PollerState(crm_db, "http"),
                    Publisher(kafka_bootstrap, schema_registry_url, topics), page_size=2)
    assert poller.poll_once() == 2
    assert poller.poll_once() == 0  # the bad item is not dead-lettered again
    api.put_invoice("a", T0 + timedelta(seconds=3), status="PAID", amount_paid="290.92",
                    amount_due="0")
    assert poller.poll_once() == 1
    events = reader.read(topics.crm_financial_events, expect=3)
    assert [(r.event.aggregate_id, r.event.event_type) for r in events] == [
        ("a", "invoice.created"), ("b", "invoice.created"), ("a", "invoice.paid")]
    letters = reader.read(topics.crm_dlq, expect=1)
    assert len(letters) == 1
    letter = letters[0].value
    assert letter.stage == "poller" and "due_date" in letter.reason
    assert letter.value and b"not a date" in letter.value
