"""CRM document lines in the terms every accounting platform uses.

A repair-shop CRM has six line kinds; a tenant's mapping file knows four (labor,
parts, fees, discounts), because that is how a bookkeeper thinks about income
accounts. Negative lines (discounts, and OTHER lines such as a goodwill credit) are
discounts whatever their kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from schemas.models import DocumentLine, LineKind, TaxLine
from sinks.core.mapping import LineKind as MappedKind
from sinks.platforms.common.money import ZERO, round_money, split

__all__ = ["MAPPED_KIND", "PricedLine", "is_discount", "mapped_kind", "priced", "tax_by_line"]

MAPPED_KIND: dict[LineKind, MappedKind] = {
    LineKind.LABOR: MappedKind.LABOR,
    LineKind.PART: MappedKind.PARTS,
    LineKind.TRIP_FEE: MappedKind.FEES,
    LineKind.DIAGNOSTIC_FEE: MappedKind.FEES,
    LineKind.OTHER: MappedKind.FEES,
    LineKind.DISCOUNT: MappedKind.DISCOUNTS,
}


def is_discount(line: DocumentLine) -> bool:
    return line.kind is LineKind.DISCOUNT or line.amount < 0


def mapped_kind(line: DocumentLine) -> MappedKind:
    """The mapping-file kind of a line (its income account / item)."""
    return MappedKind.DISCOUNTS if is_discount(line) else MAPPED_KIND[line.kind]


@dataclass(frozen=True)
class PricedLine:
    """Quantity, unit price and amount as sent; ``note`` says why they differ from
    the CRM's (a CRM amount that is not quantity x price at 2 decimals)."""

    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    note: str | None = None


def priced(line: DocumentLine, mode: str = "ROUND_HALF_UP", *, unit_places: int = 2
           ) -> PricedLine:
    """The line's amount rounded to cents, with a quantity and unit price that
    multiply to it. Platforms recompute ``qty x price`` and reject (or silently use)
    a mismatch; when the CRM's figures do not multiply out, the amount wins (it is
    what the customer was charged) and the line is sent as 1 x amount."""
    amount = round_money(line.amount, mode)
    quantity = line.quantity.normalize()
    unit = round_money(line.unit_price, mode, unit_places)
    if quantity > 0 and round_money(quantity * unit, mode) == amount:
        return PricedLine(quantity, unit, amount)
    return PricedLine(
        Decimal(1), amount, amount,
        note=f"line {line.line_id}: {line.quantity} x {line.unit_price} != {line.amount}; "
             f"sent as 1 x {amount}",
    )


def tax_by_line(lines: Sequence[DocumentLine], tax_lines: Sequence[TaxLine],
                total_tax: Decimal, mode: str = "ROUND_HALF_UP") -> list[Decimal]:
    """The document's tax spread over its lines, summing exactly to ``total_tax``
    rounded: each CRM tax line over the lines carrying its code, in proportion to
    their amounts. Tax that matches no line's code (a document-level tax) goes over
    every taxable line, or every line if none is marked taxable."""
    shares = [ZERO] * len(lines)
    rounded_total = round_money(total_tax, mode)
    unassigned = rounded_total
    for tax in tax_lines:
        amount = round_money(tax.tax_amount, mode)
        members = [i for i, line in enumerate(lines) if line.tax_code == tax.code]
        if not members:
            continue
        for i, share in zip(members, split(amount, [lines[i].amount for i in members]),
                            strict=True):
            shares[i] += share
        unassigned -= amount
    if unassigned != 0 and lines:
        members = [i for i, line in enumerate(lines) if line.tax_code] or list(range(len(lines)))
        for i, share in zip(members, split(unassigned, [lines[i].amount for i in members]),
                            strict=True):
            shares[i] += share
    return shares
