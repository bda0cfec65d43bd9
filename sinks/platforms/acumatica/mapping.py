"""Pure mapping of ledgerstream records onto Acumatica contract-based entities
(endpoint ``Default/24.200.001``: ``Customer``, ``Invoice``, ``Payment``).

Bodies are built as plain dicts and wrapped into ``{"Field": {"value": ...}}`` by
:func:`sinks.transport.session_rest.wrap_values` at the edge.

Rounding rule (explicit): Acumatica rounds line amounts to the currency precision
(2 places for USD/EUR/GBP/AUD) with midpoint away from zero, i.e. half-up for
positive and negative amounts alike: each line's ``Amount`` = ``Qty * UnitPrice``
rounded half-up per line, and the CRM's line amount wins (the unit price is
re-derived when the CRM rounded differently). Tax is sent per document as
``TaxDetails`` (one row per CRM tax code, mapped to an Acumatica ``TaxID``) with the
CRM's own taxable and tax amounts, so Acumatica does not recompute and drift; lines
carry the tenant's taxable or exempt ``TaxCategory``. ``UnitPrice`` and ``Qty`` keep
4 places.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from schemas.models import (
    CreditNote,
    Customer,
    DocumentLine,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentKind,
    TaxLine,
)
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.lines import MAPPED_KIND
from sinks.transport.session_rest import exact_quantity_price, json_number

CENT = Decimal("0.01")

#: Acumatica document types (the ``Type`` key field).
INVOICE = "Invoice"
CREDIT_MEMO = "Credit Memo"
PAYMENT = "Payment"
REFUND = "Refund"


def cents(value: Decimal) -> Decimal:
    """Half-up (midpoint away from zero) to 2 places."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Limits:
    customer_id: int
    customer_name: int
    customer_order: int
    description: int
    payment_ref: int


@dataclass(frozen=True)
class Taxes:
    """The tenant's Acumatica tax categories for taxable and non-taxable lines."""

    taxable_category: str
    exempt_category: str


def _cut(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


def customer_key(customer_id: str, prefix: str, limits: Limits) -> str:
    """The Acumatica ``CustomerID`` (key field, upper case) of a CRM customer."""
    return f"{prefix}{customer_id}".upper()[: limits.customer_id]


def customer_body(customer: Customer, key: str, customer_class: str | None,
                  limits: Limits) -> dict[str, Any]:
    address = customer.billing_address
    return {
        "CustomerID": key,
        "CustomerName": _cut(customer.company_name or customer.display_name,
                             limits.customer_name),
        "CustomerClass": customer_class,
        "CurrencyID": customer.default_currency,
        "Status": "Active" if customer.active else "Inactive",
        "TaxExemptionNumber": customer.tax_exemption_number,
        "MainContact": {
            "Email": customer.email,
            "Phone1": customer.phone,
            "Address": {
                "AddressLine1": address.line1,
                "AddressLine2": address.line2,
                "City": address.city,
                "State": address.region,
                "PostalCode": address.postal_code,
                "Country": address.country,
            },
        },
    }


def detail_lines(lines: tuple[DocumentLine, ...], mapping: TenantMapping, taxes: Taxes, *,
                 exempt: bool, limits: Limits) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        taxable = not exempt and line.tax_code is not None
        quantity, price, exact = exact_quantity_price(line.quantity, line.unit_price,
                                                      line.amount)
        description = line.description if exact else (
            f"{line.description} ({format(line.quantity.normalize(), 'f')} x "
            f"{line.unit_price})")
        out.append({
            "TransactionDescription": _cut(description, limits.description),
            "Account": mapping.income_account(MAPPED_KIND[line.kind]),
            "Qty": json_number(quantity, 4),
            "UnitPrice": json_number(price, 4),
            "Amount": json_number(cents(line.amount)),
            "TaxCategory": taxes.taxable_category if taxable else taxes.exempt_category,
        })
    return out


def tax_details(tax_lines: tuple[TaxLine, ...], mapping: TenantMapping, *,
                exempt: bool) -> list[dict[str, Any]]:
    if exempt:
        return []
    return [{"TaxID": mapping.tax_code(t.code), "TaxRate": json_number(t.rate * 100, 4),
             "TaxableAmount": json_number(t.taxable_amount),
             "TaxAmount": json_number(cents(t.tax_amount))}
            for t in tax_lines if t.tax_amount]


def document_body(document: Invoice | CreditNote, customer: str, mapping: TenantMapping,
                  taxes: Taxes, *, exempt: bool, limits: Limits,
                  reference_nbr: str | None = None) -> dict[str, Any]:
    """``Invoice`` entity of type Invoice or Credit Memo; ``CustomerOrder`` carries the
    CRM id (the lookup key), ``Description`` the CRM number."""
    invoice = isinstance(document, Invoice)
    hold = isinstance(document, Invoice) and document.status is InvoiceStatus.DRAFT
    due = document.due_date.isoformat() if isinstance(document, Invoice) else None
    description = (f"{document.number} {document.reason}" if isinstance(document, CreditNote)
                   else document.number)
    return {
        "Type": INVOICE if invoice else CREDIT_MEMO,
        "ReferenceNbr": reference_nbr,
        "Customer": customer,
        "CustomerOrder": _cut(document.id, limits.customer_order),
        "Date": document.issue_date.isoformat(),
        "DueDate": due,
        "Description": _cut(description, limits.description),
        "Hold": hold,
        "Details": detail_lines(document.lines, mapping, taxes, exempt=exempt, limits=limits),
        "TaxDetails": tax_details(document.tax_lines, mapping, exempt=exempt),
    }


def payment_body(payment: Payment, customer: str, cash_account: str, method: str,
                 applications: list[tuple[str, str, Decimal]], *, limits: Limits,
                 fee_entry_type: str | None = None) -> dict[str, Any]:
    """``Payment`` entity (Type Payment or Refund). ``applications`` are
    ``(DocType, ReferenceNbr, amount)``; the processor fee is a bank charge."""
    body: dict[str, Any] = {
        "Type": REFUND if payment.kind is PaymentKind.REFUND else PAYMENT,
        "CustomerID": customer,
        "PaymentMethod": method,
        "CashAccount": cash_account,
        "PaymentAmount": json_number(cents(payment.amount)),
        "ApplicationDate": payment.received_date.isoformat(),
        "PaymentRef": _cut(payment.number, limits.payment_ref),
        "ExternalRef": _cut(payment.id, limits.payment_ref),
        "CurrencyID": payment.currency,
        "Hold": False,
        "DocumentsToApply": [
            {"DocType": doc_type, "ReferenceNbr": nbr, "AmountPaid": json_number(amount)}
            for doc_type, nbr, amount in applications
        ],
    }
    if payment.processor_fee > 0 and payment.kind is PaymentKind.PAYMENT:
        body["Charges"] = [{"EntryTypeID": fee_entry_type,
                            "Amount": json_number(cents(payment.processor_fee))}]
    return body


def credit_application_body(credit_memo_nbr: str, customer: str,
                            applications: list[tuple[str, Decimal]]) -> dict[str, Any]:
    """Applying a released credit memo to invoices: a ``Payment`` of type Credit Memo
    keyed by the memo's number, with the invoices in ``DocumentsToApply``."""
    return {
        "Type": CREDIT_MEMO,
        "ReferenceNbr": credit_memo_nbr,
        "CustomerID": customer,
        "Hold": False,
        "DocumentsToApply": [
            {"DocType": INVOICE, "ReferenceNbr": nbr, "AmountPaid": json_number(amount)}
            for nbr, amount in applications
        ],
    }
