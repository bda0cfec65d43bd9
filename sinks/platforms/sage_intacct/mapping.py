"""Pure mapping of ledgerstream documents onto Sage Intacct XML API 3.0 functions.

Element names and order are those of ``api.xsd`` (``create_customer``,
``create_invoice``/``lineitem``, ``update_invoice``/``updateinvoiceitems``,
``create_arpayment``/``arpaymentitem``, ``create_aradjustment``, ``reverse_invoice``,
``readByQuery``); the order matters, the schema is a sequence.

Rounding rule (explicit, ``Decimal`` only): Intacct AR lines carry an *amount*, no
quantity or price, so each CRM line is sent as its amount quantized to 2 places
``ROUND_HALF_UP``; the quantity and unit price go into the memo. A line amount that
the CRM rounded (0.333 h x 95.00 = 31.635 → 31.60 in the CRM) is therefore sent as the
CRM's amount and the document never drifts.

Tax: the legacy AR functions have no per-line tax code (tax engines aside), so each
CRM tax line becomes an invoice line on the GL account the tenant mapping names for
that tax code (``mapping.tax_codes``, the sales-tax payable account); exempt
customers get none. Discount lines are negative lines on the discounts income account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

from lxml import etree

from schemas.models import (
    CreditNote,
    Customer,
    DocumentLine,
    Invoice,
    LineKind,
    Payment,
    PaymentMethod,
    TaxLine,
)
from sinks.core.errors import PayloadRejectedError
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.lines import MAPPED_KIND as LINE_KINDS
from sinks.platforms.sage_intacct.spec import SPEC, SageIntacctSettings
from sinks.transport.xmlapi import date_element, element, optional

__all__ = [
    "LINE_KINDS",
    "PAYMENT_METHODS",
    "adjustment_function",
    "amount",
    "customer_function",
    "invoice_function",
    "line_items",
    "payment_function",
    "query_function",
    "quote",
    "reverse_function",
    "update_invoice_function",
]

CENT = Decimal("0.01")

#: CRM payment method → Intacct ``paymentmethod`` (the values Intacct's AR lists).
PAYMENT_METHODS: Mapping[PaymentMethod, str] = {
    PaymentMethod.CARD: "Credit Card",
    PaymentMethod.CASH: "Cash",
    PaymentMethod.CHECK: "Printed Check",
    PaymentMethod.BANK_TRANSFER: "EFT",
    PaymentMethod.FINANCING: "EFT",
    PaymentMethod.OTHER: "Cash",
}


def amount(value: Decimal) -> str:
    """A money amount as Intacct text: 2 places, half-up, no exponent."""
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):f}"


def quote(value: str) -> str:
    """A string literal of Intacct's query language (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def customer_id(crm_id: str) -> str:
    """Intacct ``CUSTOMERID`` of a CRM customer: the CRM id (it is our reference, and
    Intacct rejects a second customer with the same id)."""
    return SPEC.truncate("customer.id", crm_id)


def _currency(code: str, settings: SageIntacctSettings) -> list[etree._Element]:
    if code == settings.base_currency:
        return []
    return [element("basecurr", settings.base_currency), element("currency", code),
            element("exchratetype", settings.exchange_rate_type)]


def customer_function(customer: Customer, *, update: bool) -> etree._Element:
    """``create_customer`` (or ``update_customer customerid=..``)."""
    a = customer.billing_address
    contact = element("contact", children=[
        element("contactname", SPEC.truncate("contact.name",
                                             f"{customer.display_name} ({customer.id})")),
        element("printas", SPEC.truncate("customer.name", customer.display_name)),
        *optional("companyname", customer.company_name
                  and SPEC.truncate("customer.name", customer.company_name)),
        *optional("phone1", customer.phone),
        *optional("email1", customer.email),
        element("mailaddress", children=[
            element("address1", SPEC.truncate("address.line", a.line1)),
            *optional("address2", a.line2 and SPEC.truncate("address.line", a.line2)),
            element("city", SPEC.truncate("address.city", a.city)),
            *optional("state", a.region and SPEC.truncate("address.state", a.region)),
            *optional("zip", a.postal_code and SPEC.truncate("address.zip", a.postal_code)),
            element("isocountrycode", a.country)]),
    ])
    body = [
        element("name", SPEC.truncate("customer.name", customer.display_name)),
        *optional("resaleno", (customer.tax_exempt and customer.tax_exemption_number) or None),
        element("status", "active" if customer.active else "inactive"),
        element("currency", customer.default_currency),
    ]
    if update:
        return element("update_customer", children=[*body, element("contactinfo",
                                                                   children=[contact])],
                       customerid=customer_id(customer.id))
    return element("create_customer", children=[
        element("customerid", customer_id(customer.id)), *body,
        element("externalid", customer.id), element("contactinfo", children=[contact])])


def status_function(crm_id: str, active: bool) -> etree._Element:
    return element("update_customer", children=[
        element("status", "active" if active else "inactive")], customerid=customer_id(crm_id))


def _memo(line: DocumentLine) -> str:
    text = f"{line.description} ({line.quantity.normalize():f} x {line.unit_price:f})"
    return SPEC.truncate("line.memo", text)


def _line(tag: str, account: str, value: Decimal, memo: str,
          location: str | None) -> etree._Element:
    return element(tag, children=[element("glaccountno", account),
                                  element("amount", amount(value)), element("memo", memo),
                                  *optional("locationid", location)])


def line_items(lines: Iterable[DocumentLine], tax_lines: Iterable[TaxLine],
               mapping: TenantMapping, *, exempt: bool, sign: int = 1
               ) -> list[tuple[str, Decimal, str]]:
    """``(gl account, amount, memo)`` per Intacct line: the CRM lines, then one line per
    tax code (unless ``exempt``). ``sign`` -1 turns them into credit lines."""
    out: list[tuple[str, Decimal, str]] = []
    for line in lines:
        if line.amount < 0 and line.kind is not LineKind.DISCOUNT:
            raise PayloadRejectedError(
                f"line {line.line_id} has a negative amount; send reductions as DISCOUNT "
                "lines", platform=SPEC.name)
        out.append((mapping.income_account(LINE_KINDS[line.kind]),
                    sign * line.amount.quantize(CENT, rounding=ROUND_HALF_UP), _memo(line)))
    if not exempt:
        for tax in tax_lines:
            if tax.tax_amount:
                out.append((mapping.tax_code(tax.code),
                            sign * tax.tax_amount.quantize(CENT, rounding=ROUND_HALF_UP),
                            SPEC.truncate("line.memo", f"{tax.name} {tax.rate:f}")))
    if not out:
        raise PayloadRejectedError("document has no lines", platform=SPEC.name)
    return out


def invoice_function(invoice: Invoice, exempt: bool, mapping: TenantMapping,
                     settings: SageIntacctSettings) -> etree._Element:
    location = mapping.location(None)
    items = [_line("lineitem", *item, location)
             for item in line_items(invoice.lines, invoice.tax_lines, mapping, exempt=exempt)]
    return element("create_invoice", children=[
        element("customerid", customer_id(invoice.customer_id)),
        date_element("datecreated", invoice.issue_date),
        date_element("datedue", invoice.due_date),
        element("invoiceno", SPEC.truncate("invoice.number", invoice.number)),
        *optional("ponumber", invoice.po_number
                  and SPEC.truncate("invoice.ponumber", invoice.po_number)),
        *optional("description", invoice.notes
                  and SPEC.truncate("invoice.description", invoice.notes)),
        element("externalid", invoice.id),
        *_currency(invoice.currency, settings),
        element("invoiceitems", children=items)])


def update_invoice_function(key: str, invoice: Invoice, exempt: bool, existing_lines: int,
                            mapping: TenantMapping) -> etree._Element:
    """``update_invoice``: lines 1..n rewritten in place (``updatelineitem line_num``),
    extra new lines added, surplus old lines zeroed (lines cannot be deleted)."""
    location = mapping.location(None)
    wanted = line_items(invoice.lines, invoice.tax_lines, mapping, exempt=exempt)
    items: list[etree._Element] = []
    for number in range(1, max(existing_lines, len(wanted)) + 1):
        if number <= len(wanted):
            account, value, memo = wanted[number - 1]
        else:
            account, value, memo = wanted[0][0], Decimal(0), "(removed)"
        if number <= existing_lines:
            node = _line("updatelineitem", account, value, memo, location)
            node.set("line_num", str(number))
        else:
            node = _line("lineitem", account, value, memo, location)
        items.append(node)
    return element("update_invoice", children=[
        date_element("datecreated", invoice.issue_date),
        date_element("datedue", invoice.due_date),
        *optional("ponumber", invoice.po_number
                  and SPEC.truncate("invoice.ponumber", invoice.po_number)),
        element("updateinvoiceitems", children=items)], key=key)


def reverse_function(key: str, when: object, description: str) -> etree._Element:
    from datetime import date

    assert isinstance(when, date)
    return element("reverse_invoice", children=[
        date_element("datereversed", when), element("description", description)], key=key)


def payment_function(payment: Payment, applications: Mapping[str, Decimal],
                     mapping: TenantMapping, settings: SageIntacctSettings) -> etree._Element:
    """``create_arpayment``: money less the tip (Intacct AR payments have no tip; the
    tip is not recorded), applied per ``applications`` (Intacct invoice key → amount);
    what is not applied stays on the payment as the customer's credit."""
    return element("create_arpayment", children=[
        element("customerid", customer_id(payment.customer_id)),
        element("paymentamount", amount(payment.amount - payment.tip)),
        element("bankaccountid", mapping.deposit_account(payment.method.value)),
        element("refid", SPEC.truncate("payment.refid", payment.number)),
        date_element("datereceived", payment.received_date),
        element("paymentmethod", PAYMENT_METHODS[payment.method]),
        *_currency(payment.currency, settings),
        *[element("arpaymentitem", children=[element("invoicekey", key),
                                             element("amount", amount(value))])
          for key, value in applications.items() if value > 0]])


def adjustment_function(note: CreditNote, exempt: bool, applied_to: str | None,
                        mapping: TenantMapping, settings: SageIntacctSettings
                        ) -> etree._Element:
    """``create_aradjustment`` with negative (credit) lines; ``applied_to`` is the
    Intacct invoice *number* it corrects (``invoiceno``), if any."""
    location = mapping.location(None)
    items = [_line("lineitem", *item, location)
             for item in line_items(note.lines, note.tax_lines, mapping, exempt=exempt,
                                    sign=-1)]
    return element("create_aradjustment", children=[
        element("customerid", customer_id(note.customer_id)),
        date_element("datecreated", note.issue_date),
        element("adjustmentno", SPEC.truncate("invoice.number", note.number)),
        *optional("invoiceno", applied_to),
        element("description", SPEC.truncate("invoice.description", note.reason)),
        element("externalid", note.id),
        *_currency(note.currency, settings),
        element("aradjustmentitems", children=items)])


def query_function(obj: str, query: str, fields: str = "*") -> etree._Element:
    return element("readByQuery", children=[
        element("object", obj), element("fields", fields), element("query", query),
        element("pagesize", "100")])
