"""Pure mapping of CRM documents to Odoo field values (``create``/``write`` vals).

Rounding rule: Odoo stores monetary amounts at the currency's rounding (0.01 for the
CRM's currencies) and rounds HALF-UP (``float_round``'s default); unit prices at the
"Product Price" decimal accuracy and quantities at "Product Unit of Measure" accuracy
(both 2 by default, ``settings.price_digits``/``quantity_digits``). Odoo recomputes a
line's subtotal as quantity x price_unit, so a CRM line whose amount is not that
product at those accuracies is sent as 1 x amount (:func:`sinks.platforms.common.
lines.priced`), with a note. Taxes are Odoo's own ``account.tax`` records (mapping
``tax_codes`` → tax id); Odoo computes the tax amounts itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from schemas.models import CreditNote, Customer, DocumentLine, Invoice, Payment
from sinks.core.errors import ConfigurationError
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.lines import mapped_kind, priced
from sinks.platforms.common.money import round_money, wire
from sinks.platforms.common.text import Notes
from sinks.platforms.odoo.spec import SPEC, OdooSettings
from sinks.transport.rpc import cmd_clear, cmd_create, cmd_set

__all__ = [
    "LineKey",
    "currency_id",
    "line_keys_of_records",
    "line_keys_of_vals",
    "m2o",
    "move_vals",
    "odoo_id",
    "partner_vals",
    "payment_vals",
]

LineKey = tuple[str, Decimal, Decimal, tuple[int, ...], int]


def odoo_id(value: str | int, what: str) -> int:
    """A mapping value as an Odoo record id (they are integers)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise ConfigurationError(f"{what} must be an Odoo record id (a positive integer), "
                                 f"got {value!r}", platform=SPEC.name)
    return number


def m2o(value: Any) -> int | None:
    """The id of a many2one as ``read``/``search_read`` return it (``[id, name]`` or
    ``False``)."""
    if isinstance(value, list | tuple) and value:
        return int(value[0])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def currency_id(currency: str, settings: OdooSettings) -> int | None:
    """``res.currency`` id for a foreign currency; ``None`` for the company's."""
    if currency == settings.company_currency:
        return None
    if currency not in settings.currency_ids:
        raise ConfigurationError(f"no Odoo currency id for {currency} (settings.currency_ids)",
                                 platform=SPEC.name)
    return settings.currency_ids[currency]


def partner_vals(customer: Customer, settings: OdooSettings) -> dict[str, Any]:
    address = customer.billing_address
    vals: dict[str, Any] = {
        "name": customer.display_name, "ref": customer.id, "customer_rank": 1,
        "is_company": bool(customer.company_name), "active": customer.active,
        "email": customer.email or False, "phone": customer.phone or False,
        "street": address.line1 or False, "street2": address.line2 or False,
        "city": address.city or False, "zip": address.postal_code or False,
    }
    country = settings.country_ids.get(str(address.country))
    if country is not None:
        vals["country_id"] = country
    if customer.tax_exemption_number:
        vals["comment"] = f"<p>Tax exemption: {customer.tax_exemption_number}</p>"
    return vals


def _line_vals(line: DocumentLine, taxed: set[str], mapping: TenantMapping,
               settings: OdooSettings, notes: Notes) -> dict[str, Any]:
    price = priced(line, ROUND_HALF_UP, unit_places=settings.price_digits)
    quantity, unit = price.quantity, price.unit_price
    step = Decimal(1).scaleb(-settings.quantity_digits)
    if quantity != quantity.quantize(step):
        # Odoo would round the quantity to its UoM accuracy and change the amount.
        quantity, unit = Decimal(1), price.amount
        notes.add(f"line {line.line_id}: quantity {line.quantity} exceeds Odoo's "
                  f"{settings.quantity_digits}-decimal accuracy; sent as 1 x {price.amount}")
    elif price.note:
        notes.add(price.note)
    if line.tax_code and line.tax_code in taxed:
        tax_ids = [odoo_id(mapping.tax_code(line.tax_code), f"tax code {line.tax_code}")]
    elif line.tax_code and mapping.exempt_tax_code is not None:
        tax_ids = [odoo_id(mapping.exempt_tax_code, "exempt_tax_code")]
    else:
        tax_ids = []
    return {
        "display_type": "product",
        "name": line.description or line.line_id,
        "quantity": float(quantity),
        "price_unit": wire(round_money(unit, ROUND_HALF_UP, settings.price_digits),
                           settings.price_digits),
        "tax_ids": [cmd_set(tax_ids)],
        "account_id": odoo_id(mapping.income_account(mapped_kind(line)), "income account"),
    }


def move_vals(doc: Invoice | CreditNote, partner_id: int, mapping: TenantMapping,
              settings: OdooSettings, notes: Notes, *, replace_lines: bool = False,
              reversed_entry_id: int | None = None) -> dict[str, Any]:
    """``account.move`` vals of an invoice (``out_invoice``) or credit note
    (``out_refund``). ``date`` (the accounting date) is sent explicitly as the CRM's
    issue date, so Odoo refuses a locked period instead of silently moving the
    document into the next open one. ``replace_lines`` prefixes ``(5, 0, 0)``."""
    taxed = {t.code for t in doc.tax_lines}
    lines = [cmd_create(_line_vals(line, taxed, mapping, settings, notes)) for line in doc.lines]
    is_invoice = isinstance(doc, Invoice)
    vals: dict[str, Any] = {
        "move_type": "out_invoice" if is_invoice else "out_refund",
        "partner_id": partner_id,
        "ref": doc.number,
        "invoice_date": doc.issue_date.isoformat(),
        "date": doc.issue_date.isoformat(),
        "invoice_line_ids": ([cmd_clear()] if replace_lines else []) + lines,
    }
    if isinstance(doc, Invoice):
        vals["invoice_date_due"] = doc.due_date.isoformat()
        if doc.notes:
            vals["narration"] = f"<p>{doc.notes}</p>"
    elif reversed_entry_id is not None:
        vals["reversed_entry_id"] = reversed_entry_id
    currency = currency_id(doc.currency, settings)
    if currency is not None:
        vals["currency_id"] = currency
    if settings.sale_journal_id is not None:
        vals["journal_id"] = settings.sale_journal_id
    if settings.company_id is not None:
        vals["company_id"] = settings.company_id
    return vals


def line_keys_of_vals(vals: Mapping[str, Any]) -> list[LineKey]:
    """What identifies the lines of ``vals`` (to tell whether Odoo holds them already)."""
    keys: list[LineKey] = []
    for command in vals["invoice_line_ids"]:
        if command[0] != 0:
            continue
        line = command[2]
        keys.append((str(line["name"]), Decimal(str(line["quantity"])).normalize(),
                     Decimal(str(line["price_unit"])).normalize(),
                     tuple(sorted(line["tax_ids"][0][2])),
                     int(line["account_id"])))
    return keys


def line_keys_of_records(records: Sequence[Mapping[str, Any]]) -> list[LineKey]:
    """The same keys from ``account.move.line`` records read back (in sequence order)."""
    ordered = sorted(records, key=lambda r: (r.get("sequence", 0), r["id"]))
    return [(str(r.get("name") or ""), Decimal(str(r["quantity"])).normalize(),
             Decimal(str(r["price_unit"])).normalize(), tuple(sorted(r.get("tax_ids") or [])),
             m2o(r.get("account_id")) or 0) for r in ordered]


def payment_vals(payment: Payment | CreditNote, partner_id: int, amount: Decimal,
                 journal_id: int, settings: OdooSettings, *, outbound: bool) -> dict[str, Any]:
    """``account.payment`` vals: money in (``inbound``) or back out (``outbound``),
    the CRM number in the memo field (our lookup key)."""
    vals: dict[str, Any] = {
        "payment_type": "outbound" if outbound else "inbound",
        "partner_type": "customer",
        "partner_id": partner_id,
        "amount": wire(round_money(amount)),
        "date": (payment.received_date if isinstance(payment, Payment)
                 else payment.issue_date).isoformat(),
        "journal_id": journal_id,
        settings.memo_field: payment.number,
    }
    currency = currency_id(payment.currency, settings)
    if currency is not None:
        vals["currency_id"] = currency
    return vals
