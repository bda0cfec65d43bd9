"""CRM documents → QuickBooks Online v3 JSON bodies: pure functions, no I/O.

Field names are Intuit's (Finance.xsd / IntuitNamesTypes.xsd); the contract suite
checks every body against those types. Choices that are not obvious:

* **Lines.** Every sales line is a ``SalesItemLineDetail`` with the tenant's item for
  its kind (QBO cannot post an invoice line straight to an account) and a
  ``TaxCodeRef`` from the tenant's tax mapping; tax-exempt customers and untaxed
  lines get the exempt code. Negative lines become one ``DiscountLineDetail`` each,
  posted to the tenant's discount account.
* **Tax.** The CRM's tax is authoritative: ``TxnTaxDetail.TotalTax`` carries it
  (2 decimals, HALF_UP) so the QBO total equals the CRM total to the cent.
* **Notes.** ``PrivateNote`` starts with the document marker (``crm:invoice:inv1``),
  which the flow checks before trusting a document found by number, then the repair
  job (appliance, model, serial, technician, completion) and the CRM notes.
* **Payments.** ``TotalAmt`` is what settles the customer's receivable: the amount
  less the tip. Tips belong to the technician (a liability, never income) and
  processor fees are deducted when the processor pays out; both are settled on the
  bank deposit (QBO ``Deposit``), not on the customer's payment, so the payment
  carries them only in its note and in ``WriteResult.raw``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from schemas.models import CreditNote, Customer, DocumentLine, Invoice, Payment, RepairJob
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.lines import is_discount, mapped_kind, priced
from sinks.platforms.common.money import ZERO, round_money, wire
from sinks.platforms.common.text import Notes, marker
from sinks.platforms.quickbooks.spec import LIMITS

__all__ = [
    "credit_application_body",
    "credit_memo_body",
    "customer_body",
    "disambiguated_name",
    "invoice_body",
    "payment_body",
    "private_note",
    "quote",
    "ref",
    "refund_receipt_body",
    "sales_lines",
]

#: QBO rounds amounts half-up to cents.
ROUNDING = "ROUND_HALF_UP"


def ref(value: str) -> dict[str, str]:
    """A QBO ``ReferenceType``."""
    return {"value": value}


def quote(value: str) -> str:
    """A string literal for the QBO query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _money(amount: Decimal) -> float:
    return wire(round_money(amount, ROUNDING))


def _address(address: Any) -> dict[str, str]:
    out = {"Line1": address.line1, "City": address.city, "Country": address.country}
    if address.line2:
        out["Line2"] = address.line2
    if address.region:
        out["CountrySubDivisionCode"] = address.region
    if address.postal_code:
        out["PostalCode"] = address.postal_code
    return out


def disambiguated_name(customer: Customer, notes: Notes) -> str:
    """The DisplayName to use when the plain one belongs to someone else (QBO 6240):
    the name followed by the CRM id, which no other CRM customer can share."""
    suffix = f" ({customer.id})"
    base = customer.display_name[: LIMITS["customer.display_name"] - len(suffix)]
    notes.add(f"DisplayName {customer.display_name!r} is taken in QuickBooks by another "
              f"name; used {base + suffix!r}")
    return base + suffix


def customer_body(customer: Customer, notes: Notes, *, display_name: str | None = None
                  ) -> dict[str, Any]:
    """A Customer from the CRM customer (create, or the fields of a sparse update)."""
    body: dict[str, Any] = {
        "DisplayName": display_name or notes.fit(
            "DisplayName", customer.display_name, LIMITS["customer.display_name"]),
        "Active": customer.active,
        "Taxable": not customer.tax_exempt,
        "BillAddr": _address(customer.billing_address),
        "CurrencyRef": ref(customer.default_currency),
        "Notes": marker("customer", customer.id),
    }
    if customer.company_name:
        body["CompanyName"] = notes.fit("CompanyName", customer.company_name,
                                        LIMITS["customer.company_name"])
    if customer.email:
        body["PrimaryEmailAddr"] = {"Address": customer.email}
    if customer.phone:
        body["PrimaryPhone"] = {"FreeFormNumber": customer.phone}
    if customer.service_address is not None:
        body["ShipAddr"] = _address(customer.service_address)
    if customer.tax_exempt and customer.tax_exemption_number:
        body["ResaleNum"] = customer.tax_exemption_number
    return body


def _job_text(job: RepairJob) -> str:
    parts = [f"job {job.job_id}: {job.appliance_type}"]
    parts += [p for p in (job.brand, job.model) if p]
    if job.serial_number:
        parts.append(f"S/N {job.serial_number}")
    if job.technician:
        parts.append(f"technician {job.technician}")
    if job.completed_at is not None:
        parts.append(f"completed {job.completed_at.date().isoformat()}")
    return " ".join(parts)


def private_note(kind: str, crm_id: str, *extra: str | None, notes: Notes | None = None
                 ) -> str:
    """``PrivateNote``: the document marker first (flows search for it), then details."""
    text = " | ".join([marker(kind, crm_id), *(e for e in extra if e)])
    if notes is None:
        return text[: LIMITS["private_note"]]
    return notes.fit("PrivateNote", text, LIMITS["private_note"])


def sales_lines(lines: Sequence[DocumentLine], mapping: TenantMapping, *, exempt: bool,
                notes: Notes) -> list[dict[str, Any]]:
    """``Line`` entries for invoice-like documents (Invoice, CreditMemo, RefundReceipt)."""
    out: list[dict[str, Any]] = []
    for line in lines:
        description = notes.fit(f"line {line.line_id} Description", line.description,
                                LIMITS["line.description"])
        if is_discount(line):
            out.append({
                "DetailType": "DiscountLineDetail",
                "Amount": _money(-line.amount),
                "Description": description,
                "DiscountLineDetail": {
                    "PercentBased": False,
                    "DiscountAccountRef": ref(mapping.income_account(mapped_kind(line))),
                },
            })
            continue
        price = priced(line, ROUNDING)
        if price.note:
            notes.add(price.note)
        detail: dict[str, Any] = {
            "ItemRef": ref(mapping.item(mapped_kind(line))),
            "Qty": wire(price.quantity, 4),
            "UnitPrice": wire(price.unit_price),
            "TaxCodeRef": ref(mapping.tax_code(line.tax_code, exempt=exempt)),
        }
        if mapping.class_ref:
            detail["ClassRef"] = ref(mapping.class_ref)
        out.append({"DetailType": "SalesItemLineDetail", "Amount": wire(price.amount),
                    "Description": description, "SalesItemLineDetail": detail})
    return out


def _sales_form(doc: Invoice | CreditNote, customer_ref: str, mapping: TenantMapping,
                exempt: bool, notes: Notes, kind: str, txn_date: date,
                *extra_note: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "DocNumber": notes.fit("DocNumber", doc.number, LIMITS["invoice.doc_number"],
                               unique=True),
        "TxnDate": txn_date.isoformat(),
        "CustomerRef": ref(customer_ref),
        "CurrencyRef": ref(doc.currency),
        "Line": sales_lines(doc.lines, mapping, exempt=exempt, notes=notes),
        "TxnTaxDetail": {"TotalTax": _money(doc.total_tax)},
        "PrivateNote": private_note(kind, doc.id, *extra_note, notes=notes),
    }
    if doc.prices_include_tax:
        body["GlobalTaxCalculation"] = "TaxInclusive"
    return body


def invoice_body(invoice: Invoice, customer: Customer, customer_ref: str,
                 mapping: TenantMapping, notes: Notes) -> dict[str, Any]:
    """An Invoice (create body, or the fields of a sparse update)."""
    body = _sales_form(
        invoice, customer_ref, mapping, customer.tax_exempt, notes, "invoice",
        invoice.issue_date,
        _job_text(invoice.job) if invoice.job else None,
        f"PO {invoice.po_number}" if invoice.po_number else None,
        invoice.notes,
    )
    body["DueDate"] = invoice.due_date.isoformat()
    if customer.email:
        body["BillEmail"] = {"Address": customer.email}
    return body


def credit_memo_body(note: CreditNote, customer: Customer, customer_ref: str,
                     mapping: TenantMapping, notes: Notes) -> dict[str, Any]:
    """A CreditMemo for a CRM credit note kept as credit (disposition CREDITED)."""
    return _sales_form(note, customer_ref, mapping, customer.tax_exempt, notes,
                       "credit_note", note.issue_date, note.reason)


def refund_receipt_body(note: CreditNote, customer: Customer, customer_ref: str,
                        mapping: TenantMapping, notes: Notes) -> dict[str, Any]:
    """A RefundReceipt for a credit note paid back in cash (disposition REFUNDED): one
    document that reverses the income and takes the money out of the refund account,
    leaving the customer's receivable untouched — as the CRM books it."""
    body = _sales_form(note, customer_ref, mapping, customer.tax_exempt, notes,
                       "credit_note", note.issue_date, note.reason)
    body["DepositToAccountRef"] = ref(mapping.deposit_account("refund"))
    return body


def payment_body(payment: Payment, customer_ref: str, applications: Sequence[tuple[str, Decimal]],
                 mapping: TenantMapping, notes: Notes) -> dict[str, Any]:
    """A Payment settling ``applications`` ((QBO invoice id, amount) pairs); whatever
    is not applied stays on the customer as unapplied credit, as in the CRM."""
    settled = payment.amount - payment.tip
    details = [f"{payment.method.value.lower()}"]
    if payment.card_last4:
        details.append(f"card …{payment.card_last4}")
    if payment.check_number:
        details.append(f"check {payment.check_number}")
    if payment.tip:
        details.append(f"tip {round_money(payment.tip)} (not revenue; settled on deposit)")
    if payment.processor_fee:
        details.append(f"processor fee {round_money(payment.processor_fee)} (on deposit)")
    return {
        "TotalAmt": _money(settled),
        "CustomerRef": ref(customer_ref),
        "TxnDate": payment.received_date.isoformat(),
        "PaymentRefNum": notes.fit("PaymentRefNum", payment.number, LIMITS["payment.ref_num"],
                                   unique=True),
        "DepositToAccountRef": ref(mapping.deposit_account(payment.method.value)),
        "CurrencyRef": ref(payment.currency),
        "PrivateNote": private_note("payment", payment.id, ", ".join(details), notes=notes),
        "Line": [
            {"Amount": _money(amount), "LinkedTxn": [{"TxnId": txn, "TxnType": "Invoice"}]}
            for txn, amount in applications if amount > 0
        ],
    }


def credit_application_body(note: CreditNote, customer_ref: str, memo_id: str,
                            applications: Sequence[tuple[str, Decimal]], notes: Notes
                            ) -> dict[str, Any]:
    """The zero-amount Payment that applies a CreditMemo to invoices (QBO's way of
    "apply credit"): one line per invoice, one line taking the sum from the memo."""
    applied = [(txn, round_money(a, ROUNDING)) for txn, a in applications if a > 0]
    total = sum((a for _, a in applied), ZERO)
    return {
        "TotalAmt": 0,
        "CustomerRef": ref(customer_ref),
        "TxnDate": note.issue_date.isoformat(),
        "PaymentRefNum": notes.fit("PaymentRefNum", note.number, LIMITS["payment.ref_num"],
                                   unique=True),
        "CurrencyRef": ref(note.currency),
        "PrivateNote": private_note("credit_application", note.id),
        "Line": [
            *({"Amount": wire(a), "LinkedTxn": [{"TxnId": txn, "TxnType": "Invoice"}]}
              for txn, a in applied),
            {"Amount": wire(total), "LinkedTxn": [{"TxnId": memo_id, "TxnType": "CreditMemo"}]},
        ],
    }
