"""Enums of the event contract. Each class name equals its Avro enum name and each
member's value equals its Avro symbol, so the contract test can compare them."""

from __future__ import annotations

from enum import StrEnum


class Op(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class AggregateType(StrEnum):
    CUSTOMER = "CUSTOMER"
    INVOICE = "INVOICE"
    PAYMENT = "PAYMENT"
    CREDIT_NOTE = "CREDIT_NOTE"
    TAX_RATE = "TAX_RATE"


class EventSource(StrEnum):
    OUTBOX = "OUTBOX"
    POLLER = "POLLER"
    WEBHOOK = "WEBHOOK"


class InvoiceStatus(StrEnum):
    DRAFT = "DRAFT"
    SENT = "SENT"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PAID = "PAID"
    VOID = "VOID"


class LineKind(StrEnum):
    LABOR = "LABOR"
    PART = "PART"
    TRIP_FEE = "TRIP_FEE"
    DIAGNOSTIC_FEE = "DIAGNOSTIC_FEE"
    DISCOUNT = "DISCOUNT"
    OTHER = "OTHER"


class PaymentKind(StrEnum):
    """Direction of a payment: money in (PAYMENT) or back out to the customer (REFUND)."""

    PAYMENT = "PAYMENT"
    REFUND = "REFUND"


class PaymentMethod(StrEnum):
    CARD = "CARD"
    CASH = "CASH"
    CHECK = "CHECK"
    FINANCING = "FINANCING"
    BANK_TRANSFER = "BANK_TRANSFER"
    OTHER = "OTHER"


class CreditDisposition(StrEnum):
    """REFUNDED: money went back to the customer. CREDITED: kept as credit on account."""

    REFUNDED = "REFUNDED"
    CREDITED = "CREDITED"


class RoundingMode(StrEnum):
    """The rounding the processor used; values map onto :mod:`decimal`'s ROUND_* modes."""

    HALF_UP = "HALF_UP"
    HALF_EVEN = "HALF_EVEN"
    HALF_DOWN = "HALF_DOWN"
    UP = "UP"
    DOWN = "DOWN"
    CEILING = "CEILING"
    FLOOR = "FLOOR"

    @property
    def decimal_mode(self) -> str:
        """The :mod:`decimal` constant, e.g. ``ROUND_HALF_UP``, for ``Decimal.quantize``."""
        return f"ROUND_{self.value}"
