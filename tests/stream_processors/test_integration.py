"""The worker as a subprocess against the real broker and registry.

``ledger.balances`` (read_committed) must equal, to the cent, what the independent
oracle computes from the input events — also after the worker is SIGKILLed at random
points and restarted (the exactly-once test). ``ledger.entries`` must hold each
applied event once.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.examples import (
    D,
    sample_customer_event,
    sample_invoice_event,
    sample_tax_rate_event,
)
from schemas.models import FinancialEvent, Op
from schemas.topics import Topics
from tests.stream_processors.oracle import expected_balances
from tests.stream_processors.support import (
    EventWriter,
    build_workload,
    create_topics,
    dead_letters,
    delete_topics,
    entries,
    latest_balances,
    send_workload,
    wait_for_progress,
    wait_until_consumed,
    worker,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def names(kafka_bootstrap: str) -> Topics:
    topics = Topics(suffix=f"sp{uuid.uuid4().hex[:8]}")
    create_topics(kafka_bootstrap, topics)
    yield topics
    delete_topics(kafka_bootstrap, topics, topics.processor_app_id)


def assert_balances_match(bootstrap: str, registry: str, names: Topics,
                          events: list[FinancialEvent]) -> int:
    """Every (customer, currency) of the oracle equals ledger.balances to the cent."""
    published = latest_balances(bootstrap, registry, names)
    expected = expected_balances(events)
    checked = 0
    for (tenant, customer, currency), exp in expected.items():
        got = published.get(f"{tenant}:{customer}:{currency}")
        if got is None:
            assert exp.invoiced == exp.paid == exp.credited == exp.refunded == 0, customer
            continue
        assert (got.invoiced, got.paid, got.credited, got.refunded, got.outstanding,
                got.unapplied_credit) == (exp.invoiced, exp.paid, exp.credited, exp.refunded,
                                          exp.outstanding, exp.unapplied), customer
        aging = got.aging
        assert (aging.current + aging.d1_30 + aging.d31_60 + aging.d61_90 + aging.d90_plus
                == sum(exp.open_by_invoice.values(), start=Decimal(0)))
        checked += 1
    return checked


def assert_invoice_balances_match(bootstrap: str, registry: str, names: Topics,
                                  events: list[FinancialEvent]) -> None:
    last: dict[str, Decimal] = {}
    for entry in entries(bootstrap, registry, names):
        for inv in entry.invoice_balances:
            last[inv.invoice_id] = inv.open_balance
    for exp in expected_balances(events).values():
        for inv_id, open_ in exp.open_by_invoice.items():
            assert last[inv_id] == open_, inv_id


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_worker_matches_the_oracle_parks_and_dead_letters(
    kafka_bootstrap: str, schema_registry_url: str, names: Topics, tmp_path: Path,
    guarantee: str,
) -> None:
    writer = EventWriter(kafka_bootstrap, schema_registry_url, names)
    writer.send(sample_tax_rate_event())
    events = build_workload(seed=7, customers=20, documents=400)
    late_invoice = sample_invoice_event(customer_id="late", invoice_id="inv-late")
    ghost_invoice = sample_invoice_event(customer_id="ghost", invoice_id="inv-ghost")
    customer_of: dict[str, str] = {}
    send_workload(writer, [late_invoice, ghost_invoice, *events], customer_of)
    writer.send_raw(names.crm_financial_events, b"t1:c1", b"\x00\x00\x00\xff\xffgarbage")
    writer.flush()
    with worker(tmp_path, kafka_bootstrap, schema_registry_url, names.suffix,
                guarantee=guarantee, grace=4.0, tick=1.0) as w:
        time.sleep(2)
        writer.send(sample_customer_event(customer_id="late"))  # parked invoice proceeds
        writer.flush()
        wait_until_consumed(kafka_bootstrap, names.processor_app_id,
                            [names.crm_financial_events, names.crm_customers], 120,
                            alive=lambda: w.alive)
        time.sleep(6)  # past the grace period: the ghost invoice is dead-lettered
        wait_until_consumed(kafka_bootstrap, names.processor_app_id,
                            [names.crm_financial_events, names.crm_customers], 60)
        assert w.stop() == 0
    everything = [late_invoice, *events]
    assert assert_balances_match(kafka_bootstrap, schema_registry_url, names, everything) > 15
    assert_invoice_balances_match(kafka_bootstrap, schema_registry_url, names, everything)
    letters = {d.error_class: d for d in dead_letters(kafka_bootstrap, schema_registry_url,
                                                      names)}
    assert set(letters) == {"AvroDecodeError", "UnknownCustomer"}
    assert letters["UnknownCustomer"].event_id == ghost_invoice.event_id
    assert letters["AvroDecodeError"].value == b"\x00\x00\x00\xff\xffgarbage"
    logged = entries(kafka_bootstrap, schema_registry_url, names)
    ids = Counter(e.event.event_id for e in logged)
    assert max(ids.values()) == 1, "an event reached ledger.entries twice"
    assert late_invoice.event_id in ids and ghost_invoice.event_id not in ids


@pytest.mark.timeout(900)
def test_sigkill_at_random_points_never_double_counts(
    kafka_bootstrap: str, schema_registry_url: str, names: Topics, tmp_path: Path
) -> None:
    rng = random.Random()
    writer = EventWriter(kafka_bootstrap, schema_registry_url, names)
    writer.send(sample_tax_rate_event())
    events = build_workload(seed=11, customers=40, documents=3000)
    customer_of: dict[str, str] = {}
    chunks = [events[k * len(events) // 4:(k + 1) * len(events) // 4] for k in range(4)]
    inputs = [names.crm_financial_events, names.crm_customers]
    kills = 0
    with worker(tmp_path, kafka_bootstrap, schema_registry_url, names.suffix) as w:
        for chunk in chunks:
            send_workload(writer, chunk, customer_of)
            writer.flush()
            for _ in range(2):
                # kill only once this incarnation has committed progress, then at a
                # random point of the work that follows
                wait_for_progress(kafka_bootstrap, names.processor_app_id, inputs, 120,
                                  alive=lambda: w.alive)
                time.sleep(rng.uniform(0.0, 1.5))
                w.kill()
                kills += 1
                w.start()
        wait_until_consumed(kafka_bootstrap, names.processor_app_id, inputs, 300,
                            alive=lambda: w.alive)
        w.wait_ready()
        assert w.stop() == 0
    assert kills == 8
    assert assert_balances_match(kafka_bootstrap, schema_registry_url, names, events) > 30
    assert_invoice_balances_match(kafka_bootstrap, schema_registry_url, names, events)
    logged = entries(kafka_bootstrap, schema_registry_url, names)
    dupes = {k: n for k, n in Counter(e.event.event_id for e in logged).items() if n > 1}
    assert not dupes, f"{len(dupes)} events reached ledger.entries more than once"
    assert not dead_letters(kafka_bootstrap, schema_registry_url, names)


@pytest.mark.timeout(900)
def test_rebalances_inside_a_running_worker_lose_and_repeat_nothing(
    kafka_bootstrap: str, schema_registry_url: str, names: Topics, tmp_path: Path
) -> None:
    """A second worker joins the group mid-run and is SIGKILLed: the first one goes
    through two in-process rebalances (revocation with transactions open, recovery of
    the partitions it gets back) while events keep arriving (issue #4, eos.py point 8)."""
    writer = EventWriter(kafka_bootstrap, schema_registry_url, names)
    writer.send(sample_tax_rate_event())
    events = build_workload(seed=13, customers=30, documents=1500)
    customer_of: dict[str, str] = {}
    chunks = [events[k * len(events) // 3:(k + 1) * len(events) // 3] for k in range(3)]
    inputs = [names.crm_financial_events, names.crm_customers]
    with worker(tmp_path, kafka_bootstrap, schema_registry_url, names.suffix) as first:
        send_workload(writer, chunks[0], customer_of)
        writer.flush()
        wait_for_progress(kafka_bootstrap, names.processor_app_id, inputs, 120,
                          alive=lambda: first.alive)
        with worker(tmp_path, kafka_bootstrap, schema_registry_url, names.suffix,
                    name="second") as second:
            second.wait_ready()  # the group was rebalanced between the two
            send_workload(writer, chunks[1], customer_of)
            writer.flush()
            wait_for_progress(kafka_bootstrap, names.processor_app_id, inputs, 120,
                              alive=lambda: first.alive and second.alive)
            second.kill()
        send_workload(writer, chunks[2], customer_of)
        writer.flush()
        wait_until_consumed(kafka_bootstrap, names.processor_app_id, inputs, 300,
                            alive=lambda: first.alive)
        assert first.stop() == 0
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert log.count("Joined group") >= 3, "the first worker was not rebalanced twice"
    assert assert_balances_match(kafka_bootstrap, schema_registry_url, names, events) > 20
    assert_invoice_balances_match(kafka_bootstrap, schema_registry_url, names, events)
    logged = entries(kafka_bootstrap, schema_registry_url, names)
    dupes = {k: n for k, n in Counter(e.event.event_id for e in logged).items() if n > 1}
    assert not dupes, f"{len(dupes)} events reached ledger.entries more than once"
    assert not dead_letters(kafka_bootstrap, schema_registry_url, names)


def test_duplicate_and_stale_change_nothing_on_the_topic(
    kafka_bootstrap: str, schema_registry_url: str, names: Topics, tmp_path: Path
) -> None:
    writer = EventWriter(kafka_bootstrap, schema_registry_url, names)
    invoice = sample_invoice_event()
    edited = sample_invoice_event(op=Op.UPDATE, version=2, invoice=invoice.payload.model_copy(  # type: ignore[union-attr]
        update={"total": D("10.00")}))
    for ev in (sample_tax_rate_event(), sample_customer_event(), edited, invoice, edited):
        writer.send(ev)
    writer.flush()
    with worker(tmp_path, kafka_bootstrap, schema_registry_url, names.suffix) as w:
        wait_until_consumed(kafka_bootstrap, names.processor_app_id,
                            [names.crm_financial_events], 60, alive=lambda: w.alive)
    (balance,) = latest_balances(kafka_bootstrap, schema_registry_url, names).values()
    assert balance.invoiced == D("10.00")
    assert [e.event.event_type for e in entries(kafka_bootstrap, schema_registry_url, names)
            ] == ["customer.created", "invoice.updated"]
