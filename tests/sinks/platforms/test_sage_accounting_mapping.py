"""Sage Accounting: pure mapping (rounding, truncation, taxes, money), error
classification from Sage-shaped bodies, and the swagger validator itself."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from schemas.examples import sample_customer, sample_invoice, sample_payment
from schemas.models import Allocation, DocumentLine, LineKind, PaymentKind, TaxLine
from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    TransientError,
)
from sinks.platforms.sage_accounting import SageAccounting
from sinks.platforms.sage_accounting import mapping as m
from sinks.platforms.sage_accounting.platform import MAX_NAME_LENGTHS, _limits
from sinks.transport.session_rest import error_entries, hex_key, items_of, json_number
from tests.sinks.platforms.sage_accounting_support import (
    load_swagger,
    request_errors,
    tenant_config,
)

D = Decimal
MAPPING = tenant_config().mapping
LIMITS = _limits()


def line(line_id: str, kind: LineKind, qty: str, price: str, tax_code: str | None = "TX"
         ) -> DocumentLine:
    amount = D(qty) * D(price)
    return DocumentLine(line_id=line_id, kind=kind, description=f"line {line_id}",
                        quantity=D(qty), unit_price=D(price), tax_code=tax_code,
                        amount=amount.quantize(D("0.01")))


def test_line_tax_is_rounded_per_line_and_the_cent_goes_to_the_largest_line() -> None:
    mapping = tenant_config(tax_codes={"TX": "US_AUSTIN"}).mapping
    lines = [line("a", LineKind.PART, "1", "0.10"), line("b", LineKind.PART, "1", "0.10"),
             line("c", LineKind.LABOR, "1", "0.30")]
    # document tax at 5 %: 0.50 * 0.05 = 0.025 -> 0.03 (half-up); per line 0.01+0.01+0.02=0.04
    tax = TaxLine(code="TX", name="t", rate=D("0.05"), taxable_amount=D("0.50"),
                  tax_amount=D("0.03"))
    out = m.document_lines(lines, [tax], mapping, exempt=False, limits=LIMITS)
    assert [x["tax_amount"] for x in out] == [0.01, 0.01, 0.01]
    assert sum(D(str(x["tax_amount"])) for x in out) == D("0.03")
    assert [x["total_amount"] for x in out] == [0.11, 0.11, 0.31]


def test_net_amount_is_half_up_per_line_and_prices_keep_four_places() -> None:
    lines = [line("a", LineKind.LABOR, "1.5", "33.3333", tax_code=None)]
    [out] = m.document_lines(lines, [], MAPPING, exempt=False, limits=LIMITS)
    assert out["net_amount"] == 50.0  # 49.99995 -> 50.00
    assert out["unit_price"] == 33.3333 and out["quantity"] == 1.5
    assert out["tax_rate_id"] == "US_NO_TAX" and out["tax_amount"] == 0.0


def test_crm_line_amount_wins_over_quantity_times_price() -> None:
    odd = DocumentLine(line_id="o", kind=LineKind.LABOR, description="Labor 0.333 h",
                       quantity=D("0.333"), unit_price=D("95.00"), amount=D("31.60"))
    [out] = m.document_lines([odd], [], MAPPING, exempt=False, limits=LIMITS)
    assert out["net_amount"] == 31.6  # 0.333 * 95 = 31.635 would round to 31.64
    assert (out["quantity"], out["unit_price"]) == (0.333, 94.8949)  # re-derived price
    assert m.cents(D(str(out["quantity"])) * D(str(out["unit_price"]))) == D("31.60")
    assert out["description"] == "Labor 0.333 h"
    hopeless = odd.model_copy(update={"quantity": D("1000"), "unit_price": D("0"),
                                      "amount": D("0.01")})
    [out] = m.document_lines([hopeless], [], MAPPING, exempt=False, limits=LIMITS)
    assert (out["quantity"], out["unit_price"], out["net_amount"]) == (1.0, 0.01, 0.01)
    assert out["description"] == "Labor 0.333 h (1000 x 0)"


def test_exempt_customer_gets_exempt_code_and_no_tax() -> None:
    invoice = sample_invoice()
    body = m.invoice_body(invoice, "C1", MAPPING, exempt=True, limits=LIMITS)
    assert {x["tax_rate_id"] for x in body["invoice_lines"]} == {"US_NO_TAX"}
    assert body["tax_amount"] == 0.0 and body["total_amount"] == float(invoice.subtotal)


def test_invoice_body_matches_crm_total_and_maps_accounts() -> None:
    invoice = sample_invoice()
    body = m.invoice_body(invoice, "C1", MAPPING, exempt=False, limits=LIMITS)
    assert D(str(body["total_amount"])) == invoice.total
    assert [x["ledger_account_id"] for x in body["invoice_lines"]] == [
        "LA-LABOR", "LA-PARTS", "LA-FEES"]
    assert body["reference"] == "inv1" and body["invoice_number"] == "INV-INV1"
    assert "status_id" not in {k for k, v in body.items() if v is not None}


def test_discount_line_is_a_negative_line_on_the_discount_account() -> None:
    lines = (*sample_invoice().lines,
             DocumentLine(line_id="d", kind=LineKind.DISCOUNT, description="Loyalty",
                          quantity=D(1), unit_price=D("-10.00"), amount=D("-10.00")))
    invoice = sample_invoice(lines=lines)
    body = m.invoice_body(invoice, "C1", MAPPING, exempt=False, limits=LIMITS)
    discount = body["invoice_lines"][-1]
    assert discount["ledger_account_id"] == "LA-DISCOUNTS" and discount["net_amount"] == -10.0
    assert D(str(body["total_amount"])) == invoice.total


def test_names_are_truncated_to_the_spec_limits() -> None:
    customer = sample_customer(display_name="N" * 300, company_name=None)
    body = m.contact_body(customer, LIMITS)
    assert len(body["name"]) == MAX_NAME_LENGTHS["contact.name"]
    long_id = "inv-" + "x" * 60
    invoice = sample_invoice(long_id, number="N" * 40)
    body = m.invoice_body(invoice, "C1", MAPPING, exempt=False, limits=LIMITS)
    assert len(body["reference"]) == MAX_NAME_LENGTHS["document.reference"]
    assert len(body["invoice_number"]) == MAX_NAME_LENGTHS["document.reference"]


def test_unmapped_values_name_the_missing_key() -> None:
    mapping = tenant_config(income_accounts={"labor": "LA-LABOR"}).mapping
    with pytest.raises(ConfigurationError, match="income_accounts"):
        m.invoice_body(sample_invoice(), "C1", mapping, exempt=False, limits=LIMITS)
    mapping = tenant_config(tax_codes={}).mapping
    with pytest.raises(ConfigurationError, match="TX-AUSTIN"):
        m.invoice_body(sample_invoice(), "C1", mapping, exempt=False, limits=LIMITS)


def test_receipt_leaves_the_unallocated_part_on_account_and_excludes_the_tip() -> None:
    payment = sample_payment(amount=D("120.00"), tip=D("20.00"),
                             allocations=(Allocation(invoice_id="inv1", amount=D("60.00")),))
    body = m.receipt_body(payment, "C1", "BA-1", [("SI-1", D("60.00"))], limits=LIMITS)
    assert body["transaction_type_id"] == "CUSTOMER_RECEIPT"
    assert body["total_amount"] == 100.0
    assert body["payment_on_account"]["total_amount"] == 40.0
    assert body["allocated_artefacts"] == [{"artefact_id": "SI-1", "amount": 60.0}]
    refund = sample_payment(kind=PaymentKind.REFUND, refund_of="pay0")
    assert m.receipt_body(refund, "C1", "BA-1", [], limits=LIMITS)[
        "transaction_type_id"] == "CUSTOMER_REFUND"


def test_credit_note_allocation_balances_to_zero() -> None:
    body = m.allocation_body("C1", "2025-03-20", "CN-1", [("SI-1", D("60.00")),
                                                          ("SI-2", D("37.41"))])
    amounts = [D(str(a["amount"])) for a in body["allocated_artefacts"]]
    assert sum(amounts) == 0 and amounts[-1] == D("-97.41")


def test_shared_rest_helpers() -> None:
    assert json_number(D("2.675")) == 2.68 and json_number(D("-0.005")) == -0.01
    assert hex_key("5f4dec36-7777-5b76-a863-9abc85967a37") == "5f4dec3677775b76a8639abc85967a37"
    with pytest.raises(ValueError):
        hex_key("not-a-key")
    assert items_of({"$items": [{"id": 1}, 3]}) == [{"id": 1}]
    assert items_of([{"id": 2}]) == [{"id": 2}]
    assert error_entries(b"not json") == [] and error_entries(b'{"message": "x"}') == [
        {"message": "x"}]


# --------------------------------------------------------------------------- errors


def sage_error(status: int, code: str, message: str, source: str = "",
               headers: dict[str, str] | None = None) -> PlatformResponse:
    body = [{"$severity": "error", "$dataCode": code, "$message": message, "$source": source}]
    return PlatformResponse(status, headers or {}, json.dumps(body).encode())


@pytest.mark.parametrize(("response", "expected", "code"), [
    (sage_error(422, "RecordInvalid", "is invalid", "ledger_account_id"), ConfigurationError,
     "RecordInvalid"),
    (sage_error(422, "RecordInvalid", "is invalid", "tax_rate_id"), ConfigurationError,
     "RecordInvalid"),
    (sage_error(422, "RecordInvalid", "is invalid", "contact_id"), ReferenceMissingError,
     "RecordInvalid"),
    (sage_error(422, "RecordInvalid", "can't be blank", "date"), PayloadRejectedError,
     "RecordInvalid"),
    (sage_error(404, "RecordNotFound", "No sales_invoice"), ReferenceMissingError,
     "RecordNotFound"),
    (sage_error(401, "AuthorizationFailure", "Token expired"), AuthExpiredError,
     "AuthorizationFailure"),
    (sage_error(401, "AuthorizationFailure", "No active subscription. (MSE)"),
     ConfigurationError, "AuthorizationFailure"),
    (sage_error(403, "AccessDenied", "no access"), ConfigurationError, "AccessDenied"),
    (sage_error(503, "ServiceUnavailable", "down"), TransientError, None),
    (PlatformResponse(502, {}, b"<html>bad gateway</html>"), TransientError, None),
])
def test_vendor_errors_are_classified(response: PlatformResponse, expected: type,
                                      code: str | None) -> None:
    error = SageAccounting().classify_error(response)
    assert type(error) is expected
    assert error is not None and error.vendor_code == code


def test_throttle_carries_retry_after_and_lock_date_is_explained() -> None:
    error = SageAccounting().classify_error(
        sage_error(429, "TooManyRequests", "slow down", headers={"Retry-After": "17"}))
    assert isinstance(error, RateLimitedError) and error.retry_after == 17
    locked = SageAccounting().classify_error(
        sage_error(422, "RecordInvalid", "is on or before the lock date (2025-03-31)", "date"))
    assert isinstance(locked, ConfigurationError) and "period closed" in locked.reason
    assert SageAccounting().classify_error(PlatformResponse(201, {}, b"{}")) is None


# --------------------------------------------------------------------------- the validator


def test_swagger_validator_catches_invented_fields_and_missing_required() -> None:
    swagger = load_swagger()
    good = PlatformRequest("POST", "/contacts", "t", json={"contact": {
        "name": "A", "contact_type_ids": ["CUSTOMER"], "idempotency_id": "a" * 32}})
    assert request_errors(swagger, good) == []
    invented = PlatformRequest("POST", "/contacts", "t", json={"contact": {
        "name": "A", "contact_type_ids": ["CUSTOMER"], "email": "a@b.c"}})
    assert any("email" in p for p in request_errors(swagger, invented))
    missing = PlatformRequest("POST", "/sales_invoices", "t", json={"sales_invoice": {
        "contact_id": "C", "invoice_lines": []}})
    assert any("'date' is a required property" in p for p in request_errors(swagger, missing))
    assert request_errors(swagger, PlatformRequest("POST", "/nowhere", "t")) != []
    bad_query = PlatformRequest("GET", "/contacts", "t", query={"reference": "x"})
    assert any("reference" in p for p in request_errors(swagger, bad_query))
