"""Zoho Books rounding adjustment: Zoho's total under the tenant's tax rounding, and the
``adjustment`` that brings it to the CRM's total (item-level vs entity-level rounding,
with and without a before-/after-tax discount).

Ten taxed lines of 1.00 at 8.25 %: each line's tax is 0.0825, so an item-level
organisation rounds ten times to 0.08 (0.80) while the CRM rounds the sum once (0.83).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.examples import SAMPLE_TAX_CODE, sample_customer
from schemas.models import DocumentLine, Invoice, LineKind
from sinks.core.mapping import TenantMapping
from sinks.platforms.zoho_books import ZohoBooksSettings
from sinks.platforms.zoho_books import mapping as m
from sinks.platforms.zoho_books.rounding import adjustment, zoho_total
from tests.sinks.corpus import line, taxed_invoice

D = Decimal
RATE = D("0.0825")
MAPPING = TenantMapping.model_validate({
    "items": {"labor": "I-L", "parts": "I-P", "fees": "I-F", "discounts": "I-D"},
    "tax_codes": {SAMPLE_TAX_CODE: "T-825"},
    "exempt_tax_code": "EX-1",
    "deposit_accounts": {"card": "A-CARD", "default": "A-UF"},
})
ITEM_LEVEL = ZohoBooksSettings(organization_id="20001")
ENTITY_LEVEL = ZohoBooksSettings(organization_id="20001", tax_rounding="entity_level")


def _invoice(discount: DocumentLine | None = None) -> Invoice:
    lines = tuple(line(f"l{i}", LineKind.PART, f"Part {i}", "1", "1.00", SAMPLE_TAX_CODE)
                  for i in range(10))
    if discount is not None:
        lines += (discount,)
    return taxed_invoice("inv1", "c1", lines, {SAMPLE_TAX_CODE: RATE})


TAXED_DISCOUNT = DocumentLine(line_id="d1", kind=LineKind.DISCOUNT, description="Loyalty",
                              quantity=D(1), unit_price=D("-1.00"), amount=D("-1.00"),
                              tax_code=SAMPLE_TAX_CODE)
UNTAXED_DISCOUNT = TAXED_DISCOUNT.model_copy(update={"tax_code": None})


def test_default_rounding_is_zohos_item_level() -> None:
    assert ZohoBooksSettings(organization_id="1").tax_rounding == "item_level"


@pytest.mark.parametrize(("discount", "crm_total", "item_level_total"), [
    (None, "10.83", "10.80"),              # tax 0.83 vs 10 x 0.08
    (TAXED_DISCOUNT, "9.74", "9.70"),      # before tax: 9.00 taxed, vs 10 x round(0.90 x r)
    (UNTAXED_DISCOUNT, "9.83", "9.80"),    # after tax: tax on the full 10.00
])
def test_adjustment_brings_zoho_to_the_crm_total(discount: DocumentLine | None,
                                                 crm_total: str,
                                                 item_level_total: str) -> None:
    invoice = _invoice(discount)
    assert invoice.total == D(crm_total)
    items, header = m.line_items(invoice.lines, MAPPING, exempt=False)
    rates = {"T-825": RATE}
    assert zoho_total(items, header, rates, "item_level") == D(item_level_total)
    assert zoho_total(items, header, rates, "entity_level") == D(crm_total)
    assert adjustment(invoice.total, items, header, rates, "item_level") == (
        D(crm_total) - D(item_level_total), D(item_level_total))
    assert adjustment(invoice.total, items, header, rates, "entity_level")[0] == 0


@pytest.mark.parametrize("discount", [None, TAXED_DISCOUNT, UNTAXED_DISCOUNT])
def test_invoice_body_carries_the_adjustment_only_when_zoho_would_differ(
        discount: DocumentLine | None) -> None:
    invoice = _invoice(discount)
    body = m.invoice_body(invoice, "C-1", sample_customer("c1"), MAPPING, ITEM_LEVEL)
    assert body["adjustment"] > 0
    assert body["adjustment_description"] == "Rounding adjustment"
    items = body["line_items"]
    header = {k: body[k] for k in ("discount", "is_discount_before_tax") if k in body}
    assert zoho_total(items, header, {"T-825": RATE}, "item_level") + D(
        str(body["adjustment"])) == invoice.total
    entity = m.invoice_body(invoice, "C-1", sample_customer("c1"), MAPPING, ENTITY_LEVEL)
    assert "adjustment" not in entity and "adjustment_description" not in entity


def test_exempt_customer_needs_no_adjustment_when_the_crm_charges_no_tax() -> None:
    lines = tuple(line(f"l{i}", LineKind.PART, "Part", "1", "1.00", SAMPLE_TAX_CODE)
                  for i in range(10))
    invoice = taxed_invoice("inv1", "c1", lines, {SAMPLE_TAX_CODE: RATE}, exempt=True)
    customer = sample_customer("c1").model_copy(update={"tax_exempt": True})
    items, header = m.line_items(invoice.lines, MAPPING, exempt=True)
    assert m.rounding_adjustment(invoice, items, header, MAPPING, ITEM_LEVEL) == (
        D(0), D("10.00"))
    body = m.invoice_body(invoice, "C-1", customer, MAPPING, ITEM_LEVEL)
    assert "adjustment" not in body


def test_unknown_rate_sends_no_adjustment() -> None:
    invoice = _invoice().model_copy(update={"tax_lines": ()})
    assert m.rounding_adjustment(invoice, *m.line_items(invoice.lines, MAPPING, exempt=False),
                                 MAPPING, ITEM_LEVEL) is None
    assert "adjustment" not in m.invoice_body(invoice, "C-1", None, MAPPING, ITEM_LEVEL)
