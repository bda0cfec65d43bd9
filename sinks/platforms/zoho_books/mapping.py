"""Pure mapping of ledgerstream documents onto Zoho Books request bodies.

Field names are those of Zoho's OpenAPI request schemas (``create-a-contact-request``,
``create-an-invoice-request``, ``create-a-credit-note-request``,
``create-a-payment-request``, ``refund-*-request``, ``credit-to-an-invoice-request``).

Rounding rule (explicit, ``Decimal`` only, floats appear only at the JSON boundary):
amounts and rates are quantized to 2 places ``ROUND_HALF_UP`` (Zoho presents currency
amounts at the currency's precision); quantities to 2 places (Zoho's default "decimal
places for quantity"; whole numbers only on credit notes). When rounding a quantity
would change ``rate * quantity``, the line is sent as quantity 1 at the CRM's line
amount instead, so money never drifts.
Tax is not sent as an amount: each line carries the mapped ``tax_id`` and Zoho
computes the tax.

Discount lines become Zoho's entity-level ``discount`` (an amount); taxed discount
lines make it a before-tax discount (``is_discount_before_tax``), untaxed ones an
after-tax discount.

Because Zoho computes the tax, its total can differ from the CRM's by the rounding of
tax (per line in an item-level organisation, once per tax in the CRM) and by how a
before-tax discount is spread over the lines. Invoices therefore carry an
``adjustment`` ("Rounding adjustment") equal to the CRM's total less what Zoho will
compute for the body sent (:mod:`sinks.platforms.zoho_books.rounding`). Zoho's
credit-note request schema has no ``adjustment``; :func:`credit_note_drift` tells how
far a credit note will be off, for the write result's notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from schemas.models import (
    CreditNote,
    Customer,
    DocumentLine,
    Invoice,
    LineKind,
    Payment,
    PaymentMethod,
)
from sinks.core.errors import ConfigurationError, PayloadRejectedError
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.lines import MAPPED_KIND as LINE_KINDS
from sinks.platforms.zoho_books.rounding import ADJUSTMENT_DESCRIPTION, adjustment
from sinks.platforms.zoho_books.spec import SPEC, ZohoBooksSettings

__all__ = [
    "LINE_KINDS",
    "PAYMENT_MODES",
    "amount",
    "apply_credit_body",
    "contact_body",
    "credit_note_body",
    "credit_note_drift",
    "credit_refund_body",
    "currency",
    "disambiguated_name",
    "invoice_body",
    "line_items",
    "payment_body",
    "payment_refund_body",
    "quantity",
    "reapplied_payment_body",
    "rounding_adjustment",
    "upsert_headers",
]

CENT = Decimal("0.01")
QTY = Decimal("0.01")

#: CRM payment method → Zoho ``payment_mode`` (Zoho's default modes).
PAYMENT_MODES: Mapping[PaymentMethod, str] = {
    PaymentMethod.CARD: "creditcard",
    PaymentMethod.CASH: "cash",
    PaymentMethod.CHECK: "check",
    PaymentMethod.BANK_TRANSFER: "banktransfer",
    PaymentMethod.FINANCING: "others",
    PaymentMethod.OTHER: "others",
}


def _q(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


def amount(value: Decimal) -> float:
    """A money amount as Zoho's JSON number: 2 places, half-up."""
    return float(_q(value, CENT))


def quantity(value: Decimal) -> float:
    return float(_q(value, QTY))


def _text(field: str, value: str | None) -> str | None:
    return None if value is None else SPEC.truncate(field, value)


def upsert_headers(settings: ZohoBooksSettings, crm_id: str) -> dict[str, str]:
    """Headers of ``PUT /<module>``: find by our unique custom field, create if absent."""
    return {
        "X-Unique-Identifier-Key": settings.unique_field,
        "X-Unique-Identifier-Value": crm_id,
        "X-Upsert": "true",
    }


def _marker(settings: ZohoBooksSettings, crm_id: str) -> list[dict[str, str]]:
    """The unique custom field set on the created record."""
    return [{"api_name": settings.unique_field, "value": crm_id}]


def currency(code: str, settings: ZohoBooksSettings) -> dict[str, str]:
    """``currency_id`` for a foreign-currency document; nothing for the base currency."""
    if code == settings.base_currency:
        return {}
    try:
        return {"currency_id": settings.currency_ids[code]}
    except KeyError:
        raise ConfigurationError(
            f"no Zoho currency_id for {code} (settings.currency_ids.{code}); the "
            f"organisation's base currency is {settings.base_currency}", platform=SPEC.name
        ) from None


def disambiguated_name(customer: Customer) -> str:
    """Zoho contact names are unique per organisation: a second CRM customer with the
    same display name gets its CRM id appended."""
    suffix = f" ({customer.id})"
    limit = SPEC.max_name_lengths["customer.display_name"] - len(suffix)
    return customer.display_name[:limit] + suffix


def _address(customer: Customer) -> dict[str, str]:
    a = customer.billing_address
    street = a.line1 if not a.line2 else f"{a.line1}, {a.line2}"
    body = {
        "address": SPEC.truncate("address.line", street),
        "city": SPEC.truncate("address.city", a.city),
        "country": SPEC.truncate("address.country", a.country),
    }
    if a.region:
        body["state"] = SPEC.truncate("address.state", a.region)
    if a.postal_code:
        body["zip"] = SPEC.truncate("address.zip", a.postal_code)
    return body


def contact_body(customer: Customer, settings: ZohoBooksSettings) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contact_name": SPEC.truncate("customer.display_name", customer.display_name),
        "contact_type": "customer",
        "billing_address": _address(customer),
        "custom_fields": _marker(settings, customer.id),
        **currency(customer.default_currency, settings),
    }
    if customer.company_name:
        body["company_name"] = SPEC.truncate("customer.display_name", customer.company_name)
    if customer.email or customer.phone:
        person: dict[str, Any] = {"is_primary_contact": True}
        if customer.email:
            person["email"] = SPEC.truncate("contact_person.email", customer.email)
        if customer.phone:
            person["phone"] = customer.phone
        body["contact_persons"] = [person]
    if customer.tax_exempt and customer.tax_exemption_number:
        body["tax_exemption_certificate_number"] = customer.tax_exemption_number
    return body


def _line_item(line: DocumentLine, mapping: TenantMapping, exempt: bool,
               order: int, whole_quantities: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "item_id": mapping.item(LINE_KINDS[line.kind]),
        "name": SPEC.truncate("line.description", line.description),
        "description": SPEC.truncate("line.description", line.description),
        "item_order": order,
    }
    qty = _q(line.quantity, QTY)
    rate = _q(line.unit_price, CENT)
    exact = qty > 0 and _q(qty * rate, CENT) == _q(line.amount, CENT)
    if exact and qty == qty.to_integral_value():
        item["quantity"], item["rate"] = int(qty), float(rate)
    elif exact and not whole_quantities:
        item["quantity"], item["rate"] = float(qty), float(rate)
    else:
        item["quantity"], item["rate"] = 1, amount(line.amount)
    if line.tax_code is not None and not exempt:
        item["tax_id"] = mapping.tax_code(line.tax_code)
    return item


def line_items(lines: Iterable[DocumentLine], mapping: TenantMapping, *, exempt: bool,
               whole_quantities: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Zoho line items plus the header fields the discount lines turn into.

    ``whole_quantities``: the module only takes integer quantities (credit notes:
    ``quantity`` is ``int32`` in Zoho's credit-note schema), so a fractional quantity
    is sent as 1 x the line amount.
    """
    items: list[dict[str, Any]] = []
    discount = Decimal(0)
    taxed_discount = False
    for line in lines:
        if line.kind is LineKind.DISCOUNT:
            discount += -line.amount
            taxed_discount = taxed_discount or line.tax_code is not None
            continue
        if line.amount < 0:
            raise PayloadRejectedError(
                f"line {line.line_id} has a negative amount; Zoho Books line items cannot be "
                "negative (send reductions as DISCOUNT lines)", platform=SPEC.name)
        items.append(_line_item(line, mapping, exempt, len(items) + 1, whole_quantities))
    if not items:
        raise PayloadRejectedError("document has no non-discount lines", platform=SPEC.name)
    header: dict[str, Any] = {}
    if discount:
        header = {"discount": amount(discount), "discount_type": "entity_level",
                  "is_discount_before_tax": taxed_discount and not exempt}
    return items, header


def _exemption(customer: Customer | None, mapping: TenantMapping) -> dict[str, Any]:
    if customer is not None and customer.tax_exempt:
        return {"tax_exemption_id": mapping.tax_code(None, exempt=True)}
    return {}


def _zoho_rates(document: Invoice | CreditNote, mapping: TenantMapping
                ) -> dict[str, Decimal] | None:
    """Zoho ``tax_id`` → rate, from the CRM's own tax lines (the Zoho tax a code maps to
    has the code's rate); ``None`` when a taxed line's code has no tax line to say it."""
    by_code = {t.code: t.rate for t in document.tax_lines}
    rates: dict[str, Decimal] = {}
    for line in document.lines:
        if line.tax_code is None or line.kind is LineKind.DISCOUNT:
            continue
        if line.tax_code not in by_code:
            return None
        rates[mapping.tax_code(line.tax_code)] = by_code[line.tax_code]
    return rates


def rounding_adjustment(document: Invoice | CreditNote, items: list[dict[str, Any]],
                        header: dict[str, Any], mapping: TenantMapping,
                        settings: ZohoBooksSettings) -> tuple[Decimal, Decimal] | None:
    """``(adjustment, zoho_total)`` for the body built from ``items`` and ``header``
    under the tenant's tax rounding; ``None`` when the document's tax lines do not give
    every rate (then nothing is adjusted)."""
    taxed = any(item.get("tax_id") for item in items)
    rates = _zoho_rates(document, mapping) if taxed else {}
    if rates is None:
        return None
    return adjustment(document.total, items, header, rates, settings.tax_rounding,
                      inclusive=document.prices_include_tax)


def credit_note_drift(note: CreditNote, customer: Customer | None, mapping: TenantMapping,
                      settings: ZohoBooksSettings) -> Decimal:
    """How much the CRM's credit note total exceeds what Zoho will compute (0 if they
    agree or the rates are unknown): Zoho's credit notes take no ``adjustment``."""
    exempt = bool(customer and customer.tax_exempt)
    items, header = line_items(note.lines, mapping, exempt=exempt, whole_quantities=True)
    found = rounding_adjustment(note, items, header, mapping, settings)
    return Decimal(0) if found is None else found[0]


def invoice_body(invoice: Invoice, contact_id: str, customer: Customer | None,
                 mapping: TenantMapping, settings: ZohoBooksSettings) -> dict[str, Any]:
    """The invoice request; with an ``adjustment`` when Zoho would total otherwise than
    the CRM (see the module docstring)."""
    exempt = bool(customer and customer.tax_exempt)
    items, header = line_items(invoice.lines, mapping, exempt=exempt)
    found = rounding_adjustment(invoice, items, header, mapping, settings)
    if found is not None and found[0]:
        header = {**header, "adjustment": float(found[0]),
                  "adjustment_description": ADJUSTMENT_DESCRIPTION}
    body: dict[str, Any] = {
        "customer_id": contact_id,
        "reference_number": SPEC.truncate("invoice.reference_number",
                                          invoice.po_number or invoice.number),
        "date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        "is_inclusive_tax": invoice.prices_include_tax,
        "line_items": items,
        "custom_fields": _marker(settings, invoice.id),
        **currency(invoice.currency, settings),
        **header,
        **_exemption(customer, mapping),
    }
    if settings.use_crm_numbers:
        body["invoice_number"] = invoice.number
    location = mapping.location(None)
    if location is not None:
        body["location_id"] = location
    if invoice.notes:
        body["notes"] = invoice.notes
    return body


def credit_note_body(note: CreditNote, contact_id: str, customer: Customer | None,
                     mapping: TenantMapping, settings: ZohoBooksSettings) -> dict[str, Any]:
    exempt = bool(customer and customer.tax_exempt)
    items, header = line_items(note.lines, mapping, exempt=exempt, whole_quantities=True)
    # No custom_fields here: Zoho's credit-note schema declares them as an array of
    # strings (unlike every other module); the X-Unique-Identifier-Value header of the
    # upsert carries our id instead.
    body: dict[str, Any] = {
        "customer_id": contact_id,
        "creditnote_number": note.number,
        "reference_number": SPEC.truncate("invoice.reference_number", note.number),
        "date": note.issue_date.isoformat(),
        "is_inclusive_tax": note.prices_include_tax,
        "line_items": items,
        "notes": note.reason,
        **currency(note.currency, settings),
        **header,
        **_exemption(customer, mapping),
    }
    return body


def payment_body(payment: Payment, contact_id: str, applications: Mapping[str, Decimal],
                 mapping: TenantMapping, settings: ZohoBooksSettings) -> dict[str, Any]:
    """``applications``: Zoho invoice id → amount to apply (already limited to what the
    invoice can take; the rest stays on the payment as the customer's credit).

    Zoho has no tip concept: the payment is the amount less the tip (what pays the
    customer's invoices), and the description names the tip that was not recorded.
    """
    body: dict[str, Any] = {
        "customer_id": contact_id,
        "payment_mode": PAYMENT_MODES[payment.method],
        "amount": amount(payment.amount - payment.tip),
        "date": payment.received_date.isoformat(),
        "reference_number": SPEC.truncate("payment.reference_number", payment.number),
        "account_id": mapping.deposit_account(payment.method.value),
        "invoices": [{"invoice_id": invoice_id, "amount_applied": amount(value)}
                     for invoice_id, value in applications.items() if value > 0],
        "custom_fields": _marker(settings, payment.id),
    }
    if payment.processor_fee:
        body["bank_charges"] = amount(payment.processor_fee)
    notes = [f"check {payment.check_number}" if payment.check_number else "",
             f"card ****{payment.card_last4}" if payment.card_last4 else "",
             f"tip {_q(payment.tip, CENT)} not recorded in Zoho Books" if payment.tip else ""]
    if any(notes):
        body["description"] = ", ".join(n for n in notes if n)
    return body


def reapplied_payment_body(record: Mapping[str, Any],
                           applications: Mapping[str, Decimal]) -> dict[str, Any]:
    """``PUT /customerpayments/{id}`` body that keeps a stored payment as it is but
    with ``applications`` (Zoho invoice id → amount) as its invoice applications."""
    body: dict[str, Any] = {
        "customer_id": record["customer_id"],
        "payment_mode": record["payment_mode"],
        "amount": record["amount"],
        "date": record["date"],
        "invoices": [{"invoice_id": invoice_id, "amount_applied": amount(value)}
                     for invoice_id, value in applications.items() if value > 0],
    }
    for field in ("reference_number", "account_id", "custom_fields"):
        if record.get(field):
            body[field] = record[field]
    return body


def payment_refund_body(refund: Payment, mapping: TenantMapping) -> dict[str, Any]:
    return {
        "date": refund.received_date.isoformat(),
        "refund_mode": PAYMENT_MODES[refund.method],
        "reference_number": SPEC.truncate("payment.reference_number", refund.number),
        "amount": amount(refund.amount),
        "from_account_id": mapping.deposit_account(refund.method.value),
    }


def credit_refund_body(note: CreditNote, mapping: TenantMapping) -> dict[str, Any]:
    return {
        "date": note.issue_date.isoformat(),
        "refund_mode": "others",
        "reference_number": SPEC.truncate("payment.reference_number", note.number),
        "amount": amount(note.total),
        "from_account_id": mapping.deposit_account("refund"),
        "description": note.reason,
    }


def apply_credit_body(zoho_invoice_id: str, value: Decimal) -> dict[str, Any]:
    return {"invoices": [{"invoice_id": zoho_invoice_id, "amount_applied": amount(value)}]}
