"""deploy/sql/crm_triggers.sql: plain SQL from a CRM we cannot change still yields the
same envelopes as the outbox library."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from producers.outbox.store import (
    load,
    put_credit_note,
    put_customer,
    put_invoice,
    put_payment,
    put_tax_rate,
)
from producers.relay.rows import OutboxRow, RowEncoder
from producers.serde import Serde
from producers.sql import CRM_TRIGGERS_SQL, apply_sql
from schemas import examples
from schemas.models import AggregateType, FinancialEvent, InvoiceStatus
from schemas.topics import Topics

pytestmark = pytest.mark.integration


def _outbox(conn: psycopg.Connection[Any]) -> list[tuple[str, str, Any]]:
    return [(t, k, p) for t, k, p in conn.execute(
        "SELECT type, message_key, payload FROM outbox ORDER BY sequence")]


def test_triggers_write_contract_envelopes_for_plain_sql_changes(
    crm_db: str, schema_registry_url: str
) -> None:
    apply_sql(crm_db, CRM_TRIGGERS_SQL)
    apply_sql(crm_db, CRM_TRIGGERS_SQL)  # idempotent
    with psycopg.connect(crm_db, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ('t1', 'Shop')")
        with conn.transaction():
            put_customer(conn, "t1", examples.sample_customer())
        with conn.transaction():
            put_tax_rate(conn, "t1", examples.sample_tax_rate())
        with conn.transaction():  # header + lines + job in one transaction: ONE event
            put_invoice(conn, "t1", examples.sample_invoice(status=InvoiceStatus.DRAFT))
        with conn.transaction():  # the CRM's "send" button
            conn.execute("UPDATE invoices SET status='SENT' WHERE id='inv1'")
            conn.execute("UPDATE invoices SET notes='sent by email' WHERE id='inv1'")
        with conn.transaction():
            put_payment(conn, "t1", examples.sample_payment())
            conn.execute("UPDATE invoices SET amount_paid=total, amount_due=0, status='PAID'"
                         " WHERE id='inv1'")
        with conn.transaction():
            put_credit_note(conn, "t1", examples.sample_credit_note())
        with conn.transaction():
            conn.execute("UPDATE customers SET deleted_at=now() WHERE id='c1'")
        rows = _outbox(conn)
        assert [(t, k) for t, k, _ in rows] == [
            ("customer.created", "t1:c1"), ("tax_rate.created", "t1:TX-AUSTIN"),
            ("invoice.created", "t1:c1"), ("invoice.sent", "t1:c1"),
            ("payment.received", "t1:c1"), ("invoice.paid", "t1:c1"),
            ("credit_note.issued", "t1:c1"), ("customer.deleted", "t1:c1")]
        # every row passes the relay's validation and carries what is stored
        encoder = RowEncoder(Serde(schema_registry_url), Topics(suffix="triggers"))
        for row in conn.execute(f"SELECT {OutboxRow.COLUMNS} FROM outbox ORDER BY sequence"):
            _, event = encoder.event(OutboxRow(*row))
            assert isinstance(event, FinancialEvent)
            if event.payload is not None:
                stored = load(conn, event.aggregate_type, [("t1", event.aggregate_id)])
                current = stored[("t1", event.aggregate_id)]
                if current.version == event.aggregate_version:
                    assert event.payload == current.payload
        inv = load(conn, AggregateType.INVOICE, [("t1", "inv1")])[("t1", "inv1")]
        last = json.loads(json.dumps(rows[5][2]))
        assert last["aggregate_version"] == inv.version
        assert last["payload"]["status"] == "PAID"
