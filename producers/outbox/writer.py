"""Business change + outbox row in ONE transaction.

Every function here opens ``conn.transaction()`` (a savepoint when the caller already has
one, so several changes can be grouped), writes the CRM tables, reads the aggregate back
(so the event carries exactly what is stored, triggers and column types included) and
inserts the outbox row: both commit or neither does. The relay does the rest.

Pass an ``autocommit=True`` connection (each call is then its own transaction), or call
inside your own ``conn.transaction()`` block to group changes. On a non-autocommit
connection a prior query opens an implicit transaction that these calls only nest into.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from producers.events import build_event, invoice_event_type
from producers.outbox.avro import AvroEncoder, avro_encoder_of
from producers.outbox.store import (
    Stored,
    load,
    put_credit_note,
    put_customer,
    put_invoice,
    put_payment,
    put_tax_rate,
    soft_delete,
)
from producers.routing import BASE_TOPIC, key_for
from schemas.models import (
    AggregateType,
    CreditNote,
    Customer,
    EventSource,
    FinancialEvent,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentKind,
    TaxRate,
)

Conn = psycopg.Connection[Any]


class NotFoundError(LookupError):
    """The aggregate to change does not exist (or is deleted)."""


def insert_outbox_row(conn: Conn, event: FinancialEvent, message_key: str, *,
                      avro_encoder: AvroEncoder | None = None) -> None:
    """The outbox row of ``event``: Debezium's columns plus our key/destination.

    The transaction-scoped advisory lock on the key makes writers of one key take their
    ``sequence`` values in commit order (the second waits for the first to commit), so
    the relay's ``ORDER BY sequence`` is commit order per key, not just insert order.

    With an Avro encoder (``avro_encoder``, or one attached to ``conn`` by
    :func:`~producers.outbox.avro.use_avro_encoder`) the row also carries the event as
    Confluent-framed Avro in ``payload_avro``; an event that does not fit the contract
    raises :class:`~producers.outbox.avro.InvalidEventError` here, inside the business
    transaction. Without one the row is JSON only, as before."""
    encoder = avro_encoder or avro_encoder_of(conn)
    data = event.model_dump(mode="json")
    values: list[object] = [
        event.event_id, event.aggregate_type.value, event.aggregate_id, event.event_type,
        Jsonb(data), event.tenant_id, message_key, BASE_TOPIC[event.aggregate_type]]
    columns = _COLUMNS
    if encoder is not None:
        values.append(encoder.encode(event, data))
        columns = _COLUMNS_AVRO
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (message_key,))
    conn.execute(columns, values)


_COLUMNS = ("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, tenant_id, "
            "message_key, destination) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)")
_COLUMNS_AVRO = ("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, "
                 "tenant_id, message_key, destination, payload_avro) "
                 "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)")


def _emit(conn: Conn, stored: Stored, event_type: str, *,
          correlation_id: str | None = None) -> FinancialEvent:
    event = build_event(
        tenant_id=stored.tenant_id, aggregate_type=stored.aggregate_type,
        aggregate_id=stored.aggregate_id, event_type=event_type, version=stored.version,
        occurred_at=stored.updated_at, source=EventSource.OUTBOX, payload=stored.payload,
        correlation_id=correlation_id,
    )
    insert_outbox_row(conn, event, key_for(stored.tenant_id, stored.aggregate_type,
                                           stored.aggregate_id, stored.customer_id))
    return event


def _current(conn: Conn, agg: AggregateType, tenant_id: str, agg_id: str) -> Stored | None:
    found = load(conn, agg, [(tenant_id, agg_id)]).get((tenant_id, agg_id))
    return None if found is None or found.deleted else found


def _must(conn: Conn, agg: AggregateType, tenant_id: str, agg_id: str) -> Stored:
    found = _current(conn, agg, tenant_id, agg_id)
    if found is None:
        raise NotFoundError(f"{agg.value} {agg_id} of tenant {tenant_id} does not exist")
    return found


def _reload(conn: Conn, agg: AggregateType, tenant_id: str, agg_id: str) -> Stored:
    return load(conn, agg, [(tenant_id, agg_id)])[(tenant_id, agg_id)]


def ensure_tenant(conn: Conn, tenant_id: str, name: str, currency: str = "USD") -> None:
    """Tenants are configuration, not events: no outbox row."""
    with conn.transaction():
        conn.execute("INSERT INTO tenants (tenant_id, name, default_currency) VALUES (%s,%s,%s)"
                     " ON CONFLICT (tenant_id) DO NOTHING", (tenant_id, name, currency))


def save_customer(conn: Conn, tenant_id: str, customer: Customer) -> FinancialEvent:
    """Create or update a customer: ``customer.created`` / ``customer.updated``."""
    with conn.transaction():
        existed = _current(conn, AggregateType.CUSTOMER, tenant_id, customer.id) is not None
        put_customer(conn, tenant_id, customer)
        stored = _reload(conn, AggregateType.CUSTOMER, tenant_id, customer.id)
        return _emit(conn, stored, "customer.updated" if existed else "customer.created")


def save_tax_rate(conn: Conn, tenant_id: str, rate: TaxRate) -> FinancialEvent:
    """Create or update a (multi-component) tax rate."""
    with conn.transaction():
        existed = _current(conn, AggregateType.TAX_RATE, tenant_id, rate.code) is not None
        put_tax_rate(conn, tenant_id, rate)
        stored = _reload(conn, AggregateType.TAX_RATE, tenant_id, rate.code)
        return _emit(conn, stored, "tax_rate.updated" if existed else "tax_rate.created")


def save_invoice(conn: Conn, tenant_id: str, invoice: Invoice) -> FinancialEvent:
    """Create an invoice (with its lines and job) or replace it; the event type follows the
    status transition (``invoice.sent``, ``.paid``, ``.voided``) or is ``invoice.updated``
    for an edit, including an edit after sending."""
    with conn.transaction():
        before = _current(conn, AggregateType.INVOICE, tenant_id, invoice.id)
        put_invoice(conn, tenant_id, invoice)
        stored = _reload(conn, AggregateType.INVOICE, tenant_id, invoice.id)
        old = InvoiceStatus(before.status) if before and before.status else None
        return _emit(conn, stored, invoice_event_type(old, invoice.status))


def _invoice(stored: Stored) -> Invoice:
    assert isinstance(stored.payload, Invoice)
    return stored.payload


def set_invoice_status(conn: Conn, tenant_id: str, invoice_id: str,
                       status: InvoiceStatus) -> FinancialEvent:
    """Send or void an invoice (``invoice.sent`` / ``invoice.voided``)."""
    with conn.transaction():
        inv = _invoice(_must(conn, AggregateType.INVOICE, tenant_id, invoice_id))
        return save_invoice(conn, tenant_id, inv.model_copy(update={"status": status}))


def delete_aggregate(conn: Conn, tenant_id: str, agg: AggregateType,
                     aggregate_id: str) -> FinancialEvent:
    """Soft-delete (so pollers see it too) and emit ``<aggregate>.deleted`` with no payload;
    the key still names the customer, read from the stored row."""
    with conn.transaction():
        before = _must(conn, agg, tenant_id, aggregate_id)
        soft_delete(conn, tenant_id, agg, aggregate_id)
        stored = replace(_reload(conn, agg, tenant_id, aggregate_id),
                         customer_id=before.customer_id)
        return _emit(conn, stored, f"{agg.value.lower()}.deleted")


def _settle(inv: Invoice, paid_delta: Decimal, credited_delta: Decimal) -> Invoice:
    """Apply money to an invoice: paid/credited amounts lower what is due; the status
    follows unless the invoice is a draft or void (money against those stays unapplied)."""
    paid = inv.amount_paid + paid_delta
    due = inv.amount_due - paid_delta - credited_delta
    status = inv.status
    if status not in (InvoiceStatus.VOID, InvoiceStatus.DRAFT):
        if due <= 0:
            status = InvoiceStatus.PAID
        elif due < inv.total:
            status = InvoiceStatus.PARTIALLY_PAID
        else:
            status = InvoiceStatus.SENT
    return inv.model_copy(update={"amount_paid": paid, "amount_due": due, "status": status})


def _apply_allocations(conn: Conn, tenant_id: str, allocations: dict[str, Decimal], *,
                       credit: bool) -> list[FinancialEvent]:
    events = []
    for invoice_id, amount in sorted(allocations.items()):
        inv = _invoice(_must(conn, AggregateType.INVOICE, tenant_id, invoice_id))
        paid, credited = (Decimal(0), amount) if credit else (amount, Decimal(0))
        events.append(save_invoice(conn, tenant_id, _settle(inv, paid, credited)))
    return events


def record_payment(conn: Conn, tenant_id: str, payment: Payment) -> list[FinancialEvent]:
    """A payment (``payment.received``) or refund (``payment.refunded``) with its
    allocations; each allocated invoice's paid amount and status move in the same
    transaction (``invoice.partially_paid`` / ``invoice.paid`` follow the payment event).
    Refunds return money and leave invoices as they are (the credit or over-payment they
    refund was already off the invoice)."""
    with conn.transaction():
        if _current(conn, AggregateType.PAYMENT, tenant_id, payment.id) is not None:
            raise ValueError(f"payment {payment.id} already exists; use update_payment")
        put_payment(conn, tenant_id, payment)
        stored = _reload(conn, AggregateType.PAYMENT, tenant_id, payment.id)
        kind = "payment.refunded" if payment.kind is PaymentKind.REFUND else "payment.received"
        events = [_emit(conn, stored, kind)]
        if payment.kind is PaymentKind.PAYMENT:
            events += _apply_allocations(
                conn, tenant_id, {a.invoice_id: a.amount for a in payment.allocations},
                credit=False)
        return events


def delete_payment(conn: Conn, tenant_id: str, payment_id: str) -> list[FinancialEvent]:
    """Delete a payment entered by mistake: its allocations come off the invoices."""
    with conn.transaction():
        stored = _must(conn, AggregateType.PAYMENT, tenant_id, payment_id)
        payment = stored.payload
        assert isinstance(payment, Payment)
        events = [delete_aggregate(conn, tenant_id, AggregateType.PAYMENT, payment_id)]
        if payment.kind is PaymentKind.PAYMENT:
            events += _apply_allocations(
                conn, tenant_id, {a.invoice_id: -a.amount for a in payment.allocations},
                credit=False)
        return events


def issue_credit_note(conn: Conn, tenant_id: str, note: CreditNote) -> list[FinancialEvent]:
    """``credit_note.issued``; a CREDITED note's allocations lower what the invoices owe."""
    with conn.transaction():
        if _current(conn, AggregateType.CREDIT_NOTE, tenant_id, note.id) is not None:
            raise ValueError(f"credit note {note.id} already exists")
        put_credit_note(conn, tenant_id, note)
        stored = _reload(conn, AggregateType.CREDIT_NOTE, tenant_id, note.id)
        events = [_emit(conn, stored, "credit_note.issued")]
        events += _apply_allocations(
            conn, tenant_id, {a.invoice_id: a.amount for a in note.allocations}, credit=True)
        return events
