"""Pure mapping of ledgerstream records onto Sage Business Cloud Accounting v3.1 bodies.

Field names follow ``shared/specs/sage-accounting/swagger-2.0.0.json``
(``postContacts``, ``postSalesInvoices``, ``postSalesCreditNotes``,
``postContactPayments``, ``postContactAllocations``, ``postOtherPayments``). Every
function here is a table lookup plus arithmetic; no I/O, no flow control.

Rounding rule (explicit, Sage computes per line): each line's ``net_amount`` is the
CRM line amount (``quantity * unit_price`` re-derived when the CRM rounded
differently, see :func:`_quantity_and_price`) rounded half-up to 2 places, each
line's ``tax_amount`` is ``net * rate`` rounded half-up to 2 places, and then, per
tax code, the cent difference between the sum of line taxes and the CRM's document
tax for that code is put on that code's largest line, so the document Sage stores
totals exactly what the customer was billed. ``unit_price`` and ``quantity`` keep up
to 4 places (the CRM's precision for rates and quantities).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from schemas.models import (
    CreditNote,
    Customer,
    DocumentLine,
    Invoice,
    Payment,
    PaymentKind,
    PaymentMethod,
    TaxLine,
)
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.lines import MAPPED_KIND
from sinks.transport.session_rest import exact_quantity_price, json_number

CENT = Decimal("0.01")

#: CRM payment method → Sage ``payment_method_id`` (Sage's fixed list).
PAYMENT_METHODS: dict[PaymentMethod, str] = {
    PaymentMethod.CARD: "CREDIT_DEBIT",
    PaymentMethod.CASH: "CASH",
    PaymentMethod.CHECK: "CHEQUE",
    PaymentMethod.BANK_TRANSFER: "BANK_TRANSFER",
    PaymentMethod.FINANCING: "ALTERNATIVE_PAYMENT",
    PaymentMethod.OTHER: "ALTERNATIVE_PAYMENT",
}

#: Sage ``transaction_type_id`` values used here.
CUSTOMER_RECEIPT = "CUSTOMER_RECEIPT"
CUSTOMER_REFUND = "CUSTOMER_REFUND"
CUSTOMER_ALLOCATION = "CUSTOMER_ALLOCATION"
OTHER_PAYMENT = "OTHER_PAYMENT"
OTHER_RECEIPT = "OTHER_RECEIPT"


def cents(value: Decimal) -> Decimal:
    """Sage's amount rule: half-up to 2 places."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Limits:
    """Name lengths the mapping truncates to (from the platform spec)."""

    contact_name: int
    contact_reference: int
    document_reference: int
    line_description: int
    notes: int


def _cut(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


# --------------------------------------------------------------------------- contacts


def contact_body(customer: Customer, limits: Limits) -> dict[str, Any]:
    """``contact`` for POST/PUT /contacts; ``reference`` carries the CRM id so the
    contact can be found again by reference."""
    address = customer.billing_address
    person: dict[str, Any] = {"name": _cut(customer.display_name, limits.contact_name),
                              "is_main_contact": True}
    if customer.email:
        person["email"] = customer.email
    if customer.phone:
        person["telephone"] = customer.phone
    body: dict[str, Any] = {
        "name": _cut(customer.company_name or customer.display_name, limits.contact_name),
        "contact_type_ids": ["CUSTOMER"],
        "reference": _cut(customer.id, limits.contact_reference),
        "currency_id": customer.default_currency,
        "tax_number": customer.tax_exemption_number,
        "main_address": {
            k: v for k, v in {
                "address_line_1": address.line1,
                "address_line_2": address.line2,
                "city": address.city,
                "region": address.region,
                "postal_code": address.postal_code,
                "country_id": address.country,
            }.items() if v is not None
        },
        "main_contact_person": person,
    }
    return body


# --------------------------------------------------------------------------- documents


def _line_rate(line: DocumentLine, rates: dict[str, Decimal]) -> Decimal:
    if line.tax_code is None:
        return Decimal(0)
    return rates.get(line.tax_code, Decimal(0))


def _quantity_and_price(line: DocumentLine) -> tuple[Decimal, Decimal, str]:
    """Quantity, unit price and description whose product is the CRM line amount (the
    CRM amount wins, see :func:`~sinks.transport.session_rest.exact_quantity_price`)."""
    quantity, price, exact = exact_quantity_price(line.quantity, line.unit_price, line.amount)
    if exact:
        return quantity, price, line.description
    note = f"{line.description} ({format(line.quantity.normalize(), 'f')} x {line.unit_price})"
    return quantity, price, note


def document_lines(
    lines: Iterable[DocumentLine],
    tax_lines: Iterable[TaxLine],
    mapping: TenantMapping,
    *,
    exempt: bool,
    limits: Limits,
) -> list[dict[str, Any]]:
    """Sage invoice/credit-note lines with per-line net and tax (see module rounding rule).

    A line without a CRM tax code, or any line of a tax-exempt customer, gets the
    tenant's exempt tax rate id and zero tax.
    """
    lines = list(lines)
    taxes = list(tax_lines)
    rates = {t.code: t.rate for t in taxes}
    targets = {t.code: cents(t.tax_amount) for t in taxes}
    out: list[dict[str, Any]] = []
    tax_per_line: list[Decimal] = []
    for line in lines:
        net = cents(line.amount)
        quantity, unit_price, description = _quantity_and_price(line)
        taxable = not exempt and line.tax_code is not None
        tax = cents(net * _line_rate(line, rates)) if taxable else Decimal(0)
        tax_rate_id = (mapping.tax_code(line.tax_code) if taxable
                       else mapping.tax_code(None, exempt=True))
        tax_per_line.append(tax)
        out.append({
            "description": _cut(description, limits.line_description),
            "ledger_account_id": mapping.income_account(MAPPED_KIND[line.kind]),
            "quantity": json_number(quantity, 4),
            "unit_price": json_number(unit_price, 4),
            "net_amount": json_number(net),
            "tax_rate_id": tax_rate_id,
            "_tax": tax,
            "_code": line.tax_code if taxable else None,
        })
    if not exempt:
        by_code: dict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(out):
            if item["_code"] is not None:
                by_code[item["_code"]].append(index)
        for code, indexes in by_code.items():
            if code not in targets:
                continue
            diff = targets[code] - sum((tax_per_line[i] for i in indexes), Decimal(0))
            if diff:
                largest = max(indexes, key=lambda i: (abs(Decimal(str(out[i]["net_amount"]))), -i))
                tax_per_line[largest] += diff
    for item, tax in zip(out, tax_per_line, strict=True):
        del item["_tax"], item["_code"]
        item["tax_amount"] = json_number(tax)
        item["total_amount"] = json_number(Decimal(str(item["net_amount"])) + tax)
    return out


def _totals(lines: list[dict[str, Any]]) -> dict[str, float]:
    net = sum((Decimal(str(line["net_amount"])) for line in lines), Decimal(0))
    tax = sum((Decimal(str(line["tax_amount"])) for line in lines), Decimal(0))
    return {"net_amount": json_number(net), "tax_amount": json_number(tax),
            "total_amount": json_number(net + tax)}


def invoice_body(invoice: Invoice, contact_id: str, mapping: TenantMapping, *,
                 exempt: bool, limits: Limits) -> dict[str, Any]:
    """``sales_invoice`` for POST/PUT /sales_invoices. ``reference`` holds the CRM
    invoice id (the lookup key), ``invoice_number`` the CRM number."""
    lines = document_lines(invoice.lines, invoice.tax_lines, mapping, exempt=exempt,
                           limits=limits)
    notes = invoice.notes
    if invoice.po_number:
        notes = f"PO {invoice.po_number}" + (f"\n{notes}" if notes else "")
    return {
        "contact_id": contact_id,
        "date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        "invoice_number": _cut(invoice.number, limits.document_reference),
        "reference": _cut(invoice.id, limits.document_reference),
        "notes": _cut(notes, limits.notes),
        "currency_id": invoice.currency,
        "status_id": "DRAFT" if invoice.status.value == "DRAFT" else None,
        "invoice_lines": lines,
        **_totals(lines),
    }


def credit_note_body(note: CreditNote, contact_id: str, mapping: TenantMapping, *,
                     exempt: bool, limits: Limits) -> dict[str, Any]:
    """``sales_credit_note`` for POST /sales_credit_notes."""
    lines = document_lines(note.lines, note.tax_lines, mapping, exempt=exempt, limits=limits)
    return {
        "contact_id": contact_id,
        "date": note.issue_date.isoformat(),
        "credit_note_number": _cut(note.number, limits.document_reference),
        "reference": _cut(note.id, limits.document_reference),
        "notes": _cut(note.reason, limits.notes),
        "currency_id": note.currency,
        "credit_note_lines": lines,
        **_totals(lines),
    }


# --------------------------------------------------------------------------- money


def receipt_body(payment: Payment, contact_id: str, bank_account_id: str,
                 allocations: list[tuple[str, Decimal]], *, limits: Limits) -> dict[str, Any]:
    """``contact_payment`` for a customer receipt (PAYMENT) or refund (REFUND).

    The receipt is the amount less the tip (the tip is income, posted on its own);
    whatever is not allocated to an invoice is left on account.
    """
    received = cents(payment.amount - payment.tip)
    allocated = sum((amount for _, amount in allocations), Decimal(0))
    body: dict[str, Any] = {
        "transaction_type_id": (CUSTOMER_REFUND if payment.kind is PaymentKind.REFUND
                                else CUSTOMER_RECEIPT),
        "contact_id": contact_id,
        "bank_account_id": bank_account_id,
        "date": payment.received_date.isoformat(),
        "total_amount": json_number(received),
        "payment_method_id": PAYMENT_METHODS[payment.method],
        "currency_id": payment.currency,
        "reference": _cut(payment.id, limits.document_reference),
        "allocated_artefacts": [
            {"artefact_id": artefact, "amount": json_number(amount)}
            for artefact, amount in allocations
        ] or None,
    }
    on_account = received - allocated
    if on_account > 0 and allocations:
        body["payment_on_account"] = {"contact_id": contact_id,
                                      "date": payment.received_date.isoformat(),
                                      "total_amount": json_number(on_account),
                                      "reference": body["reference"]}
    return body


def bank_line_body(*, receipt: bool, date: str, bank_account_id: str, ledger_account_id: str,
                   amount: Decimal, reference: str, details: str,
                   payment_method_id: str) -> dict[str, Any]:
    """``other_payment`` moving ``amount`` between a bank account and a ledger account:
    a processor fee (OTHER_PAYMENT out of the bank) or a tip (OTHER_RECEIPT)."""
    value = json_number(amount)
    return {
        "transaction_type_id": OTHER_RECEIPT if receipt else OTHER_PAYMENT,
        "date": date,
        "bank_account_id": bank_account_id,
        "payment_method_id": payment_method_id,
        "total_amount": value,
        "reference": reference,
        "payment_lines": [{"ledger_account_id": ledger_account_id, "total_amount": value,
                           "net_amount": value, "details": details}],
    }


def allocation_body(contact_id: str, date: str, credit_note_id: str,
                    allocations: list[tuple[str, Decimal]]) -> dict[str, Any]:
    """``contact_allocation`` of a credit note to invoices: the invoices take positive
    amounts and the credit note the negative sum (Sage allocations balance to zero)."""
    total = sum((amount for _, amount in allocations), Decimal(0))
    return {
        "transaction_type_id": CUSTOMER_ALLOCATION,
        "contact_id": contact_id,
        "date": date,
        "allocated_artefacts": [
            *({"artefact_id": artefact, "amount": json_number(amount)}
              for artefact, amount in allocations),
            {"artefact_id": credit_note_id, "amount": json_number(-total)},
        ],
    }
