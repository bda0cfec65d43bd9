"""The outbox relay against the real PostgreSQL, Kafka and schema registry."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from producers import outbox
from producers.relay import RelaySettings, run_relay
from producers.routing import event_key, topic_for
from producers.simulator import SimulationConfig, simulate_day
from schemas import examples
from schemas.models import DeadLetter, FinancialEvent
from schemas.topics import Topics
from tests.producers.conftest import Record, TopicReader, outbox_count
from tests.producers.support import (
    assert_same_duplicates,
    first_occurrences,
    start_relay,
    stop,
    wait_for_line,
)

pytestmark = pytest.mark.integration


def read_all(reader: TopicReader, topics: Topics, expect: int) -> list[Record]:
    out: list[Record] = []
    for topic in (topics.crm_customers, topics.crm_tax_rates):
        out += reader.read(topic, quiet_s=1.0)
    out += reader.read(topics.crm_financial_events, expect=expect - len(out))
    return out


def expected_by_key(events: list[FinancialEvent], topics: Topics,
                    keys: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(f"{topic_for(e.aggregate_type, topics)}|{keys[e.event_id]}",
                       []).append(e.event_id)
    return out


def outbox_keys(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {str(i): k for i, k in conn.execute("SELECT id, message_key FROM outbox")}


def test_every_crm_change_becomes_exactly_one_event_on_its_topic(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str
) -> None:
    sim = simulate_day(crm_db, SimulationConfig(tenants=2, customers_per_tenant=8,
                                                jobs_per_tenant=25, seed=7))
    keys = outbox_keys(crm_db)
    run_relay(relay_settings)

    records = read_all(reader, topics, len(sim.events))
    assert outbox_count(crm_db) == 0
    assert len(records) == len(sim.events)  # a clean run publishes no duplicate
    by_id = {r.event.event_id: r for r in records}
    assert set(by_id) == {e.event_id for e in sim.events}
    for event in sim.events:
        rec = by_id[event.event_id]
        assert rec.event == event  # the whole envelope survives Avro and the registry
        assert rec.topic == topic_for(event.aggregate_type, topics)
        assert rec.key == keys[event.event_id] == event_key(event, rec.key.split(":", 1)[1])
        assert rec.headers["event_id"] == event.event_id.encode()
    assert first_occurrences(records) == expected_by_key(sim.events, topics, keys)
    assert {"invoice.voided", "payment.refunded", "credit_note.issued", "invoice.deleted",
            "customer.updated", "invoice.partially_paid"} <= set(sim.by_type)


def _raw_row(conn: psycopg.Connection[Any], event: FinancialEvent, key: str,
             payload: Any, *, type_: str | None = None) -> str:
    conn.execute(
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, tenant_id, "
        "message_key) VALUES (%s,%s,%s,%s,%s::jsonb,%s,%s)",
        (event.event_id, event.aggregate_type.value, event.aggregate_id,
         type_ or event.event_type, json.dumps(payload), event.tenant_id, key))
    return event.event_id


@pytest.mark.parametrize("validation", ["schema", "contract"])
def test_bad_rows_are_dead_lettered_with_a_reason_and_never_block_the_rows_behind(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str,
    validation: str
) -> None:
    good1 = examples.sample_invoice_event(event_id=str(uuid.uuid4()))
    wrong_amount = examples.sample_invoice_event(event_id=str(uuid.uuid4()), version=2)
    unknown_type = examples.sample_invoice_event(event_id=str(uuid.uuid4()), version=3)
    mismatch = examples.sample_payment_event(event_id=str(uuid.uuid4()))
    good2 = examples.sample_payment_event(event_id=str(uuid.uuid4()), payment_id="pay2")
    with psycopg.connect(crm_db, autocommit=True) as conn:
        _raw_row(conn, good1, "t1:c1", good1.model_dump(mode="json"))
        bad = good1.model_dump(mode="json")
        bad.update(event_id=wrong_amount.event_id, aggregate_version=2)
        bad["payload"]["total"] = "a lot"
        _raw_row(conn, wrong_amount, "t1:c1", bad)
        _raw_row(conn, unknown_type, "t1:c1", unknown_type.model_dump(mode="json"),
                 type_="invoice.teleported")
        other = mismatch.model_dump(mode="json")
        other["aggregate_id"] = "somebody-else"
        _raw_row(conn, mismatch, "t1:c1", other)
        _raw_row(conn, good2, "t1:c1", good2.model_dump(mode="json"))

    run_relay(relay_settings.model_copy(update={"validation": validation}))

    published = reader.read(topics.crm_financial_events, expect=2)
    assert [r.event.event_id for r in published] == [good1.event_id, good2.event_id]
    assert outbox_count(crm_db) == 0
    with psycopg.connect(crm_db) as conn:
        dead = {str(i): (cls, reason) for i, cls, reason in conn.execute(
            "SELECT id, error_class, reason FROM outbox_dead_letter")}
    assert dead[wrong_amount.event_id][0] == "SchemaMismatch"
    assert "payload.total" in dead[wrong_amount.event_id][1]
    assert "a lot" in dead[wrong_amount.event_id][1] or "decimal" in dead[wrong_amount.event_id][1]
    assert dead[unknown_type.event_id][0] == "UnknownEventType"
    assert "invoice.teleported" in dead[unknown_type.event_id][1]
    assert dead[mismatch.event_id][0] in ("EnvelopeMismatch", "SchemaMismatch")
    assert "aggregate_id" in dead[mismatch.event_id][1]
    letters = reader.read(topics.crm_dlq, expect=3)
    assert len(letters) == 3
    for rec in letters:
        letter = rec.value
        assert isinstance(letter, DeadLetter)
        assert letter.stage == "relay" and letter.topic == topics.crm_financial_events
        assert letter.event_id in dead
        assert (letter.error_class, letter.reason) == dead[letter.event_id]
        assert letter.value and json.loads(letter.value)["event_id"] == letter.event_id


def test_two_relays_running_concurrently_keep_per_customer_order(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str,
    tmp_path: Path
) -> None:
    settings = relay_settings.model_copy(update={
        "batch_size": 40, "buckets_per_claim": 8, "exit_when_idle": False})
    procs = [start_relay(settings, tmp_path / f"relay{n}.log") for n in (1, 2)]
    try:
        for n in (1, 2):
            wait_for_line(tmp_path / f"relay{n}.log", "started", procs[n - 1])
        # the CRM writes while both relays drain: rows arrive mid-claim
        sim = simulate_day(crm_db, SimulationConfig(tenants=4, customers_per_tenant=10,
                                                    jobs_per_tenant=60, seed=11))
        records = read_all(reader, topics, len(sim.events))
    finally:
        codes = [stop(p) for p in procs]
    logs = [(tmp_path / f"relay{n}.log").read_text() for n in (1, 2)]
    assert codes == [0, 0], logs
    for log in logs:  # both did real work
        published = int(log.rsplit("published=", 1)[1].split()[0])
        assert published > 0, log
    assert outbox_count(crm_db) == 0
    keys = {r.event.event_id: r.key for r in records}
    assert {e.event_id for e in sim.events} == set(keys)
    assert_same_duplicates(records)
    assert first_occurrences(records) == expected_by_key(sim.events, topics, keys)


def test_relay_killed_mid_batch_loses_nothing_and_duplicates_only_same_event_ids(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str,
    tmp_path: Path
) -> None:
    sim = simulate_day(crm_db, SimulationConfig(tenants=2, customers_per_tenant=10,
                                                jobs_per_tenant=60, seed=5))
    keys = outbox_keys(crm_db)
    log = tmp_path / "relay.log"
    proc = start_relay(relay_settings, log, batch_size=150, fault_pause_before_commit_s=30)
    wait_for_line(log, "fault injection", proc)  # records acked, rows not yet deleted
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    left = outbox_count(crm_db)
    assert 0 < left == len(sim.events)  # nothing was committed

    restarted = start_relay(relay_settings, tmp_path / "restarted.log")
    assert restarted.wait(120) == 0, (tmp_path / "restarted.log").read_text()

    assert outbox_count(crm_db) == 0
    records = read_all(reader, topics, len(sim.events) + 150)
    assert {r.event.event_id for r in records} == {e.event_id for e in sim.events}
    dupes = assert_same_duplicates(records)
    assert 0 < dupes <= 150  # the killed batch was sent twice, nothing else
    assert first_occurrences(records) == expected_by_key(sim.events, topics, keys)


def test_sigterm_finishes_the_batch_and_exits_cleanly(
    relay_settings: RelaySettings, crm_db: str, tmp_path: Path
) -> None:
    with psycopg.connect(crm_db, autocommit=True) as conn:
        outbox.ensure_tenant(conn, "t1", "Shop")
        outbox.save_customer(conn, "t1", examples.sample_customer())
    log = tmp_path / "relay.log"
    proc = start_relay(relay_settings, log, exit_when_idle=False,
                       fault_pause_before_commit_s=1.5)
    wait_for_line(log, "fault injection", proc)
    assert stop(proc) == 0
    assert outbox_count(crm_db) == 0  # the in-flight batch was committed, not abandoned
    assert "published=1" in log.read_text()


def test_relay_in_a_thread_stops_on_request(relay_settings: RelaySettings) -> None:
    from producers.relay import Relay
    relay = Relay(relay_settings.model_copy(update={"exit_when_idle": False}))
    thread = threading.Thread(target=relay.run)
    thread.start()
    relay.stop.set()
    thread.join(10)
    relay.close()
    assert not thread.is_alive()
