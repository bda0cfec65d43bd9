"""Pure mapping of CRM records onto Business Central API v2.0 entities.

Field names follow the v2.0 API (``salesInvoices``/``salesInvoiceLines`` with deep
insert, flat customer address fields, ``customerPayments`` journal lines). Lengths are
the BC table field lengths (``Code[20]`` numbers, ``Text[100]`` names, ``Code[35]``
external document numbers).

Rounding rule: BC computes line amounts itself from ``quantity`` x ``unitPrice``
rounded to the company's *Amount Rounding Precision* (0.01 by default, direction
"Nearest" = half-up). Quantities carry at most 5 decimals (``Decimal(0:5)``) and unit
prices are rounded to the *Unit-Amount Rounding Precision* (0.00001 by default), both
half-up. :func:`bc_line_amount` reproduces BC's arithmetic so tests can predict what
BC will show.
"""

from __future__ import annotations

import hashlib
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from schemas.models import CreditNote, Customer, DocumentLine, Invoice, Payment
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.lines import MAPPED_KIND

PLATFORM = "business-central"

#: BC table field lengths (v2.0 API pages).
MAX_LENGTHS: dict[str, int] = {
    "customer.number": 20,
    "customer.displayName": 100,
    "customer.addressLine1": 100,
    "customer.addressLine2": 50,
    "customer.city": 30,
    "customer.state": 30,
    "customer.country": 10,
    "customer.postalCode": 20,
    "customer.email": 80,
    "customer.phoneNumber": 30,
    "customer.taxRegistrationNumber": 20,
    "document.externalDocumentNumber": 35,
    "document.customerPurchaseOrderReference": 35,
    "line.description": 100,
    "payment.documentNumber": 20,
    "payment.description": 100,
}

QUANTITY_STEP = Decimal("0.00001")
UNIT_PRICE_STEP = Decimal("0.00001")
AMOUNT_STEP = Decimal("0.01")
#: The blank option of the customer "Blocked" enum as the v2.0 API spells it.
BLOCKED_NONE = "_x0020_"


def cut(field_name: str, value: str | None) -> str | None:
    """``value`` truncated to BC's field length (``None`` stays ``None``)."""
    if value is None:
        return None
    limit = MAX_LENGTHS.get(field_name)
    return value if limit is None else value[:limit]


def half_up(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


def bc_line_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    """The line amount BC computes: qty and price at their precisions, product half-up."""
    return half_up(half_up(quantity, QUANTITY_STEP) * half_up(unit_price, UNIT_PRICE_STEP),
                   AMOUNT_STEP)


def customer_number(crm_id: str) -> str:
    """BC customer ``number`` (Code[20]) for a CRM customer: the CRM id upper-cased
    (Code fields are upper case) when it fits, else ``CRM`` + 17 hex digits of its
    SHA-1, deterministic so the lookup by number finds it again."""
    code = crm_id.upper()
    if len(code) <= MAX_LENGTHS["customer.number"]:
        return code
    return "CRM" + hashlib.sha1(crm_id.encode()).hexdigest()[:17].upper()


def external_document_number(number: str) -> str:
    """The CRM document number as ``externalDocumentNumber`` (Code[35]), the key of the
    lookup-before-create. A longer number is never cut blindly (two numbers sharing 35
    leading characters would collide): it keeps its first 26 characters, ``~`` and 8
    hex digits of its SHA-1, so it stays recognisable, unique and stable."""
    limit = MAX_LENGTHS["document.externalDocumentNumber"]
    if len(number) <= limit:
        return number
    digest = hashlib.sha1(number.encode()).hexdigest()[:8].upper()
    return f"{number[:limit - 9]}~{digest}"


def customer_body(customer: Customer, *, local_currency: str) -> dict[str, Any]:
    address = customer.billing_address
    body: dict[str, Any] = {
        "number": customer_number(customer.id),
        "displayName": cut("customer.displayName", customer.display_name),
        "type": "Company" if customer.company_name else "Person",
        "addressLine1": cut("customer.addressLine1", address.line1),
        "addressLine2": cut("customer.addressLine2", address.line2 or ""),
        "city": cut("customer.city", address.city),
        "state": cut("customer.state", address.region or ""),
        "country": cut("customer.country", address.country),
        "postalCode": cut("customer.postalCode", address.postal_code or ""),
        "email": cut("customer.email", customer.email or ""),
        "phoneNumber": cut("customer.phoneNumber", customer.phone or ""),
        "taxLiable": not customer.tax_exempt,
        "blocked": BLOCKED_NONE if customer.active else "All",
    }
    if customer.tax_exemption_number:
        body["taxRegistrationNumber"] = cut(
            "customer.taxRegistrationNumber", customer.tax_exemption_number
        )
    if customer.default_currency != local_currency:
        body["currencyCode"] = customer.default_currency
    return body


def line_body(line: DocumentLine, mapping: TenantMapping, *, exempt: bool) -> dict[str, Any]:
    """One document line: an Item line when the tenant maps the kind to an item, else
    a G/L Account line on the kind's income account. Discounts become a negative
    quantity at a positive unit price (BC rejects negative unit prices on G/L lines)."""
    kind = MAPPED_KIND[line.kind]
    if kind in mapping.items:
        line_type, number = "Item", mapping.item(kind)
    else:
        line_type, number = "Account", mapping.income_account(kind)
    quantity = half_up(line.quantity, QUANTITY_STEP)
    price = half_up(line.unit_price, UNIT_PRICE_STEP)
    description = line.description
    if bc_line_amount(quantity, price) != half_up(line.amount, AMOUNT_STEP):
        # The CRM rounded the line differently from BC's qty x price: the CRM amount is
        # the truth, so send it as one unit and keep the original figures in the text.
        description = (f"{line.description} ({line.quantity.normalize():f} x "
                       f"{line.unit_price.normalize():f})")
        quantity, price = Decimal(1), half_up(line.amount, AMOUNT_STEP)
    if price < 0:
        quantity, price = -quantity, -price
    return {
        "sequence": 0,  # set by document_lines
        "lineType": line_type,
        "lineObjectNumber": number,
        "description": cut("line.description", description),
        "quantity": float(quantity),
        "unitPrice": float(price),
        "taxCode": mapping.tax_code(line.tax_code, exempt=exempt),
    }


def document_lines(
    lines: tuple[DocumentLine, ...], mapping: TenantMapping, *, exempt: bool
) -> list[dict[str, Any]]:
    out = []
    for index, line in enumerate(lines, start=1):
        body = line_body(line, mapping, exempt=exempt)
        body["sequence"] = index * 10000  # BC's line-number spacing
        out.append(body)
    return out


def invoice_body(
    invoice: Invoice, customer_id: str, mapping: TenantMapping, *, exempt: bool,
    local_currency: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "externalDocumentNumber": external_document_number(invoice.number),
        "invoiceDate": invoice.issue_date.isoformat(),
        "postingDate": invoice.issue_date.isoformat(),
        "dueDate": invoice.due_date.isoformat(),
        "customerId": customer_id,
        "pricesIncludeTax": invoice.prices_include_tax,
        "salesInvoiceLines": document_lines(invoice.lines, mapping, exempt=exempt),
    }
    if invoice.po_number:
        body["customerPurchaseOrderReference"] = cut(
            "document.customerPurchaseOrderReference", invoice.po_number
        )
    if invoice.currency != local_currency:
        body["currencyCode"] = invoice.currency
    return body


def invoice_header(body: dict[str, Any]) -> dict[str, Any]:
    """The PATCH-able header of an invoice body (lines travel separately)."""
    return {k: v for k, v in body.items() if k != "salesInvoiceLines"}


def credit_memo_body(
    note: CreditNote, customer_id: str, invoice_id: str | None, mapping: TenantMapping, *,
    exempt: bool, local_currency: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "externalDocumentNumber": external_document_number(note.number),
        "creditMemoDate": note.issue_date.isoformat(),
        "customerId": customer_id,
        "pricesIncludeTax": note.prices_include_tax,
        "salesCreditMemoLines": document_lines(note.lines, mapping, exempt=exempt),
    }
    if invoice_id is not None:
        body["invoiceId"] = invoice_id
    if note.currency != local_currency:
        body["currencyCode"] = note.currency
    return body


def payment_document_number(payment: Payment) -> str:
    """The journal ``documentNumber`` (Code[20]) of a payment's lines, which its G/L
    entries keep after posting; shortened like :func:`external_document_number`."""
    limit = MAX_LENGTHS["payment.documentNumber"]
    if len(payment.number) <= limit:
        return payment.number
    digest = hashlib.sha1(payment.number.encode()).hexdigest()[:8].upper()
    return f"{payment.number[:limit - 9]}~{digest}"


def payment_lines(
    payment: Payment, customer_id: str, invoice_ids: dict[str, str]
) -> list[dict[str, Any]]:
    """Customer payment journal lines: one per allocation (``appliesToInvoiceId``),
    plus one unapplied line for any remainder, all sharing ``externalDocumentNumber``
    (the lookup key) and ``documentNumber``. Amounts are positive (v2.0 convention)."""
    reference = external_document_number(payment.number)
    common = {
        "customerId": customer_id,
        "postingDate": payment.received_date.isoformat(),
        "documentNumber": payment_document_number(payment),
        "externalDocumentNumber": reference,
    }
    lines = []
    allocated = Decimal(0)
    for allocation in payment.allocations:
        amount = half_up(allocation.amount, AMOUNT_STEP)
        if amount == 0:
            continue
        allocated += amount
        lines.append({
            **common,
            "amount": float(amount),
            "appliesToInvoiceId": invoice_ids[allocation.invoice_id],
            "description": cut(
                "payment.description",
                f"{payment.method.value} {payment.number} → {allocation.invoice_id}"),
        })
    remainder = half_up(payment.amount - payment.tip, AMOUNT_STEP) - allocated
    if remainder > 0:
        lines.append({
            **common,
            "amount": float(remainder),
            "description": cut("payment.description",
                               f"{payment.method.value} {payment.number} unapplied"),
        })
    return lines
