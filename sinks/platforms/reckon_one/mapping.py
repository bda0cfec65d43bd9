"""Pure mapping of ledgerstream documents onto Reckon One v2 request bodies.

Field names are those of the v2 OpenAPI schemas (``CustomerInput``, ``InvoiceInput``
with ``InvoiceLineItemInput.accountDetails``, ``CreditNoteInput``,
``CreditNoteTransactionLinkInput``, ``ReceiptInput`` with ``transactionLinks``).

**Rounding rule** (explicit, ``Decimal`` only; floats appear only at the JSON
boundary): every amount is quantized to 2 places ``ROUND_HALF_UP``. Lines are sent
as ``accountDetails`` (income ledger account, quantity, *amount*), so Reckon never
multiplies a rounded unit price back: the CRM's line amount is what is booked.
**Tax** is sent per line as the CRM's own tax (``taxAmount``; ``taxIsModified`` is
read-only in the spec, Reckon sets it) on the mapped ``taxRate``: the CRM's total tax is spread
over the taxed lines (:func:`sinks.platforms.common.lines.tax_by_line`, exact to the
cent), so the Reckon total equals the CRM total whatever Reckon's own rounding is.
**Discount lines** become the invoice's native ``invoiceDiscountAmount`` (credit
notes have no such field: a discounted credit note is rejected as a payload error).
Customers are tax-exempt by ``amountTaxStatus: NonTaxed``.

**Markers** (how a document is found again, see :mod:`.platform`): documents carry the
CRM number in ``reference``; customers, which have no reference field, carry the line
``crm:customer:<id>`` in ``notes``. Deleted documents leave a tombstone line
``crm:deleted:<kind>:<crm id>=<reckon id>`` in their customer's notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from schemas.models import CreditNote, Customer, DocumentLine, Invoice, Payment, TaxLine
from sinks.core.errors import PayloadRejectedError, UnsupportedEventError
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.lines import is_discount, mapped_kind, tax_by_line
from sinks.platforms.common.text import marker
from sinks.platforms.reckon_one.spec import SPEC, ReckonOneSettings

__all__ = [
    "TOMBSTONE",
    "amount",
    "credit_link_body",
    "credit_note_body",
    "customer_body",
    "customer_marker",
    "disambiguated_name",
    "invoice_body",
    "line_items",
    "merge_notes",
    "receipt_body",
    "reckon_date",
    "reference",
    "tombstone",
    "tombstones",
]

CENT = Decimal("0.01")
TOMBSTONE = "crm:deleted:"


def _q(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def amount(value: Decimal) -> float:
    """A money amount as Reckon's JSON number: 2 places, half-up."""
    return float(_q(value))


def reckon_date(day: date) -> str:
    """Reckon's ``date-time`` fields (RFC 3339, so with an offset) at midnight UTC of
    the document's date."""
    return f"{day.isoformat()}T00:00:00Z"


def reference(kind: str, number: str) -> str:
    """The ``reference`` a document is found by: its CRM number, cut to the limit."""
    return SPEC.truncate(f"{kind}.reference", number)


# --------------------------------------------------------------------------- notes


def customer_marker(crm_id: str) -> str:
    return marker("customer", crm_id)


def tombstone(kind: str, crm_id: str, reckon_id: str) -> str:
    return f"{TOMBSTONE}{kind}:{crm_id}={reckon_id}"


def tombstones(notes: str | None) -> dict[str, str]:
    """``{"<kind>:<crm id>": reckon id}`` of the deletions recorded in ``notes``."""
    found: dict[str, str] = {}
    for line in (notes or "").splitlines():
        if line.startswith(TOMBSTONE) and "=" in line:
            key, _, value = line[len(TOMBSTONE):].partition("=")
            found[key] = value
    return found


def merge_notes(existing: str | None, *, crm_id: str | None = None,
                extra: Iterable[str] = ()) -> str:
    """A customer's notes with our marker (when ``crm_id`` is given and it is missing)
    and the ``extra`` tombstones added; every other line is kept. When 1000 characters
    are not enough, the oldest tombstones are dropped (a replay of such an old deletion
    after losing the id map is then not recognised)."""
    lines = [line for line in (existing or "").splitlines() if line]
    if crm_id is not None and customer_marker(crm_id) not in lines:
        lines.insert(0, customer_marker(crm_id))
    lines += [line for line in extra if line not in lines]
    limit = SPEC.max_name_lengths["customer.notes"]
    while len("\n".join(lines)) > limit:
        oldest = next((i for i, line in enumerate(lines) if line.startswith(TOMBSTONE)), None)
        if oldest is None:
            return SPEC.truncate("customer.notes", "\n".join(lines))
        lines.pop(oldest)
    return "\n".join(lines)


# --------------------------------------------------------------------------- customers


def disambiguated_name(customer: Customer) -> str:
    """A second CRM customer with the same name gets its CRM id appended."""
    suffix = f" ({customer.id})"
    limit = SPEC.max_name_lengths["customer.name"] - len(suffix)
    return customer.display_name[:limit] + suffix


def customer_body(customer: Customer, *, name: str | None = None,
                  notes: str | None = None) -> dict[str, Any]:
    a = customer.billing_address
    address: dict[str, Any] = {
        "type": "Billing",
        "line1": SPEC.truncate("address.line", a.line1),
        "town": SPEC.truncate("address.line", a.city),
        "country": SPEC.truncate("address.country", a.country),
    }
    if a.line2:
        address["line2"] = SPEC.truncate("address.line", a.line2)
    if a.region:
        address["state"] = SPEC.truncate("address.line", a.region)
    if a.postal_code:
        address["postcode"] = SPEC.truncate("address.postcode", a.postal_code)
    body: dict[str, Any] = {
        "name": name or SPEC.truncate("customer.name", customer.display_name),
        "status": "Active",
        "entityTypes": {"isCustomer": True},
        "notes": notes if notes is not None else merge_notes(None, crm_id=customer.id),
        "addresses": [address],
    }
    if customer.company_name:
        body["organisationName"] = SPEC.truncate("customer.organisation",
                                                 customer.company_name)
    if customer.email:
        body["electronicAddresses"] = [
            {"type": "Email", "address": SPEC.truncate("email", customer.email)}]
    if customer.phone:
        body["phoneNumbers"] = [{"type": "Work", "number": SPEC.truncate("phone",
                                                                           customer.phone)}]
    return body


# --------------------------------------------------------------------------- documents


def line_items(lines: Sequence[DocumentLine], tax_lines: Sequence[TaxLine], total_tax: Decimal,
               mapping: TenantMapping, *, exempt: bool, inclusive: bool
               ) -> tuple[list[dict[str, Any]], Decimal]:
    """Reckon line items (income account, quantity, amount, tax) and the discount
    total the discount lines add up to (a positive amount)."""
    goods = [line for line in lines if not is_discount(line)]
    discount = -sum((line.amount for line in lines if is_discount(line)), Decimal(0))
    if not goods:
        raise PayloadRejectedError("document has no non-discount lines", platform=SPEC.name)
    taxes = ([Decimal(0)] * len(goods) if exempt or inclusive
             else tax_by_line(goods, tax_lines, total_tax))
    items: list[dict[str, Any]] = []
    for number, (line, tax) in enumerate(zip(goods, taxes, strict=True), start=1):
        quantity = line.quantity.normalize() if line.quantity > 0 else Decimal(1)
        item: dict[str, Any] = {
            "lineNumber": number,
            "description": SPEC.truncate("line.description", line.description),
            "accountDetails": {"ledgerAccount": mapping.income_account(mapped_kind(line)),
                               "quantity": float(quantity), "amount": amount(line.amount)},
        }
        if not exempt and line.tax_code is not None:
            item["taxRate"] = mapping.tax_code(line.tax_code)
            if not inclusive:
                item["taxAmount"] = amount(tax)
        elif not exempt and tax:
            # Document-level tax landed on an untaxed line: book it on the exempt code.
            item["taxRate"] = mapping.tax_code(None)
            item["taxAmount"] = amount(tax)
        items.append(item)
    return items, _q(discount)


def _tax_status(exempt: bool, inclusive: bool, total_tax: Decimal) -> str:
    if exempt or (total_tax == 0 and not inclusive):
        return "NonTaxed"
    return "Inclusive" if inclusive else "Exclusive"


def _currency(code: str, settings: ReckonOneSettings, what: str) -> None:
    if code != settings.book_currency:
        raise UnsupportedEventError(
            f"{what} is in {code}, but a Reckon One book holds one currency "
            f"({settings.book_currency}) and the v2 API has no currency field",
            platform=SPEC.name)


def invoice_body(invoice: Invoice, customer_id: str, customer: Customer | None,
                 mapping: TenantMapping, settings: ReckonOneSettings) -> dict[str, Any]:
    _currency(invoice.currency, settings, f"invoice {invoice.number}")
    exempt = bool(customer and customer.tax_exempt)
    items, discount = line_items(invoice.lines, invoice.tax_lines, invoice.total_tax, mapping,
                                 exempt=exempt, inclusive=invoice.prices_include_tax)
    body: dict[str, Any] = {
        "customer": customer_id,
        "invoiceDate": reckon_date(invoice.issue_date),
        "dueDate": reckon_date(invoice.due_date),
        "amountTaxStatus": _tax_status(exempt, invoice.prices_include_tax, invoice.total_tax),
        "reference": reference("invoice", invoice.number),
        "lineItems": items,
    }
    if discount:
        body["invoiceDiscountAmount"] = amount(discount)
    notes = [invoice.notes] if invoice.notes else []
    if invoice.po_number:
        notes.append(f"PO {invoice.po_number}")
    if notes:
        body["notes"] = "\n".join(notes)
    if mapping.class_ref:
        body["classification"] = mapping.class_ref
    return body


def credit_note_body(note: CreditNote, customer_id: str, customer: Customer | None,
                     mapping: TenantMapping, settings: ReckonOneSettings) -> dict[str, Any]:
    _currency(note.currency, settings, f"credit note {note.number}")
    exempt = bool(customer and customer.tax_exempt)
    items, discount = line_items(note.lines, note.tax_lines, note.total_tax, mapping,
                                 exempt=exempt, inclusive=note.prices_include_tax)
    if discount:
        raise PayloadRejectedError(
            f"credit note {note.number} has discount lines; Reckon One credit notes have no "
            "discount field and no negative lines", platform=SPEC.name)
    body: dict[str, Any] = {
        "customer": customer_id,
        "creditNoteDate": reckon_date(note.issue_date),
        "amountTaxStatus": _tax_status(exempt, note.prices_include_tax, note.total_tax),
        "reference": reference("credit_note", note.number),
        "lineItems": items,
        "notes": note.reason,
    }
    if mapping.class_ref:
        body["classification"] = mapping.class_ref
    return body


def credit_link_body(invoice_id: str, value: Decimal) -> dict[str, Any]:
    return {"transactionId": invoice_id, "transactionAmount": amount(value),
            "transactionType": "Invoice"}


def receipt_body(payment: Payment, customer_id: str, links: Mapping[str, Decimal],
                 mapping: TenantMapping, settings: ReckonOneSettings) -> dict[str, Any]:
    """A customer receipt: the money, links to the invoices it pays, and the tip as an
    income line (so it neither pays an invoice nor sits as customer credit)."""
    _currency(payment.currency, settings, f"payment {payment.number}")
    body: dict[str, Any] = {
        "customer": customer_id,
        "receiptDate": reckon_date(payment.received_date),
        "totalAmount": amount(payment.amount),
        "ledgerAccount": mapping.deposit_account(payment.method.value),
        "reference": reference("receipt", payment.number),
        "transactionLinks": [{"transactionId": invoice_id, "transactionAmount": amount(value),
                              "transactionType": "Invoice"}
                             for invoice_id, value in links.items() if value > 0],
    }
    method = settings.payment_methods.get(payment.method.value)
    if method is not None:
        body["paymentMethod"] = method
    notes = [f"CRM {payment.method.value.lower().replace('_', ' ')} payment {payment.number}"]
    if payment.check_number:
        notes.append(f"check {payment.check_number}")
    if payment.processor_fee:
        notes.append(f"processor fee {_q(payment.processor_fee)} not booked")
    body["notes"] = SPEC.truncate("receipt.notes", "; ".join(notes))
    if payment.tip:
        body["lineItems"] = [{
            "lineNumber": 1, "description": f"Tip on payment {payment.number}",
            "accountDetails": {"ledgerAccount": mapping.tips_account(), "quantity": 1,
                               "amount": amount(payment.tip)}}]
    return body
