"""The CRM simulator on the real PostgreSQL: deterministic under a seed, covers the
repair-shop cases the other components must handle, paces to a rate, and several
simulators can write disjoint shops into one database."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from ledgerstream.cli import main as cli
from producers.simulator import SimulationConfig, simulate_day
from producers.sql import apply_crm_schema
from schemas.models import (
    CreditDisposition,
    CreditNote,
    Customer,
    FinancialEvent,
    Invoice,
    InvoiceStatus,
    Op,
    Payment,
    PaymentKind,
)

pytestmark = pytest.mark.integration


def business(events: list[FinancialEvent]) -> list[tuple[Any, ...]]:
    """What must repeat under a seed: the business content, not the database's clock."""
    return [(e.event_id, e.event_type, str(e.op), e.tenant_id, e.aggregate_id,
             e.aggregate_version,
             e.payload.model_dump_json() if e.payload is not None else None) for e in events]


def test_same_seed_same_activity(fresh_database: str, database_url: str) -> None:
    apply_crm_schema(fresh_database)
    first = simulate_day(fresh_database, SimulationConfig(tenants=2, jobs_per_tenant=8,
                                                          customers_per_tenant=4, seed=11))
    # a second, empty database: same seed, same events, ids included
    info = psycopg.conninfo.conninfo_to_dict(fresh_database)
    info["dbname"] = f"{info['dbname']}_b"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{info["dbname"]}"')
    other = psycopg.conninfo.make_conninfo(**info)
    try:
        apply_crm_schema(other)
        second = simulate_day(other, SimulationConfig(tenants=2, jobs_per_tenant=8,
                                                      customers_per_tenant=4, seed=11))
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{info["dbname"]}" WITH (FORCE)')
    assert business(first.events) == business(second.events)
    third_db = fresh_database
    third = simulate_day(third_db, SimulationConfig(tenants=2, jobs_per_tenant=8,
                                                    customers_per_tenant=4, seed=12,
                                                    first_tenant=50))
    assert business(third.events) != business(first.events)


def test_covers_the_cases_downstream_must_handle(fresh_database: str) -> None:
    apply_crm_schema(fresh_database)
    result = simulate_day(fresh_database, SimulationConfig(tenants=3, jobs_per_tenant=40,
                                                           customers_per_tenant=12, seed=3))
    payloads = [e.payload for e in result.events]
    customers = [p for p in payloads if isinstance(p, Customer)]
    invoices = [p for p in payloads if isinstance(p, Invoice)]
    payments = [p for p in payloads if isinstance(p, Payment)]
    notes = [p for p in payloads if isinstance(p, CreditNote)]
    assert any(c.tax_exempt for c in customers)
    assert any(any(ord(ch) > 127 for ch in c.display_name) for c in customers)
    assert {InvoiceStatus.DRAFT, InvoiceStatus.SENT, InvoiceStatus.VOID} <= {
        i.status for i in invoices}
    assert {len({tl.code for tl in i.tax_lines}) for i in invoices} >= {0, 1}
    assert any(len(i.tax_lines) == 2 for i in invoices), "two jurisdictions on one job"
    partial = [p for p in payments if p.kind is PaymentKind.PAYMENT and p.allocations
               and p.allocations[0].amount < p.amount - p.tip]
    assert partial, "an over-payment leaves unapplied credit"
    assert any(p.kind is PaymentKind.REFUND for p in payments)
    assert any(p.tip > 0 for p in payments) and any(p.processor_fee > 0 for p in payments)
    assert {n.disposition for n in notes} == {CreditDisposition.REFUNDED,
                                              CreditDisposition.CREDITED}
    assert any(e.op is Op.DELETE for e in result.events)
    # edits after sending: an invoice that is updated again once SENT
    versions = Counter((e.tenant_id, e.aggregate_id) for e in result.events
                       if isinstance(e.payload, Invoice))
    assert max(versions.values()) >= 4
    # every money amount is a Decimal in whole cents, never a float
    assert all(isinstance(i.total, Decimal) and i.total == i.total.quantize(Decimal("0.01"))
               for i in invoices)


def test_paced_to_the_rate_and_shops_kept_apart(fresh_database: str) -> None:
    apply_crm_schema(fresh_database)
    started = time.monotonic()
    seen: list[int] = []
    paced = simulate_day(fresh_database, SimulationConfig(
        tenants=1, jobs_per_tenant=6, customers_per_tenant=3, seed=5, rate=40,
        first_tenant=7), progress=seen.append)
    elapsed = time.monotonic() - started
    count = len(paced.events)
    # the last event's slot is (count - 1) / rate after the start: it cannot be earlier
    assert elapsed >= (count - 1) / 40
    assert seen and seen[-1] == count and seen == sorted(seen)
    assert {e.tenant_id for e in paced.events} == {"t007"}
    other = simulate_day(fresh_database, SimulationConfig(
        tenants=2, jobs_per_tenant=3, customers_per_tenant=2, seed=5, first_tenant=8))
    assert {e.tenant_id for e in other.events} == {"t008", "t009"}
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute("SELECT tenant_id, count(*) FROM outbox GROUP BY tenant_id"
                            ).fetchall()
    assert dict(rows) == {"t007": count,
                          **Counter(e.tenant_id for e in other.events)}


def test_rate_must_be_positive(fresh_database: str) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        simulate_day(fresh_database, SimulationConfig(rate=0))


def test_cli_simulate(fresh_database: str) -> None:
    outcome = CliRunner().invoke(cli, [
        "simulate", "--database-url", fresh_database, "--apply-schema", "--tenants", "1",
        "--jobs", "3", "--customers", "2", "--seed", "9"])
    assert outcome.exit_code == 0, outcome.output
    with psycopg.connect(fresh_database) as conn:
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    assert row is not None and row[0] > 0
    assert f"{row[0]} events in" in outcome.output


def test_cli_simulate_with_avro_rows(fresh_database: str, schema_registry_url: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", schema_registry_url)
    outcome = CliRunner().invoke(cli, [
        "simulate", "--database-url", fresh_database, "--apply-schema", "--tenants", "1",
        "--jobs", "2", "--customers", "2", "--avro", "--topic-suffix", "simcli"])
    assert outcome.exit_code == 0, outcome.output
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute("SELECT count(*), count(payload_avro), "
                            "min(get_byte(payload_avro, 0)) FROM outbox").fetchone()
    assert rows is not None and rows[0] > 0 and rows[1] == rows[0] and rows[2] == 0
