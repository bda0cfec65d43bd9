"""Money on the wire: ``Decimal`` inside, a JSON number only at the edge.

Amounts are rounded explicitly, once, with the platform's (or tenant's) rounding mode
and never by float arithmetic. JSON has no decimal type and ``httpx`` serialises with
the standard ``json`` module, so :func:`wire` turns an already rounded amount into a
float whose shortest ``repr`` is exactly that decimal (true for every amount with at
most 15 significant digits), and refuses anything else rather than sending a
different number.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["CENT", "ZERO", "from_wire", "round_money", "split", "wire"]

ZERO = Decimal(0)
CENT = Decimal("0.01")

_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN,
          "HALF_UP": ROUND_HALF_UP, "HALF_EVEN": ROUND_HALF_EVEN}


def round_money(amount: Decimal, mode: str = ROUND_HALF_UP, places: int = 2) -> Decimal:
    """``amount`` rounded to ``places`` decimals; ``mode`` is a :mod:`decimal` constant
    or a mapping-file spelling (``half_up``/``half_even``)."""
    rounding = _MODES.get(mode, mode)
    return amount.quantize(Decimal(1).scaleb(-places), rounding=rounding)


def wire(amount: Decimal, places: int = 2) -> float:
    """The JSON number for a rounded amount.

    Raises ``ValueError`` if ``amount`` has more than ``places`` decimals (round it
    first, explicitly) or cannot be represented exactly as a JSON number.
    """
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ValueError(f"{amount} has more than {places} decimals; round it explicitly")
    number = float(amount)
    if Decimal(repr(number)) != amount:
        raise ValueError(f"{amount} cannot be sent exactly as a JSON number")
    return number + 0.0  # normalises -0.0


def from_wire(value: Any) -> Decimal:
    """A platform's JSON number (or numeric string) as a Decimal, without float noise."""
    if value is None:
        return ZERO
    return Decimal(str(value))


def split(total: Decimal, weights: Sequence[Decimal], places: int = 2) -> list[Decimal]:
    """``total`` spread over ``weights`` proportionally, rounded to ``places``, summing to
    exactly ``total`` (largest-remainder method; ties go to the earlier weight).

    Used to spread a document's tax over its lines where a platform wants tax per
    line: per-line rounding would otherwise drift a cent from the CRM's total.
    """
    if not weights:
        return []
    quantum = Decimal(1).scaleb(-places)
    base = sum(weights, ZERO)
    if base == 0:
        shares = [ZERO] * len(weights)
        shares[-1] = total
        return shares
    exact = [total * w / base for w in weights]
    floored = [e.quantize(quantum, rounding="ROUND_FLOOR") for e in exact]
    left = int(((total - sum(floored, ZERO)) / quantum).to_integral_value())
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floored[i]), i))
    step = quantum if left >= 0 else -quantum
    for i in order[: abs(left)]:
        floored[i] += step
    return floored
