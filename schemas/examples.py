"""Builders of realistic sample records, for every package's tests and the demo.

Figures are internally consistent (lines sum to subtotal, tax is rate x taxable
rounded half-up to cents, total = subtotal + tax) so a processor test starts from a
clean document and can introduce exactly the discrepancy it wants via
``model_copy(update=...)``. Event ids are uuid5 of the inputs unless given, so the
same call gives the same event (handy for dedupe tests).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from schemas.models import (
    Address,
    AggregateType,
    AgingBuckets,
    Allocation,
    ComputedTax,
    CreditDisposition,
    CreditNote,
    Customer,
    CustomerBalance,
    DeadLetter,
    DocumentLine,
    EventSource,
    ExternalRef,
    FinancialEvent,
    Invoice,
    InvoiceBalance,
    InvoiceStatus,
    LedgerEntry,
    LineKind,
    Op,
    Payload,
    Payment,
    PaymentKind,
    PaymentMethod,
    RepairJob,
    RoundingMode,
    TaxComponent,
    TaxLine,
    TaxRate,
    quantize,
)

_NS = uuid.UUID("6f1d6c8e-3f4e-4d8a-9a51-0c2b7c1e9d10")
T0 = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
"""The default occurred_at; samples are reproducible, not 'now'."""

D = Decimal
CENT = D("0.01")
SAMPLE_TAX_CODE = "TX-AUSTIN"
SAMPLE_TAX_RATE = D("0.0825")


def event_id_for(*parts: object) -> str:
    """A deterministic UUID for a sample event."""
    return str(uuid.uuid5(_NS, "|".join(str(p) for p in parts)))


def sample_address(**overrides: object) -> Address:
    data: dict[str, object] = {
        "line1": "1200 Barton Springs Rd",
        "line2": "Unit 4",
        "city": "Austin",
        "region": "TX",
        "postal_code": "78704",
        "country": "US",
    }
    return Address.model_validate({**data, **overrides})


def sample_customer(customer_id: str = "c1", **overrides: object) -> Customer:
    data: dict[str, object] = {
        "id": customer_id,
        "display_name": "Zoë Müller-Ramírez",
        "company_name": None,
        "email": "zoe@example.com",
        "phone": "+1-512-555-0143",
        "billing_address": sample_address(),
        "service_address": None,
        "tax_exempt": False,
        "tax_exemption_number": None,
        "default_currency": "USD",
        "external_refs": (ExternalRef(system="pos", external_id=f"POS-{customer_id}"),),
        "active": True,
    }
    return Customer.model_validate({**data, **overrides})


def sample_lines(tax_code: str | None = SAMPLE_TAX_CODE) -> tuple[DocumentLine, ...]:
    """Labor + part + trip fee: the most common repair invoice."""
    return (
        DocumentLine(line_id="l1", kind=LineKind.LABOR, description="Replace drain pump",
                     quantity=D("1.5"), unit_price=D("95.00"), tax_code=None, amount=D("142.50")),
        DocumentLine(line_id="l2", kind=LineKind.PART, description="Drain pump assembly",
                     sku="W10348269", quantity=D("1"), unit_price=D("89.99"), tax_code=tax_code,
                     amount=D("89.99")),
        DocumentLine(line_id="l3", kind=LineKind.TRIP_FEE, description="Trip charge",
                     quantity=D("1"), unit_price=D("49.00"), tax_code=None, amount=D("49.00")),
    )


def tax_lines_for(
    lines: tuple[DocumentLine, ...], code: str = SAMPLE_TAX_CODE, rate: Decimal = SAMPLE_TAX_RATE
) -> tuple[TaxLine, ...]:
    taxable = sum((line.amount for line in lines if line.tax_code == code), start=D(0))
    if not taxable:
        return ()
    tax = quantize(taxable * rate, 2)
    return (TaxLine(code=code, name="Austin sales tax", rate=rate, taxable_amount=taxable,
                    tax_amount=tax),)


def sample_invoice(
    invoice_id: str = "inv1",
    customer_id: str = "c1",
    *,
    status: InvoiceStatus = InvoiceStatus.SENT,
    amount_paid: Decimal = D(0),
    lines: tuple[DocumentLine, ...] | None = None,
    currency: str = "USD",
    **overrides: object,
) -> Invoice:
    lines = sample_lines() if lines is None else lines
    subtotal = sum((line.amount for line in lines), start=D(0))
    tax_lines = tax_lines_for(lines)
    total_tax = sum((t.tax_amount for t in tax_lines), start=D(0))
    total = subtotal + total_tax
    data: dict[str, object] = {
        "id": invoice_id,
        "number": f"INV-{invoice_id.upper()}",
        "status": status,
        "issue_date": date(2025, 3, 14),
        "due_date": date(2025, 4, 13),
        "currency": currency,
        "customer_id": customer_id,
        "po_number": None,
        "job": RepairJob(job_id=f"job-{invoice_id}", appliance_type="washer", brand="Whirlpool",
                         model="WTW5000DW1", serial_number="C91234567", technician="Sam Ortiz",
                         service_address=sample_address(),
                         completed_at=T0 - timedelta(hours=2)),
        "lines": lines,
        "prices_include_tax": False,
        "subtotal": subtotal,
        "tax_lines": tax_lines,
        "total_tax": total_tax,
        "total": total,
        "amount_paid": amount_paid,
        "amount_due": total - amount_paid,
        "notes": "Customer reports no drain at end of cycle.",
    }
    return Invoice.model_validate({**data, **overrides})


def sample_payment(
    payment_id: str = "pay1",
    customer_id: str = "c1",
    *,
    invoice_id: str = "inv1",
    amount: Decimal = D("290.92"),
    kind: PaymentKind = PaymentKind.PAYMENT,
    method: PaymentMethod = PaymentMethod.CARD,
    refund_of: str | None = None,
    **overrides: object,
) -> Payment:
    data: dict[str, object] = {
        "id": payment_id,
        "number": f"RCPT-{payment_id.upper()}",
        "kind": kind,
        "customer_id": customer_id,
        "received_date": date(2025, 3, 14),
        "method": method,
        "currency": "USD",
        "amount": amount,
        "processor_fee": (
            quantize(amount * D("0.029") + D("0.30"), 2) if method is PaymentMethod.CARD else D(0)
        ),
        "tip": D(0),
        "allocations": (Allocation(invoice_id=invoice_id, amount=amount),),
        "check_number": None,
        "card_last4": "4242" if method is PaymentMethod.CARD else None,
        "refund_of": refund_of,
    }
    return Payment.model_validate({**data, **overrides})


def sample_credit_note(
    credit_note_id: str = "cn1",
    customer_id: str = "c1",
    *,
    invoice_id: str | None = "inv1",
    disposition: CreditDisposition = CreditDisposition.CREDITED,
    **overrides: object,
) -> CreditNote:
    lines = (DocumentLine(line_id="l1", kind=LineKind.PART, description="Returned drain pump",
                          sku="W10348269", quantity=D("1"), unit_price=D("89.99"),
                          tax_code=SAMPLE_TAX_CODE, amount=D("89.99")),)
    tax_lines = tax_lines_for(lines)
    total_tax = sum((t.tax_amount for t in tax_lines), start=D(0))
    total = D("89.99") + total_tax
    allocations = (
        (Allocation(invoice_id=invoice_id, amount=total),)
        if invoice_id and disposition is CreditDisposition.CREDITED
        else ()
    )
    data: dict[str, object] = {
        "id": credit_note_id,
        "number": f"CN-{credit_note_id.upper()}",
        "customer_id": customer_id,
        "issue_date": date(2025, 3, 20),
        "currency": "USD",
        "invoice_id": invoice_id,
        "reason": "Part returned unused",
        "lines": lines,
        "prices_include_tax": False,
        "subtotal": D("89.99"),
        "tax_lines": tax_lines,
        "total_tax": total_tax,
        "total": total,
        "disposition": disposition,
        "allocations": allocations,
    }
    return CreditNote.model_validate({**data, **overrides})


def sample_tax_rate(code: str = SAMPLE_TAX_CODE, **overrides: object) -> TaxRate:
    """Austin, TX: state 6.25 % + city 1 % + transit 1 % = 8.25 %."""
    data: dict[str, object] = {
        "code": code,
        "name": "Austin sales tax",
        "jurisdiction": "US-TX-Austin",
        "components": (
            TaxComponent(name="Texas state", rate=D("0.0625")),
            TaxComponent(name="City of Austin", rate=D("0.01")),
            TaxComponent(name="Capital Metro transit", rate=D("0.01")),
        ),
        "effective_from": date(2020, 1, 1),
        "effective_to": None,
        "active": True,
    }
    return TaxRate.model_validate({**data, **overrides})


_VERBS = {Op.CREATE: "created", Op.UPDATE: "updated", Op.DELETE: "deleted"}


def _event(
    tenant: str,
    aggregate_type: AggregateType,
    aggregate_id: str,
    payload: Payload | None,
    *,
    op: Op,
    version: int,
    event_type: str | None,
    event_id: str | None,
    occurred_at: datetime | None,
    source: EventSource,
    correlation_id: str | None = None,
) -> FinancialEvent:
    kind = aggregate_type.value.lower()
    return FinancialEvent(
        event_id=event_id or event_id_for(tenant, kind, aggregate_id, version, op),
        event_type=event_type or f"{kind}.{_VERBS[op]}",
        op=op,
        tenant_id=tenant,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        occurred_at=occurred_at or T0 + timedelta(seconds=version),
        source=source,
        correlation_id=correlation_id,
        causation_id=None,
        payload=payload,
    )


def sample_invoice_event(
    tenant: str = "t1",
    customer_id: str = "c1",
    invoice_id: str = "inv1",
    *,
    op: Op = Op.CREATE,
    version: int = 1,
    event_type: str | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    source: EventSource = EventSource.OUTBOX,
    invoice: Invoice | None = None,
) -> FinancialEvent:
    """``invoice.created`` (by default) for the labor + part + trip-fee sample invoice."""
    payload = None if op is Op.DELETE else invoice or sample_invoice(invoice_id, customer_id)
    return _event(tenant, AggregateType.INVOICE, invoice_id, payload, op=op, version=version,
                  event_type=event_type, event_id=event_id, occurred_at=occurred_at, source=source)


def sample_payment_event(
    tenant: str = "t1",
    customer_id: str = "c1",
    payment_id: str = "pay1",
    *,
    invoice_id: str = "inv1",
    amount: Decimal = D("290.92"),
    version: int = 1,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    source: EventSource = EventSource.OUTBOX,
    payment: Payment | None = None,
) -> FinancialEvent:
    payload = payment or sample_payment(
        payment_id, customer_id, invoice_id=invoice_id, amount=amount
    )
    return _event(tenant, AggregateType.PAYMENT, payment_id, payload, op=Op.CREATE,
                  version=version, event_type="payment.received", event_id=event_id,
                  occurred_at=occurred_at, source=source)


def sample_refund_event(
    tenant: str = "t1",
    customer_id: str = "c1",
    refund_id: str = "ref1",
    *,
    refund_of: str = "pay1",
    invoice_id: str = "inv1",
    amount: Decimal = D("50.00"),
    version: int = 1,
    event_id: str | None = None,
) -> FinancialEvent:
    """A REFUND payment: positive amount, ``kind=REFUND``, pointing at the original payment."""
    payload = sample_payment(refund_id, customer_id, invoice_id=invoice_id, amount=amount,
                             kind=PaymentKind.REFUND, refund_of=refund_of)
    return _event(tenant, AggregateType.PAYMENT, refund_id, payload, op=Op.CREATE,
                  version=version, event_type="payment.refunded", event_id=event_id,
                  occurred_at=None, source=EventSource.OUTBOX)


def sample_credit_note_event(
    tenant: str = "t1",
    customer_id: str = "c1",
    credit_note_id: str = "cn1",
    *,
    invoice_id: str | None = "inv1",
    disposition: CreditDisposition = CreditDisposition.CREDITED,
    version: int = 1,
    event_id: str | None = None,
) -> FinancialEvent:
    payload = sample_credit_note(credit_note_id, customer_id, invoice_id=invoice_id,
                                 disposition=disposition)
    return _event(tenant, AggregateType.CREDIT_NOTE, credit_note_id, payload, op=Op.CREATE,
                  version=version, event_type="credit_note.issued", event_id=event_id,
                  occurred_at=None, source=EventSource.OUTBOX)


def sample_customer_event(
    tenant: str = "t1",
    customer_id: str = "c1",
    *,
    op: Op = Op.CREATE,
    version: int = 1,
    event_id: str | None = None,
    customer: Customer | None = None,
    source: EventSource = EventSource.OUTBOX,
) -> FinancialEvent:
    payload = None if op is Op.DELETE else customer or sample_customer(customer_id)
    return _event(tenant, AggregateType.CUSTOMER, customer_id, payload, op=op, version=version,
                  event_type=None, event_id=event_id, occurred_at=None, source=source)


def sample_tax_rate_event(
    tenant: str = "t1", code: str = SAMPLE_TAX_CODE, *, version: int = 1,
    event_id: str | None = None,
) -> FinancialEvent:
    return _event(tenant, AggregateType.TAX_RATE, code, sample_tax_rate(code), op=Op.CREATE,
                  version=version, event_type=None, event_id=event_id, occurred_at=None,
                  source=EventSource.POLLER)


def sample_customer_balance(
    tenant: str = "t1", customer_id: str = "c1", *, outstanding: Decimal = D("290.92"),
    last_event_id: str | None = None,
) -> CustomerBalance:
    return CustomerBalance(
        tenant_id=tenant, customer_id=customer_id, currency="USD",
        invoiced=outstanding, paid=D(0), credited=D(0), refunded=D(0),
        outstanding=outstanding, unapplied_credit=D(0),
        aging=AgingBuckets(current=outstanding, d1_30=D(0), d31_60=D(0), d61_90=D(0),
                           d90_plus=D(0)),
        as_of=T0 + timedelta(seconds=5),
        last_event_id=last_event_id or event_id_for(tenant, "invoice", "inv1", 1, Op.CREATE),
    )


def sample_ledger_entry(event: FinancialEvent | None = None) -> LedgerEntry:
    """The processor's output for ``event`` (default: the sample invoice event)."""
    event = event or sample_invoice_event()
    computed: tuple[ComputedTax, ...] = ()
    balances: tuple[InvoiceBalance, ...] = ()
    if isinstance(event.payload, Invoice):
        inv = event.payload
        computed = tuple(
            ComputedTax(code=t.code, rate=t.rate, taxable_amount=t.taxable_amount,
                        tax_amount=t.tax_amount, rounding=RoundingMode.HALF_UP)
            for t in inv.tax_lines
        )
        balances = (InvoiceBalance(invoice_id=inv.id, currency=inv.currency, total=inv.total,
                                   paid=inv.amount_paid, credited=D(0),
                                   open_balance=inv.amount_due, status=inv.status),)
    customer_id = event.customer_id or "c1"
    return LedgerEntry(
        event=event,
        customer=sample_customer(customer_id),
        computed_tax=computed,
        discrepancies=(),
        invoice_balances=balances,
        customer_balance=sample_customer_balance(event.tenant_id, customer_id,
                                                 last_event_id=event.event_id),
        processed_at=event.occurred_at + timedelta(milliseconds=40),
    )


def sample_dead_letter(
    topic: str = "crm.financial-events", *, value: bytes = b"\x00\x00\x00\x00\x01garbage",
    reason: str = "unknown magic byte",
) -> DeadLetter:
    return DeadLetter(
        topic=topic, partition=3, offset=1234, key=b"t1:c1", value=value,
        error_class="SerializationError", reason=reason, stage="processor",
        failed_at=T0 + timedelta(minutes=1), event_id=None, tenant_id="t1",
    )
