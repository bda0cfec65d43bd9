"""What Zoho Books will total for an invoice body, and the adjustment that makes it the CRM's.

Why: the CRM rounds tax once per tax code and document, while a Zoho organisation
with its default preference "tax rounding: item level" rounds every line's tax; on a
document with hundreds of taxed lines the two totals drift apart by cents. Zoho's
documented remedy is the invoice's ``adjustment`` (an amount applied after tax, with
``adjustment_description``): we compute Zoho's total for the exact body we send, under
the tenant's configured rounding, and send the difference to the CRM's total. The CRM's
figures are never changed; Zoho's document total becomes the CRM's.

Order of operations (Zoho's, mirrored by ``sinks/sandbox/zoho_books.py``): line total =
``rate * quantity`` rounded to cents; a before-tax entity-level discount is spread over
the lines in proportion to their totals (each share rounded to cents, the last line
takes the remainder) and taxed lines are taxed on what is left; item-level rounding
rounds each line's tax, entity-level rounding sums the unrounded taxes of a tax and
rounds once; an after-tax discount comes off the total; tax-inclusive prices carry
their tax inside the line totals, so the rounding preference cannot move the total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from sinks.platforms.common.money import from_wire, round_money

__all__ = ["ADJUSTMENT_DESCRIPTION", "TaxRounding", "adjustment", "zoho_total"]

TaxRounding = Literal["item_level", "entity_level"]

ADJUSTMENT_DESCRIPTION = "Rounding adjustment"

ZERO = Decimal(0)
_cents = round_money  # Zoho rounds half up to cents
_dec = from_wire


def zoho_total(items: Sequence[Mapping[str, Any]], header: Mapping[str, Any],
               rates: Mapping[str, Decimal], rounding: TaxRounding, *,
               inclusive: bool = False) -> Decimal:
    """The total Zoho Books computes for ``line_items`` plus the discount ``header``.

    ``rates``: Zoho ``tax_id`` → rate as a fraction (0.0825); every ``tax_id`` on the
    items must be there. Exempt documents carry no ``tax_id`` on their items.
    """
    totals = [_cents(_dec(item["rate"]) * _dec(item.get("quantity", 1))) for item in items]
    subtotal = sum(totals, ZERO)
    discount = _cents(_dec(header.get("discount", 0)))
    if inclusive:
        return subtotal - discount
    before = bool(header.get("is_discount_before_tax")) and discount > 0
    tax, allotted = ZERO, ZERO
    per_tax: dict[str, Decimal] = {}
    for index, (item, base) in enumerate(zip(items, totals, strict=True)):
        if before and subtotal:
            share = (discount - allotted if index == len(items) - 1
                     else _cents(discount * base / subtotal))
            allotted += share
            base -= share
        tax_id = item.get("tax_id")
        if not tax_id:
            continue
        exact = base * rates[str(tax_id)]
        if rounding == "entity_level":
            per_tax[str(tax_id)] = per_tax.get(str(tax_id), ZERO) + exact
        else:
            tax += _cents(exact)
    tax += sum((_cents(value) for value in per_tax.values()), ZERO)
    return subtotal - discount + tax


def adjustment(crm_total: Decimal, items: Sequence[Mapping[str, Any]],
               header: Mapping[str, Any], rates: Mapping[str, Decimal],
               rounding: TaxRounding, *, inclusive: bool = False) -> tuple[Decimal, Decimal]:
    """``(adjustment, zoho_total)``: the amount to send as ``adjustment`` (0 when Zoho
    already agrees with the CRM) and the total Zoho would reach without it."""
    expected = zoho_total(items, header, rates, rounding, inclusive=inclusive)
    return _cents(crm_total) - expected, expected
