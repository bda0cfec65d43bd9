"""A scripted sequence of CRM changes covering every event type, used to check that the
relay, the poller and the webhook receiver emit the same envelopes for the same changes.
Each step is one transaction; a callback runs after each (the poller polls there)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg

from producers import outbox
from schemas import examples
from schemas.models import (
    AggregateType,
    CreditDisposition,
    FinancialEvent,
    InvoiceStatus,
    PaymentMethod,
)

D = Decimal


def run_scenario(conn: psycopg.Connection[Any],
                 after_each: Callable[[], None] = lambda: None) -> list[FinancialEvent]:
    t = "t1"
    out: list[FinancialEvent] = []

    def step(result: FinancialEvent | list[FinancialEvent]) -> None:
        out.extend(result if isinstance(result, list) else [result])
        after_each()

    outbox.ensure_tenant(conn, t, "Shop")
    step(outbox.save_tax_rate(conn, t, examples.sample_tax_rate()))
    step(outbox.save_customer(conn, t, examples.sample_customer("c1")))
    step(outbox.save_customer(conn, t, examples.sample_customer(
        "c2", display_name="Café Zürich", tax_exempt=True, tax_exemption_number="EX-1")))
    step(outbox.save_invoice(conn, t, examples.sample_invoice(
        "inv1", "c1", status=InvoiceStatus.DRAFT)))
    step(outbox.save_invoice(conn, t, examples.sample_invoice(
        "inv1", "c1", status=InvoiceStatus.DRAFT, notes="edited draft")))
    step(outbox.set_invoice_status(conn, t, "inv1", InvoiceStatus.SENT))
    step(outbox.save_invoice(conn, t, examples.sample_invoice(
        "inv1", "c1", status=InvoiceStatus.SENT, po_number="PO-7")))  # edit after sending
    step(outbox.record_payment(conn, t, examples.sample_payment(
        "pay1", "c1", invoice_id="inv1", amount=D("100.00"), method=PaymentMethod.CASH)))
    step(outbox.record_payment(conn, t, examples.sample_payment(
        "pay2", "c1", invoice_id="inv1", amount=D("190.92"))))
    step(outbox.save_invoice(conn, t, examples.sample_invoice(
        "inv2", "c2", status=InvoiceStatus.SENT)))
    step(outbox.issue_credit_note(conn, t, examples.sample_credit_note(
        "cn1", "c2", invoice_id="inv2", disposition=CreditDisposition.CREDITED)))
    step(outbox.set_invoice_status(conn, t, "inv1", InvoiceStatus.VOID))  # void after payment
    step(outbox.record_payment(conn, t, examples.sample_payment(
        "ref1", "c1", invoice_id="inv1", amount=D("290.92"),
        kind=examples.PaymentKind.REFUND, refund_of="pay2").model_copy(
            update={"allocations": ()})))
    step(outbox.save_invoice(conn, t, examples.sample_invoice(
        "inv3", "c2", status=InvoiceStatus.DRAFT)))
    step(outbox.delete_aggregate(conn, t, AggregateType.INVOICE, "inv3"))
    step(outbox.save_customer(conn, t, examples.sample_customer(
        "c1", email="zoe.new@example.org")))
    return out


def comparable(event: FinancialEvent) -> tuple[Any, ...]:
    """What must agree across producers: everything but event id, source and time."""
    return (event.event_type, event.op, event.tenant_id, event.aggregate_type,
            event.aggregate_id, event.aggregate_version, event.payload)
