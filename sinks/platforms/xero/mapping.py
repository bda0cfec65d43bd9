"""CRM documents → Xero Accounting API bodies: pure functions, no I/O.

Field names are Xero's (``components.schemas`` of xero_accounting.yaml). Choices:

* **Line items** carry ``AccountCode`` (the tenant's income account for the line's
  kind), ``ItemCode`` when the tenant maps items, ``TaxType`` from the tax mapping
  (exempt customers and untaxed lines get the exempt type), and an explicit
  ``TaxAmount``: the CRM's tax spread over its lines so Xero's total equals the CRM's
  to the cent, whatever rate Xero holds for the tax type. Discounts are negative
  lines on the discount account.
* **Status** AUTHORISED for a sent invoice, DRAFT for a draft; ``LineAmountTypes``
  Inclusive when the CRM's prices include tax, else Exclusive.
* **Contacts** carry the CRM customer id in ``ContactNumber`` ("used to identify
  contacts in external systems"), which is how the sink recognises its own contacts.
* **Payments** go one per allocation (a Xero payment pays exactly one invoice); each
  needs a unique ``Reference`` so a replay can find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from schemas.models import CreditNote, Customer, DocumentLine, Invoice, InvoiceStatus
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.lines import is_discount, mapped_kind, priced, tax_by_line
from sinks.platforms.common.money import round_money, wire
from sinks.platforms.common.text import Notes, fit_unique
from sinks.platforms.xero.spec import LIMITS

__all__ = [
    "allocation_body",
    "contact_body",
    "contact_number",
    "credit_note_body",
    "disambiguated_name",
    "invoice_body",
    "line_items",
    "overpayment_body",
    "overpayment_reference",
    "payment_body",
    "where_equals",
]


def _mode(mapping: TenantMapping) -> str:
    return "ROUND_HALF_UP" if mapping.rounding.mode.value == "half_up" else "ROUND_HALF_EVEN"


def where_equals(field: str, value: str) -> str:
    """A Xero ``where`` clause ``Field=="value"`` with the value escaped."""
    return f'{field}=="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def contact_number(customer_id: str) -> str:
    """The ContactNumber that marks a contact as this CRM customer's."""
    return fit_unique(customer_id, LIMITS["contact.number"])


def disambiguated_name(customer: Customer, notes: Notes) -> str:
    """The contact Name to use when the plain one belongs to another active contact:
    the name followed by the CRM id."""
    suffix = f" ({customer.id})"
    name = customer.display_name[: LIMITS["contact.name"] - len(suffix)] + suffix
    notes.add(f"contact name {customer.display_name!r} is taken in Xero; used {name!r}")
    return name


def contact_body(customer: Customer, mapping: TenantMapping, notes: Notes, *,
                 name: str | None = None) -> dict[str, Any]:
    address = customer.billing_address
    body: dict[str, Any] = {
        "Name": name or notes.fit("contact Name", customer.display_name.strip(),
                                  LIMITS["contact.name"]),
        "ContactNumber": contact_number(customer.id),
        "IsCustomer": True,
        "DefaultCurrency": customer.default_currency,
        "Addresses": [{
            "AddressType": "POBOX",
            "AddressLine1": address.line1,
            **({"AddressLine2": address.line2} if address.line2 else {}),
            "City": address.city,
            **({"Region": address.region} if address.region else {}),
            **({"PostalCode": address.postal_code} if address.postal_code else {}),
            "Country": address.country,
        }],
    }
    if customer.email:
        body["EmailAddress"] = customer.email
    if customer.phone:
        body["Phones"] = [{"PhoneType": "DEFAULT", "PhoneNumber": customer.phone}]
    if customer.tax_exempt:
        body["AccountsReceivableTaxType"] = mapping.tax_code(None, exempt=True)
        if customer.tax_exemption_number:
            body["TaxNumber"] = customer.tax_exemption_number
    return body


def line_items(lines: Sequence[DocumentLine], doc: Invoice | CreditNote,
               mapping: TenantMapping, *, exempt: bool, notes: Notes) -> list[dict[str, Any]]:
    mode = _mode(mapping)
    taxes = tax_by_line(lines, doc.tax_lines, doc.total_tax, mode)
    out = []
    for line, tax in zip(lines, taxes, strict=True):
        price = priced(line, mode)
        if price.note:
            notes.add(price.note)
        kind = mapped_kind(line)
        item: dict[str, Any] = {
            "Description": notes.fit(f"line {line.line_id} Description", line.description,
                                     LIMITS["line.description"]),
            "Quantity": wire(price.quantity, 4),
            "UnitAmount": wire(price.unit_price),
            "LineAmount": wire(price.amount),
            "AccountCode": mapping.income_account(kind),
            "TaxType": mapping.tax_code(None if is_discount(line) and not line.tax_code
                                        else line.tax_code, exempt=exempt),
            "TaxAmount": wire(tax),
        }
        if kind in mapping.items:
            item["ItemCode"] = mapping.items[kind]
        out.append(item)
    return out


def _document(doc: Invoice | CreditNote, contact_id: str, mapping: TenantMapping,
              exempt: bool, notes: Notes) -> dict[str, Any]:
    return {
        "Contact": {"ContactID": contact_id},
        "Date": doc.issue_date.isoformat(),
        "CurrencyCode": doc.currency,
        "LineAmountTypes": "Inclusive" if doc.prices_include_tax else "Exclusive",
        "LineItems": line_items(doc.lines, doc, mapping, exempt=exempt, notes=notes),
    }


def invoice_reference(invoice: Invoice) -> str:
    """``Reference`` (printed on the invoice): the customer's PO, else the repair job."""
    parts = [f"PO {invoice.po_number}" if invoice.po_number else None,
             f"Job {invoice.job.job_id}: {invoice.job.appliance_type}" if invoice.job else None]
    text = " · ".join(p for p in parts if p) or invoice.number
    return text[: LIMITS["reference"]]


def invoice_body(invoice: Invoice, customer: Customer, contact_id: str,
                 mapping: TenantMapping, notes: Notes) -> dict[str, Any]:
    body = _document(invoice, contact_id, mapping, customer.tax_exempt, notes)
    body.update({
        "Type": "ACCREC",
        "InvoiceNumber": notes.fit("InvoiceNumber", invoice.number, LIMITS["invoice.number"],
                                   unique=True),
        "Reference": invoice_reference(invoice),
        "DueDate": invoice.due_date.isoformat(),
        "Status": "DRAFT" if invoice.status is InvoiceStatus.DRAFT else "AUTHORISED",
    })
    return body


def credit_note_body(note: CreditNote, customer: Customer, contact_id: str,
                     mapping: TenantMapping, notes: Notes) -> dict[str, Any]:
    body = _document(note, contact_id, mapping, customer.tax_exempt, notes)
    body.update({
        "Type": "ACCRECCREDIT",
        "CreditNoteNumber": notes.fit("CreditNoteNumber", note.number,
                                      LIMITS["invoice.number"], unique=True),
        # the reason alone repeats across a shop's credit notes ("Part returned
        # unused"); with the CRM number the reference names one document
        "Reference": f"{note.number}: {note.reason}"[: LIMITS["reference"]],
        "Status": "AUTHORISED",
    })
    return body


def payment_body(*, account: str, amount: Decimal, day: date, reference: str,
                 invoice_id: str | None = None, credit_note_id: str | None = None,
                 overpayment_id: str | None = None) -> dict[str, Any]:
    """One Xero payment: money in against an invoice, or out against a credit note or
    an overpayment (a cash refund of that credit; Xero's AROVERPAYMENTPAYMENT)."""
    target = ({"Invoice": {"InvoiceID": invoice_id}} if invoice_id else
              {"CreditNote": {"CreditNoteID": credit_note_id}} if credit_note_id else
              {"Overpayment": {"OverpaymentID": overpayment_id}})
    return {**target, "Account": {"Code": account}, "Amount": wire(round_money(amount)),
            "Date": day.isoformat(), "Reference": reference[: LIMITS["reference"]]}


def overpayment_reference(reference: str) -> str:
    """The ``Reference`` of the overpayment recorded for ``reference`` (how a replay
    finds it)."""
    return f"{reference} overpayment"[: LIMITS["reference"]]


def overpayment_body(*, contact_id: str, account: str, amount: Decimal, day: date,
                     reference: str, currency: str) -> dict[str, Any]:
    """Money received beyond the invoices it pays: a RECEIVE-OVERPAYMENT bank
    transaction, Xero's customer credit that later payments and refunds draw on. Its
    line carries no AccountCode: Xero posts overpayments to Accounts Receivable."""
    return {
        "Type": "RECEIVE-OVERPAYMENT",
        "Contact": {"ContactID": contact_id},
        "BankAccount": {"Code": account},
        "Date": day.isoformat(),
        "Reference": overpayment_reference(reference),
        "CurrencyCode": currency,
        "LineAmountTypes": "NoTax",
        "LineItems": [{"Description": f"Overpayment of {reference}",
                       "LineAmount": wire(round_money(amount))}],
    }


def allocation_body(invoice_id: str, amount: Decimal, day: date) -> dict[str, Any]:
    return {"Allocations": [{"Invoice": {"InvoiceID": invoice_id},
                             "Amount": wire(round_money(amount)), "Date": day.isoformat()}]}
