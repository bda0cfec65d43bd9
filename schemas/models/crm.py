"""CRM records (namespace ``io.ledgerstream.crm``): what producers publish.

Field order and names mirror the ``.avsc`` files exactly; ``tests/schemas`` walks both.
Validators hold only invariants that are true for every CRM we sync (a refund points
back to a payment, a payload matches its aggregate type); business arithmetic such as
"lines sum to subtotal" is the stream processor's job, which reports discrepancies
instead of rejecting the CRM's document.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import ClassVar

from pydantic import model_validator

from schemas.avsc import CRM_NAMESPACE
from schemas.models._types import (
    Amount,
    Country,
    Currency,
    EventId,
    Id,
    NonNegativeAmount,
    Quantity,
    Rate,
    Text,
    Timestamp,
)
from schemas.models.base import AvroRecord
from schemas.models.enums import (
    AggregateType,
    CreditDisposition,
    EventSource,
    InvoiceStatus,
    LineKind,
    Op,
    PaymentKind,
    PaymentMethod,
)

_NS = CRM_NAMESPACE


class Address(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.Address"

    line1: str
    line2: str | None = None
    city: str
    region: str | None = None
    postal_code: str | None = None
    country: Country


class ExternalRef(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.ExternalRef"

    system: Text
    external_id: Text


class Customer(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.Customer"

    id: Id
    display_name: Text
    company_name: str | None = None
    email: str | None = None
    phone: str | None = None
    billing_address: Address
    service_address: Address | None = None
    tax_exempt: bool = False
    tax_exemption_number: str | None = None
    default_currency: Currency
    external_refs: tuple[ExternalRef, ...] = ()
    active: bool = True

    @model_validator(mode="after")
    def _check(self) -> Customer:
        if self.email is not None and "@" not in self.email:
            raise ValueError(f"email {self.email!r} has no '@'")
        return self


class DocumentLine(AvroRecord):
    """A line of an invoice or credit note. DISCOUNT lines carry a negative unit price
    and amount; LABOR/PART/TRIP_FEE/DIAGNOSTIC_FEE lines are never negative."""

    avro_name: ClassVar[str] = f"{_NS}.DocumentLine"

    line_id: Id
    kind: LineKind
    description: str
    sku: str | None = None
    quantity: Quantity
    unit_price: Amount
    tax_code: str | None = None
    amount: Amount

    @model_validator(mode="after")
    def _check(self) -> DocumentLine:
        if self.kind is LineKind.DISCOUNT and self.amount > 0:
            raise ValueError(f"line {self.line_id}: a DISCOUNT amount must be <= 0")
        if self.kind not in (LineKind.DISCOUNT, LineKind.OTHER) and self.amount < 0:
            raise ValueError(f"line {self.line_id}: a {self.kind} amount must be >= 0")
        return self


class TaxLine(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.TaxLine"

    code: Text
    name: str
    rate: Rate
    taxable_amount: Amount
    tax_amount: Amount


class Allocation(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.Allocation"

    invoice_id: Id
    amount: NonNegativeAmount


class RepairJob(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.RepairJob"

    job_id: Id
    appliance_type: str
    brand: str | None = None
    model: str | None = None
    serial_number: str | None = None
    technician: str | None = None
    service_address: Address | None = None
    completed_at: Timestamp | None = None


class Invoice(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.Invoice"

    id: Id
    number: Text
    status: InvoiceStatus
    issue_date: date
    due_date: date
    currency: Currency
    customer_id: Id
    po_number: str | None = None
    job: RepairJob | None = None
    lines: tuple[DocumentLine, ...]
    prices_include_tax: bool = False
    subtotal: Amount
    tax_lines: tuple[TaxLine, ...]
    total_tax: Amount
    total: Amount
    amount_paid: Amount
    amount_due: Amount
    notes: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Invoice:
        if self.due_date < self.issue_date:
            raise ValueError(f"invoice {self.number}: due_date {self.due_date} before issue_date")
        ids = [line.line_id for line in self.lines]
        if len(ids) != len(set(ids)):
            raise ValueError(f"invoice {self.number}: duplicate line_id")
        return self


class Payment(AvroRecord):
    """Money in (PAYMENT) or out (REFUND); ``amount`` is always positive and includes
    ``tip``; ``processor_fee`` is what the processor kept (net deposit = amount - fee)."""

    avro_name: ClassVar[str] = f"{_NS}.Payment"

    id: Id
    number: Text
    kind: PaymentKind
    customer_id: Id
    received_date: date
    method: PaymentMethod
    currency: Currency
    amount: NonNegativeAmount
    processor_fee: NonNegativeAmount
    tip: NonNegativeAmount
    allocations: tuple[Allocation, ...]
    check_number: str | None = None
    card_last4: str | None = None
    refund_of: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Payment:
        if self.refund_of is not None and self.kind is not PaymentKind.REFUND:
            raise ValueError(f"payment {self.number}: refund_of is only for kind REFUND")
        if self.card_last4 is not None and not re.fullmatch(r"\d{4}", self.card_last4):
            raise ValueError(f"payment {self.number}: card_last4 must be 4 digits")
        if self.tip > self.amount:
            raise ValueError(f"payment {self.number}: tip exceeds amount")
        allocated = sum((a.amount for a in self.allocations), start=Decimal(0))
        if allocated > self.amount - self.tip:
            raise ValueError(
                f"payment {self.number}: allocations {allocated} exceed amount less tip "
                f"{self.amount - self.tip}"
            )
        return self


class CreditNote(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.CreditNote"

    id: Id
    number: Text
    customer_id: Id
    issue_date: date
    currency: Currency
    invoice_id: str | None = None
    reason: str
    lines: tuple[DocumentLine, ...]
    prices_include_tax: bool = False
    subtotal: Amount
    tax_lines: tuple[TaxLine, ...]
    total_tax: Amount
    total: Amount
    disposition: CreditDisposition
    allocations: tuple[Allocation, ...]

    @model_validator(mode="after")
    def _check(self) -> CreditNote:
        if self.disposition is CreditDisposition.REFUNDED and self.allocations:
            raise ValueError(f"credit note {self.number}: a REFUNDED credit has no allocations")
        return self


class TaxComponent(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.TaxComponent"

    name: Text
    rate: Rate
    compound: bool = False


class TaxRate(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.TaxRate"

    code: Text
    name: str
    jurisdiction: str
    components: tuple[TaxComponent, ...]
    effective_from: date
    effective_to: date | None = None
    active: bool = True

    @model_validator(mode="after")
    def _check(self) -> TaxRate:
        if not self.components:
            raise ValueError(f"tax rate {self.code}: needs at least one component")
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError(f"tax rate {self.code}: effective_to must be after effective_from")
        return self


Payload = Customer | Invoice | Payment | CreditNote | TaxRate

PAYLOAD_TYPES: dict[AggregateType, type[AvroRecord]] = {
    AggregateType.CUSTOMER: Customer,
    AggregateType.INVOICE: Invoice,
    AggregateType.PAYMENT: Payment,
    AggregateType.CREDIT_NOTE: CreditNote,
    AggregateType.TAX_RATE: TaxRate,
}
"""Which payload record each aggregate type carries."""

_EVENT_TYPE = re.compile(r"[a-z][a-z_]*\.[a-z][a-z_]*")


class FinancialEvent(AvroRecord):
    """The envelope of every crm.* message.

    Invariants: the payload's record matches ``aggregate_type`` and its id (TaxRate:
    code) equals ``aggregate_id``; ``event_type`` is ``<aggregate>.<verb>`` with the
    aggregate in lower snake case (``credit_note.issued``); only DELETE may omit the
    payload.
    """

    avro_name: ClassVar[str] = f"{_NS}.FinancialEvent"

    event_id: EventId
    event_type: str
    op: Op
    tenant_id: Id
    aggregate_type: AggregateType
    aggregate_id: Id
    aggregate_version: int
    occurred_at: Timestamp
    source: EventSource
    correlation_id: str | None = None
    causation_id: str | None = None
    payload: Customer | Invoice | Payment | CreditNote | TaxRate | None = None

    @model_validator(mode="after")
    def _check(self) -> FinancialEvent:
        if not _EVENT_TYPE.fullmatch(self.event_type):
            raise ValueError(f"event_type {self.event_type!r} is not '<aggregate>.<verb>'")
        prefix = self.event_type.partition(".")[0]
        if prefix != self.aggregate_type.value.lower():
            raise ValueError(
                f"event_type {self.event_type!r} does not start with "
                f"{self.aggregate_type.value.lower()!r}"
            )
        if self.aggregate_version < 0:
            raise ValueError("aggregate_version must be >= 0")
        if ":" in self.tenant_id:
            raise ValueError("tenant_id must not contain ':' (it is the message-key separator)")
        if self.payload is None:
            if self.op is not Op.DELETE:
                raise ValueError(f"{self.op} event needs a payload; only DELETE may omit it")
            return self
        expected = PAYLOAD_TYPES[self.aggregate_type]
        if not isinstance(self.payload, expected):
            raise ValueError(
                f"aggregate_type {self.aggregate_type} needs a {expected.__name__} payload, "
                f"got {type(self.payload).__name__}"
            )
        payload_id = self.payload.code if isinstance(self.payload, TaxRate) else self.payload.id
        if payload_id != self.aggregate_id:
            raise ValueError(f"payload id {payload_id!r} != aggregate_id {self.aggregate_id!r}")
        return self

    @property
    def customer_id(self) -> str | None:
        """The customer this event belongs to (the message key's second half), if any."""
        if isinstance(self.payload, Customer):
            return self.payload.id
        if isinstance(self.payload, Invoice | Payment | CreditNote):
            return self.payload.customer_id
        if self.aggregate_type is AggregateType.CUSTOMER:
            return self.aggregate_id
        return None
