"""Processor outputs (namespace ``io.ledgerstream.ledger``): what sinks consume."""

from __future__ import annotations

from typing import ClassVar

from schemas.avsc import LEDGER_NAMESPACE
from schemas.models._types import Amount, Currency, Id, Int32, Rate, Text, Timestamp
from schemas.models.base import AvroRecord
from schemas.models.crm import Customer, FinancialEvent
from schemas.models.enums import InvoiceStatus, RoundingMode

_NS = LEDGER_NAMESPACE


class ComputedTax(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.ComputedTax"

    code: Text
    rate: Rate
    taxable_amount: Amount
    tax_amount: Amount
    rounding: RoundingMode


class Discrepancy(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.Discrepancy"

    field: Text
    crm_value: str | None = None
    computed_value: str | None = None
    note: str | None = None


class InvoiceBalance(AvroRecord):
    avro_name: ClassVar[str] = f"{_NS}.InvoiceBalance"

    invoice_id: Id
    currency: Currency
    total: Amount
    paid: Amount
    credited: Amount
    open_balance: Amount
    status: InvoiceStatus


class AgingBuckets(AvroRecord):
    """Open amounts by days past due; ``current`` is not yet due."""

    avro_name: ClassVar[str] = f"{_NS}.AgingBuckets"

    current: Amount
    d1_30: Amount
    d31_60: Amount
    d61_90: Amount
    d90_plus: Amount


class CustomerBalance(AvroRecord):
    """Value of the compacted ``ledger.balances`` topic (key: ``topics.balance_key``)."""

    avro_name: ClassVar[str] = f"{_NS}.CustomerBalance"

    tenant_id: Id
    customer_id: Id
    currency: Currency
    invoiced: Amount
    paid: Amount
    credited: Amount
    refunded: Amount
    outstanding: Amount
    unapplied_credit: Amount
    aging: AgingBuckets
    as_of: Timestamp
    last_event_id: str


class LedgerEntry(AvroRecord):
    """One processed event with the processor's view of it."""

    avro_name: ClassVar[str] = f"{_NS}.LedgerEntry"

    event: FinancialEvent
    customer: Customer | None = None
    computed_tax: tuple[ComputedTax, ...] = ()
    discrepancies: tuple[Discrepancy, ...] = ()
    invoice_balances: tuple[InvoiceBalance, ...] = ()
    customer_balance: CustomerBalance | None = None
    processed_at: Timestamp


class DeadLetter(AvroRecord):
    """A message a stage gave up on, with its raw bytes so it can be replayed."""

    avro_name: ClassVar[str] = f"{_NS}.DeadLetter"

    topic: Text
    partition: Int32 | None = None
    offset: int | None = None
    key: bytes | None = None
    value: bytes | None = None
    error_class: Text
    reason: str
    stage: Text
    failed_at: Timestamp
    event_id: str | None = None
    tenant_id: str | None = None
