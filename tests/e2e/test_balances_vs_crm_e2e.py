"""The stream processor's balances against the CRM database itself, on the real stack.

The simulator writes a day of repair-shop activity into the reference CRM database;
the outbox relay and the faust processor (real subprocesses, exactly_once) turn it into
``ledger.entries`` and the compacted ``ledger.balances``. Then every customer balance
on ``ledger.balances`` and every invoice's open balance (from the newest ledger entry
that carries it) must equal, to the cent, what SQL over the CRM's current rows says
(:mod:`ledgerstream.crm_balances`, which shares no code with the processor).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient
from confluent_kafka.serialization import MessageField, SerializationContext

from deploy.localstack.stack import Endpoints
from ledgerstream.crm_balances import crm_balances
from ledgerstream.pipeline import Service
from producers.simulator import SimulationConfig, simulate_day
from producers.sql import apply_crm_schema
from producers.topics_admin import ensure_topics
from schemas.models import CustomerBalance, LedgerEntry
from schemas.serde import (
    customer_balance_deserializer,
    ledger_entry_deserializer,
    registry_client,
)
from schemas.topics import Topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

CENT = Decimal("0.01")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


METRICS_PORT = _free_port()


@pytest.fixture
def world(endpoints: Endpoints, fresh_database: str, tmp_path: Path
          ) -> Iterator[tuple[Topics, str, dict[str, Service]]]:
    topics = Topics(suffix=f"bal{uuid.uuid4().hex[:8]}")
    ensure_topics(endpoints.kafka_bootstrap, topics.specs())
    apply_crm_schema(fresh_database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERSTREAM_")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
                "SCHEMA_REGISTRY_URL": endpoints.schema_registry_url,
                "DATABASE_URL": fresh_database, "PYTHONUNBUFFERED": "1"})
    services = {
        "relay": Service("relay", [sys.executable, "-m", "producers.relay"], {
            **env, "LEDGERSTREAM_RELAY_TOPIC_SUFFIX": topics.suffix,
            "LEDGERSTREAM_RELAY_IDLE_WAIT_S": "0.3"}, tmp_path / "relay.log"),
        "processor": Service("processor", [sys.executable, "-m", "stream_processors"], {
            **env, "LEDGERSTREAM_PROCESSOR_TOPIC_SUFFIX": topics.suffix,
            "LEDGERSTREAM_PROCESSOR_DATA_DIR": str(tmp_path / "processor"),
            "LEDGERSTREAM_PROCESSOR_LOG_LEVEL": "warn",
            "LEDGERSTREAM_PROCESSOR_METRICS_PORT": str(METRICS_PORT),
            "LEDGERSTREAM_PROCESSOR_LAG_INTERVAL_SECONDS": "1"}, tmp_path / "processor.log"),
    }
    for service in services.values():
        service.start()
    try:
        yield topics, fresh_database, services
    finally:
        for service in services.values():
            with contextlib.suppress(Exception):
                service.stop()
        admin = AdminClient({"bootstrap.servers": endpoints.kafka_bootstrap})
        names = [t for t in admin.list_topics(timeout=10).topics
                 if t.endswith(f".{topics.suffix}") or t.startswith(topics.processor_app_id)]
        if names:
            for future in admin.delete_topics(names, operation_timeout=30).values():
                with contextlib.suppress(Exception):
                    future.result(timeout=30)


def read_all(bootstrap: str, registry_url: str, topic: str, expect: int | None,
             services: dict[str, Service], timeout_s: float) -> list[tuple[int, int, Any]]:
    """Every record of ``topic`` (read_committed) as (partition, offset, value); with
    ``expect``, keep reading until that many arrived."""
    registry = registry_client(registry_url)
    decode = (ledger_entry_deserializer(registry) if ".entries" in topic
              else customer_balance_deserializer(registry))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": True})
    consumer.subscribe([topic])
    out: list[tuple[int, int, Any]] = []
    partitions = None
    at_eof: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            for name, service in services.items():
                assert service.returncode is None, f"{name} died:\n{service.log_tail()}"
            for msg in consumer.consume(500, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_eof.add(msg.partition() or 0)
                        continue
                    raise AssertionError(str(err))
                at_eof.discard(msg.partition() or 0)
                value = msg.value()
                if value is not None:
                    ctx = SerializationContext(topic, MessageField.VALUE)
                    out.append((msg.partition() or 0, msg.offset() or 0, decode(value, ctx)))
            if partitions is None and consumer.assignment():
                partitions = {tp.partition for tp in consumer.assignment()}
            done = (len(out) >= expect) if expect is not None else (
                partitions is not None and at_eof >= partitions)
            if done:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(out)} records after {timeout_s}s "
                                     f"(expected {expect})")
    finally:
        consumer.close()


def test_ledger_balances_equal_the_crm_tables(
        endpoints: Endpoints, world: tuple[Topics, str, dict[str, Service]]) -> None:
    topics, dsn, services = world
    simulation = simulate_day(dsn, SimulationConfig(tenants=3, customers_per_tenant=6,
                                                    jobs_per_tenant=25, seed=77))
    documents = [e for e in simulation.events if str(e.aggregate_type) != "TAX_RATE"]
    entries = read_all(endpoints.kafka_bootstrap, endpoints.schema_registry_url,
                       topics.ledger_entries, len(documents), services, timeout_s=300)
    balances = read_all(endpoints.kafka_bootstrap, endpoints.schema_registry_url,
                        topics.ledger_balances, None, services, timeout_s=60)

    with psycopg.connect(dsn) as conn:
        crm = crm_balances(conn)
    assert len(crm) >= 10, "too little activity to prove anything"

    # newest value per balance key: compaction keeps it, and we read in offset order
    latest: dict[tuple[str, str, str], CustomerBalance] = {}
    for _, _, value in sorted(balances, key=lambda r: (r[0], r[1])):
        balance = cast(CustomerBalance, value)
        latest[(str(balance.tenant_id), str(balance.customer_id), str(balance.currency))] = (
            balance)
    # newest invoice balance: all of a customer's events share a partition (the key)
    open_by_invoice: dict[tuple[str, str], Decimal] = {}
    for _, _, value in sorted(entries, key=lambda r: (r[0], r[1])):
        entry = cast(LedgerEntry, value)
        for inv in entry.invoice_balances:
            open_by_invoice[(str(entry.event.tenant_id), str(inv.invoice_id))] = (
                inv.open_balance)

    problems = []
    for key, expected in sorted(crm.items()):
        got = latest.get(key)
        if got is None:
            problems.append(f"{key}: no balance on ledger.balances")
            continue
        for name in ("invoiced", "paid", "credited", "refunded", "outstanding"):
            want = getattr(expected, name).quantize(CENT)
            have = Decimal(getattr(got, name)).quantize(CENT)
            if want != have:
                problems.append(f"{key} {name}: CRM {want}, ledger.balances {have}")
        for invoice_id, want_open in expected.open_invoices.items():
            have_open = open_by_invoice.get((key[0], invoice_id))
            if have_open is None or have_open.quantize(CENT) != want_open.quantize(CENT):
                problems.append(f"{key} invoice {invoice_id}: CRM open {want_open}, "
                                f"ledger {have_open}")
    extra = [k for k, b in latest.items() if k not in crm and (
        b.invoiced or b.paid or b.credited or b.refunded)]
    assert not problems, "\n".join(problems)
    assert not extra, f"balances the CRM does not have: {extra}"

    # the processor's lag gauge (committed vs end offsets) reaches zero once it is done
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).text
        lags = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("ledgerstream_processor_consumer_lag_records{")
                and topics.crm_financial_events in line]
        if lags and not any(lags):
            break
        assert time.monotonic() < deadline, f"processor lag never reached 0: {lags}"
        time.sleep(0.5)
