"""Tax arithmetic in :class:`~decimal.Decimal`: no faust, no Kafka, no I/O.

Why a separate module: the numbers are what an accountant audits, so they must be
testable on their own (hypothesis drives them in ``tests/stream_processors``) and
reusable by a reconciliation job that has no stream processor around it.

Rules (documented here because the CRM's figures are compared against them):

* A :class:`~schemas.models.TaxRate` has one or more components. A plain component
  taxes the net amount; a *compound* component taxes the net amount plus every
  component before it (Quebec QST on top of GST). Their combined effective rate is
  ``R = sum(r_i * (1 + R_before_i if compound else 1))``; components are not rounded
  separately, the code's total is (most CRMs print one line per code).
* Tax-exclusive prices: ``tax = net * R``. Tax-inclusive prices (the line amount is
  gross): ``tax = gross * R / (1 + R)`` and ``taxable = gross - tax``.
* Rounding *granularity* is either per line (round each line's tax, then add) or per
  document (add the unrounded line taxes of a code, round once). Rounding *mode* is a
  :class:`~schemas.models.RoundingMode`; the quantum is the currency's minor unit.
* A tax-exempt customer owes no tax whatever the lines say.
* Lines without a ``tax_code`` are not taxable; DISCOUNT lines (negative) reduce the
  taxable base of their code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from schemas.currencies import minor_units
from schemas.models import DocumentLine, RoundingMode, TaxComponent, TaxRate

ZERO = Decimal(0)
ONE = Decimal(1)


class Granularity(StrEnum):
    """Where rounding happens: on every line's tax, or once per code per document."""

    PER_LINE = "per_line"
    PER_DOCUMENT = "per_document"


@dataclass(frozen=True)
class TaxPolicy:
    """How a tenant rounds tax. The default matches most US point-of-sale systems."""

    granularity: Granularity = Granularity.PER_DOCUMENT
    mode: RoundingMode = RoundingMode.HALF_UP


@dataclass(frozen=True)
class CodeTax:
    """The computed tax of one code on one document."""

    code: str
    rate: Decimal
    """The exact effective rate (may carry more than 6 places when compound)."""
    taxable_amount: Decimal
    tax_amount: Decimal


@dataclass(frozen=True)
class DocumentTax:
    """Per-code results plus the per-line taxes they were built from."""

    codes: tuple[CodeTax, ...]
    line_taxes: Mapping[str, Decimal]
    """line_id -> that line's tax rounded per line (informative in per-document mode)."""
    total_tax: Decimal
    policy: TaxPolicy


class UnknownTaxCode(LookupError):
    """A line names a tax code with no rate in force on the document date."""

    def __init__(self, code: str, on: date) -> None:
        super().__init__(f"tax code {code!r} has no rate in force on {on.isoformat()}")
        self.code = code
        self.on = on


def effective_rate(components: Sequence[TaxComponent]) -> Decimal:
    """Combined rate of the components, compound ones applied on what came before."""
    total = ZERO
    for component in components:
        total += component.rate * (ONE + total) if component.compound else component.rate
    return total


def rate_in_force(versions: Iterable[TaxRate], on: date) -> TaxRate | None:
    """The active version whose ``[effective_from, effective_to)`` contains ``on``; when
    periods overlap (a CRM data error), the one that started last wins."""
    candidates = [
        v
        for v in versions
        if v.active and v.effective_from <= on and (v.effective_to is None or on < v.effective_to)
    ]
    return max(candidates, key=lambda v: v.effective_from, default=None)


def quantum(currency: str) -> Decimal:
    """The currency's smallest unit as a Decimal exponent (0.01 for USD, 1 for JPY)."""
    return ONE.scaleb(-minor_units(currency))


def round_money(value: Decimal, currency: str, mode: RoundingMode) -> Decimal:
    """Round to the currency's minor unit with an explicit mode."""
    return value.quantize(quantum(currency), rounding=mode.decimal_mode)


def _raw_line_tax(amount: Decimal, rate: Decimal, inclusive: bool) -> Decimal:
    if inclusive:
        return amount * rate / (ONE + rate)
    return amount * rate


def compute_document_tax(
    lines: Sequence[DocumentLine],
    *,
    currency: str,
    prices_include_tax: bool,
    rate_for: Callable[[str], Decimal],
    tax_exempt: bool = False,
    policy: TaxPolicy = TaxPolicy(),
) -> DocumentTax:
    """Compute the tax of a document.

    ``rate_for(code)`` returns the effective rate of a code on the document date and
    raises :class:`UnknownTaxCode` when there is none; it is not called for an exempt
    customer (an exempt customer's document needs no rates).
    """
    mode = policy.mode
    line_taxes: dict[str, Decimal] = {}
    per_code_gross: dict[str, Decimal] = {}
    per_code_raw: dict[str, Decimal] = {}
    per_code_rounded_lines: dict[str, Decimal] = {}
    rates: dict[str, Decimal] = {}
    for line in lines:
        code = line.tax_code
        if not code:
            continue
        if tax_exempt:
            rate = ZERO
        else:
            if code not in rates:
                rates[code] = rate_for(code)
            rate = rates[code]
        rates.setdefault(code, rate)
        raw = _raw_line_tax(line.amount, rate, prices_include_tax)
        rounded = round_money(raw, currency, mode)
        line_taxes[line.line_id] = rounded
        per_code_gross[code] = per_code_gross.get(code, ZERO) + line.amount
        per_code_raw[code] = per_code_raw.get(code, ZERO) + raw
        per_code_rounded_lines[code] = per_code_rounded_lines.get(code, ZERO) + rounded
    codes = []
    for code in sorted(per_code_gross):
        if policy.granularity is Granularity.PER_LINE:
            tax = per_code_rounded_lines[code]
        else:
            tax = round_money(per_code_raw[code], currency, mode)
        gross = per_code_gross[code]
        taxable = gross - tax if prices_include_tax else gross
        codes.append(CodeTax(code, rates[code], taxable, tax))
    total = sum((c.tax_amount for c in codes), start=ZERO)
    return DocumentTax(tuple(codes), line_taxes, total, policy)


def expected_line_amount(line: DocumentLine, currency: str, mode: RoundingMode) -> Decimal:
    """``quantity * unit_price`` rounded to the currency, what the line amount should be."""
    return round_money(line.quantity * line.unit_price, currency, mode)
