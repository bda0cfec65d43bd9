"""Hypothesis strategies: histories of CRM documents (versions, deletes, voids,
refunds, over-payments) for one tenant and a few customers."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from schemas.examples import (
    T0,
    event_id_for,
    sample_credit_note,
    sample_invoice,
    sample_payment,
)
from schemas.models import (
    AggregateType,
    Allocation,
    CreditDisposition,
    EventSource,
    FinancialEvent,
    InvoiceStatus,
    Op,
    PaymentKind,
)

TENANT = "t1"
CUSTOMERS = ("c1", "c2")
INVOICE_IDS = tuple(f"inv{i}" for i in range(5))
money = st.decimals(min_value=Decimal("0.00"), max_value=Decimal("2000.00"), places=2,
                    allow_nan=False, allow_infinity=False)
currencies = st.sampled_from(["USD", "USD", "USD", "EUR"])


def _event(kind: AggregateType, doc_id: str, version: int, op: Op, payload: object,
           verb: str) -> FinancialEvent:
    return FinancialEvent(
        event_id=event_id_for(TENANT, kind.value, doc_id, version, op),
        event_type=f"{kind.value.lower()}.{verb}", op=op, tenant_id=TENANT,
        aggregate_type=kind, aggregate_id=doc_id, aggregate_version=version,
        occurred_at=T0 + timedelta(minutes=version * 7 + len(doc_id)),
        source=EventSource.OUTBOX, payload=payload,
    )


@st.composite
def allocations(draw: st.DrawFn, budget: Decimal) -> tuple[Allocation, ...]:
    out = []
    for invoice_id in draw(st.lists(st.sampled_from(INVOICE_IDS), max_size=3, unique=True)):
        amount = draw(st.decimals(min_value=Decimal(0), max_value=budget, places=2))
        budget -= amount
        out.append(Allocation(invoice_id=invoice_id, amount=amount))
    return tuple(out)


@st.composite
def invoice_versions(draw: st.DrawFn, doc_id: str, customer: str) -> list[FinancialEvent]:
    events = []
    for version in range(1, draw(st.integers(1, 3)) + 1):
        status = draw(st.sampled_from([InvoiceStatus.SENT] * 4 + [InvoiceStatus.DRAFT,
                                                                   InvoiceStatus.VOID]))
        issue = date(2025, 1, 1) + timedelta(days=draw(st.integers(0, 60)))
        inv = sample_invoice(doc_id, customer, status=status).model_copy(update={
            "total": draw(money), "currency": draw(currencies), "issue_date": issue,
            "due_date": issue + timedelta(days=draw(st.integers(0, 45))),
        })
        events.append(_event(AggregateType.INVOICE, doc_id, version, Op.CREATE
                             if version == 1 else Op.UPDATE, inv, "created"))
    return events


@st.composite
def payment_versions(draw: st.DrawFn, doc_id: str, customer: str) -> list[FinancialEvent]:
    events = []
    for version in range(1, draw(st.integers(1, 2)) + 1):
        amount = draw(money)
        tip = draw(st.decimals(min_value=Decimal(0), max_value=amount, places=2))
        kind = draw(st.sampled_from([PaymentKind.PAYMENT, PaymentKind.PAYMENT,
                                     PaymentKind.REFUND]))
        pay = sample_payment(doc_id, customer, kind=kind).model_copy(update={
            "amount": amount, "tip": tip, "currency": draw(currencies),
            "allocations": draw(allocations(amount - tip)),
        })
        events.append(_event(AggregateType.PAYMENT, doc_id, version, Op.CREATE
                             if version == 1 else Op.UPDATE, pay, "received"))
    return events


@st.composite
def credit_versions(draw: st.DrawFn, doc_id: str, customer: str) -> list[FinancialEvent]:
    total = draw(money)
    disposition = draw(st.sampled_from(list(CreditDisposition)))
    cn = sample_credit_note(doc_id, customer, invoice_id=None,
                            disposition=disposition).model_copy(update={
        "total": total, "currency": draw(currencies),
        "allocations": () if disposition is CreditDisposition.REFUNDED
        else draw(allocations(total)),
    })
    return [_event(AggregateType.CREDIT_NOTE, doc_id, 1, Op.CREATE, cn, "issued")]


def delete_of(events: list[FinancialEvent]) -> FinancialEvent:
    last = events[-1]
    return _event(last.aggregate_type, last.aggregate_id, last.aggregate_version + 1,
                  Op.DELETE, None, "deleted")


@st.composite
def histories(draw: st.DrawFn) -> list[FinancialEvent]:
    """Every version of every document, deletes included, in creation order."""
    out: list[FinancialEvent] = []
    for customer in CUSTOMERS:
        builders = [
            *(invoice_versions(f"{customer}-{i}", customer) for i in INVOICE_IDS[:3]),
            *(payment_versions(f"{customer}-pay{i}", customer) for i in range(3)),
            *(credit_versions(f"{customer}-cn{i}", customer) for i in range(2)),
        ]
        for builder in builders:
            if not draw(st.booleans()):
                continue
            versions = draw(builder)
            if draw(st.integers(0, 5)) == 0:
                versions.append(delete_of(versions))
            out.extend(versions)
    # invoices are named <customer>-invN; point allocations at them
    return [_retarget(ev) for ev in out]


def _retarget(ev: FinancialEvent) -> FinancialEvent:
    payload = ev.payload
    allocs = getattr(payload, "allocations", None)
    if not allocs or payload is None:
        return ev
    customer = ev.customer_id
    fixed = tuple(a.model_copy(update={"invoice_id": f"{customer}-{a.invoice_id}"})
                  for a in allocs)
    return ev.model_copy(update={"payload": payload.model_copy(update={"allocations": fixed})})


def customer_key(ev: FinancialEvent) -> str:
    """The customer of an event, deletes included (generated ids are ``<customer>-...``;
    the ``schemas.examples`` samples belong to ``c1``)."""
    if ev.customer_id:
        return ev.customer_id
    return ev.aggregate_id.split("-")[0] if "-" in ev.aggregate_id else "c1"
