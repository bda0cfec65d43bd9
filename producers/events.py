"""The one place that decides what an event is: its type, its op, its id.

The relay, the poller and the webhook receiver must emit the *same* envelope for the same
CRM change, so the vocabulary of event types, the mapping from a status transition to an
event type, and the envelope builder live here and nowhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime

from schemas.models import (
    AggregateType,
    CreditNote,
    Customer,
    EventSource,
    FinancialEvent,
    Invoice,
    InvoiceStatus,
    Op,
    Payload,
    Payment,
    PaymentKind,
    TaxRate,
)

EVENT_TYPES: dict[AggregateType, frozenset[str]] = {
    AggregateType.CUSTOMER: frozenset(
        {"customer.created", "customer.updated", "customer.deleted"}
    ),
    AggregateType.TAX_RATE: frozenset(
        {"tax_rate.created", "tax_rate.updated", "tax_rate.deleted"}
    ),
    AggregateType.INVOICE: frozenset(
        {
            "invoice.created",
            "invoice.updated",
            "invoice.sent",
            "invoice.partially_paid",
            "invoice.paid",
            "invoice.voided",
            "invoice.deleted",
        }
    ),
    AggregateType.PAYMENT: frozenset(
        {"payment.received", "payment.refunded", "payment.updated", "payment.deleted"}
    ),
    AggregateType.CREDIT_NOTE: frozenset(
        {"credit_note.issued", "credit_note.updated", "credit_note.deleted"}
    ),
}
"""Every event type a producer may emit. Anything else is a bad row (dead-lettered), so a
typo in a CRM trigger cannot invent an event type that no processor understands."""

KNOWN_EVENT_TYPES: frozenset[str] = frozenset().union(*EVENT_TYPES.values())

_CREATING = frozenset(
    {"customer.created", "tax_rate.created", "invoice.created", "payment.received",
     "payment.refunded", "credit_note.issued"}
)

_EVENT_NS = uuid.UUID("0f5c3f1e-8a43-4a53-b0de-5d3c0b8f2a77")

EVENT_ID_FACTORY: ContextVar[Callable[[], str]] = ContextVar(
    "EVENT_ID_FACTORY", default=lambda: str(uuid.uuid4()))
"""Where new outbox event ids come from: uuid4, or a seeded generator (the simulator sets
one so that a seed reproduces the same events, ids included)."""


class UnknownEventTypeError(ValueError):
    """An event type outside :data:`EVENT_TYPES` (or not matching its aggregate type)."""


def check_event_type(aggregate_type: AggregateType | str, event_type: str) -> AggregateType:
    """The aggregate type, if ``event_type`` is one we know for it; else a clear error."""
    try:
        agg = AggregateType(aggregate_type)
    except ValueError:
        raise UnknownEventTypeError(
            f"unknown aggregate type {aggregate_type!r}; expected one of "
            f"{[a.value for a in AggregateType]}"
        ) from None
    if event_type not in EVENT_TYPES[agg]:
        raise UnknownEventTypeError(
            f"unknown event type {event_type!r} for {agg.value}; expected one of "
            f"{sorted(EVENT_TYPES[agg])}"
        )
    return agg


def op_for(event_type: str) -> Op:
    """CREATE for the first event of an aggregate, DELETE for ``*.deleted``, else UPDATE."""
    if event_type in _CREATING:
        return Op.CREATE
    if event_type.endswith(".deleted"):
        return Op.DELETE
    return Op.UPDATE


_STATUS_EVENT = {
    InvoiceStatus.SENT: "invoice.sent",
    InvoiceStatus.PARTIALLY_PAID: "invoice.partially_paid",
    InvoiceStatus.PAID: "invoice.paid",
    InvoiceStatus.VOID: "invoice.voided",
}


def invoice_event_type(before: InvoiceStatus | None, after: InvoiceStatus) -> str:
    """``invoice.created`` for a new invoice; a status transition names itself
    (``invoice.sent``, ``.paid``, ``.partially_paid``, ``.voided``); any other change,
    including an edit after sending, is ``invoice.updated``."""
    if before is None:
        return "invoice.created"
    if before != after and after in _STATUS_EVENT:
        return _STATUS_EVENT[after]
    return "invoice.updated"


def event_type_for(
    aggregate_type: AggregateType,
    payload: Payload | None,
    *,
    existed: bool,
    before_status: str | None = None,
) -> str:
    """The event type of a change, given whether the aggregate existed before and (for
    invoices) its previous status. Used by the poller, which only sees states."""
    kind = aggregate_type.value.lower()
    if payload is None:
        return f"{kind}.deleted"
    if isinstance(payload, Invoice):
        before = InvoiceStatus(before_status) if existed and before_status else None
        if existed and before is None:
            return "invoice.updated"
        return invoice_event_type(before, payload.status)
    if existed:
        return f"{kind}.updated"
    if isinstance(payload, Payment):
        return "payment.refunded" if payload.kind is PaymentKind.REFUND else "payment.received"
    if isinstance(payload, CreditNote):
        return "credit_note.issued"
    return f"{kind}.created"


def aggregate_id_of(payload: Payload) -> str:
    """The aggregate id a payload carries (a tax rate's code, else its id)."""
    return payload.code if isinstance(payload, TaxRate) else payload.id


def aggregate_type_of(payload: Payload) -> AggregateType:
    for agg, cls in (
        (AggregateType.CUSTOMER, Customer),
        (AggregateType.INVOICE, Invoice),
        (AggregateType.PAYMENT, Payment),
        (AggregateType.CREDIT_NOTE, CreditNote),
        (AggregateType.TAX_RATE, TaxRate),
    ):
        if isinstance(payload, cls):
            return agg
    raise TypeError(f"{type(payload).__name__} is not a CRM payload")


def derived_event_id(source: str, tenant_id: str, aggregate_type: AggregateType,
                     aggregate_id: str, version: int, event_type: str) -> str:
    """A deterministic event id for producers that observe states (poller, webhooks): the
    same observation yields the same id, so a re-poll or a redelivery dedupes downstream."""
    name = "|".join((source, tenant_id, aggregate_type.value, aggregate_id, str(version),
                     event_type))
    return str(uuid.uuid5(_EVENT_NS, name))


def build_event(
    *,
    tenant_id: str,
    aggregate_type: AggregateType,
    aggregate_id: str,
    event_type: str,
    version: int,
    occurred_at: datetime,
    source: EventSource,
    payload: Payload | None,
    event_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> FinancialEvent:
    """The envelope; a random event id unless given. Raises on an unknown event type."""
    check_event_type(aggregate_type, event_type)
    return FinancialEvent(
        event_id=event_id or EVENT_ID_FACTORY.get()(),
        event_type=event_type,
        op=op_for(event_type),
        tenant_id=tenant_id,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        occurred_at=occurred_at,
        source=source,
        correlation_id=correlation_id,
        causation_id=causation_id,
        payload=None if op_for(event_type) is Op.DELETE else payload,
    )
