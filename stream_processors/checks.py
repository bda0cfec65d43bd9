"""Compare a CRM document's own figures with ours; report, never repair.

Why: the books must agree with the CRM to the cent, and when they cannot (the CRM
rounded differently, a line was mistyped, a rate changed), an accountant has to see
it. So every difference becomes a :class:`~schemas.models.Discrepancy` on the
LedgerEntry, the CRM's document travels on unchanged, and the balances use the CRM's
totals (that is what the customer was billed).

Expected arithmetic: ``line.amount = quantity * unit_price`` (rounded to the
currency); ``subtotal = sum(line.amount)``; tax per code as :mod:`.tax` computes it;
``total = subtotal + total_tax`` with tax-exclusive prices and ``total = subtotal``
with tax-inclusive ones (the tax is inside the line amounts); for invoices
``amount_due = total - amount_paid``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from schemas.models import ComputedTax, CreditNote, Discrepancy, Invoice, quantize
from stream_processors.tax import (
    DocumentTax,
    Granularity,
    TaxPolicy,
    compute_document_tax,
    expected_line_amount,
)

ZERO = Decimal(0)


@dataclass(frozen=True)
class DocumentReview:
    computed_tax: tuple[ComputedTax, ...]
    discrepancies: tuple[Discrepancy, ...]


def _d(field: str, crm: Decimal | str | None, ours: Decimal | str | None,
       note: str | None = None) -> Discrepancy:
    return Discrepancy(
        field=field,
        crm_value=None if crm is None else str(crm),
        computed_value=None if ours is None else str(ours),
        note=note,
    )


def _other(policy: TaxPolicy) -> TaxPolicy:
    other = (Granularity.PER_LINE if policy.granularity is Granularity.PER_DOCUMENT
             else Granularity.PER_DOCUMENT)
    return TaxPolicy(other, policy.mode)


def review_document(
    doc: Invoice | CreditNote,
    *,
    rate_for: Callable[[str], Decimal],
    tax_exempt: bool,
    policy: TaxPolicy,
) -> DocumentReview:
    """Compute the document's tax and list every place the CRM's figures differ.

    Raises :class:`~stream_processors.tax.UnknownTaxCode` if a line's code has no
    rate in force (the caller parks the event, then dead-letters it).
    """
    found: list[Discrepancy] = []
    for line in doc.lines:
        want = expected_line_amount(line, doc.currency, policy.mode)
        if line.amount != want:
            found.append(_d(f"lines[{line.line_id}].amount", line.amount, want,
                            "quantity x unit_price"))
    subtotal = sum((line.amount for line in doc.lines), start=ZERO)
    if doc.subtotal != subtotal:
        found.append(_d("subtotal", doc.subtotal, subtotal, "sum of line amounts"))

    def compute(with_policy: TaxPolicy) -> DocumentTax:
        return compute_document_tax(
            doc.lines, currency=doc.currency, prices_include_tax=doc.prices_include_tax,
            rate_for=rate_for, tax_exempt=tax_exempt, policy=with_policy,
        )

    tax = compute(policy)
    found.extend(_tax_differences(doc, tax, tax_exempt, lambda: compute(_other(policy))))

    total = subtotal if doc.prices_include_tax else subtotal + tax.total_tax
    if doc.total != total:
        found.append(_d("total", doc.total, total,
                        "subtotal (tax-inclusive prices)" if doc.prices_include_tax
                        else "subtotal + computed tax"))
    if isinstance(doc, Invoice) and doc.amount_due != doc.total - doc.amount_paid:
        found.append(_d("amount_due", doc.amount_due, doc.total - doc.amount_paid,
                        "CRM total - CRM amount_paid"))
    computed = tuple(
        ComputedTax(code=c.code, rate=quantize(c.rate, 6), taxable_amount=c.taxable_amount,
                    tax_amount=c.tax_amount, rounding=policy.mode)
        for c in tax.codes
    )
    return DocumentReview(computed, tuple(found))


def _tax_differences(
    doc: Invoice | CreditNote,
    tax: DocumentTax,
    tax_exempt: bool,
    other: Callable[[], DocumentTax],
) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    ours = {c.code: c for c in tax.codes}
    theirs = {t.code: t for t in doc.tax_lines}
    for code in sorted(set(ours) | set(theirs)):
        mine, crm = ours.get(code), theirs.get(code)
        crm_tax = crm.tax_amount if crm else ZERO
        my_tax = mine.tax_amount if mine else ZERO
        if crm_tax != my_tax:
            note = "customer is tax exempt" if tax_exempt and crm_tax else None
            if note is None:
                alt = next((c for c in other().codes if c.code == code), None)
                if alt is not None and alt.tax_amount == crm_tax:
                    note = f"CRM rounds {_other(tax.policy).granularity.value}"
            found.append(_d(f"tax_lines[{code}].tax_amount", crm_tax, my_tax, note))
        if crm and mine and crm.taxable_amount != mine.taxable_amount:
            found.append(_d(f"tax_lines[{code}].taxable_amount", crm.taxable_amount,
                            mine.taxable_amount))
    if doc.total_tax != tax.total_tax:
        found.append(_d("total_tax", doc.total_tax, tax.total_tax))
    return found
