"""Business Central: pure mapping (rounding, truncation, lines, taxes), unsupported
events, OData helpers and error classification from BC-shaped bodies."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from schemas import examples as ex
from schemas.models import Allocation, DocumentLine, LineKind
from sinks.core.contract import PlatformResponse, SinkContext
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    TransientError,
    UnsupportedEventError,
)
from sinks.core.mapping import TenantConfig, TenantMapping
from sinks.platforms.business_central import BusinessCentral, BusinessCentralSettings
from sinks.platforms.business_central import mapping as m
from sinks.transport.odata import (
    BatchPart,
    batch_request,
    entity_path,
    filter_eq,
    odata_error,
    parse_batch,
    quote,
)

COMPANY = "5d1e2f3a-0000-4000-8000-00000000c0a1"
D = Decimal


def mapping(**overrides: Any) -> TenantMapping:
    data: dict[str, Any] = {
        "income_accounts": {"labor": "40100", "parts": "40200", "fees": "40300",
                            "discounts": "40900"},
        "tax_codes": {ex.SAMPLE_TAX_CODE: "TAXABLE"},
        "exempt_tax_code": "NONTAXABLE",
        "deposit_accounts": {"card": "j1"},
    }
    data.update(overrides)
    return TenantMapping.model_validate(data)


def context(**mapping_overrides: Any) -> SinkContext:
    tenant = TenantConfig.model_validate({
        "tenant_id": "t1", "platform": "business-central",
        "settings": {"aad_tenant_id": "contoso", "company_id": COMPANY},
        "mapping": mapping(**mapping_overrides).model_dump(),
    })
    return SinkContext(tenant_id="t1", event_id="e1", tenant=tenant)


def line(kind: LineKind, qty: str, price: str, amount: str, tax: str | None = None,
         description: str = "x") -> DocumentLine:
    return DocumentLine(line_id="l", kind=kind, description=description, quantity=D(qty),
                        unit_price=D(price), tax_code=tax, amount=D(amount))


def response(status: int, code: str, message: str, **headers: str) -> PlatformResponse:
    return PlatformResponse.from_json(status, {"error": {"code": code, "message": message}},
                                      headers)


# --------------------------------------------------------------------------- rounding


@pytest.mark.parametrize(("qty", "price", "amount"), [
    ("1.5", "95.00", "142.50"),
    ("3", "0.335", "1.01"),        # 1.005 → 1.01 half-up (half-even would give 1.00)
    ("0.333333", "3", "1.00"),     # qty to 5 decimals first: 0.33333 x 3 = 0.99999 → 1.00
    ("2", "19.999995", "40.00"),   # unit price to 5 decimals: 20.00000 x 2
    ("1", "0.125", "0.13"),
])
def test_bc_line_amount_rounds_like_bc(qty: str, price: str, amount: str) -> None:
    assert m.bc_line_amount(D(qty), D(price)) == D(amount)


def test_crm_precision_survives_bc_precision() -> None:
    """CRM quantities and prices carry at most 4 decimals, BC keeps 5: nothing is lost."""
    body = m.line_body(line(LineKind.PART, "1.1235", "2.0001", "2.25"), mapping(),
                       exempt=False)
    assert body["quantity"] == 1.1235 and body["unitPrice"] == 2.0001
    assert m.half_up(D("2.000005"), m.UNIT_PRICE_STEP) == D("2.00001")


def test_discount_becomes_negative_quantity_at_positive_price() -> None:
    body = m.line_body(line(LineKind.DISCOUNT, "1", "-15.00", "-15.00"), mapping(),
                       exempt=False)
    assert body["quantity"] == -1 and body["unitPrice"] == 15.0
    assert body["lineType"] == "Account" and body["lineObjectNumber"] == "40900"


def test_line_kinds_map_to_income_accounts_or_items() -> None:
    fees = m.line_body(line(LineKind.DIAGNOSTIC_FEE, "1", "50", "50"), mapping(),
                       exempt=False)
    assert (fees["lineType"], fees["lineObjectNumber"]) == ("Account", "40300")
    item = m.line_body(line(LineKind.PART, "1", "5", "5"), mapping(items={"parts": "1000"}),
                       exempt=False)
    assert (item["lineType"], item["lineObjectNumber"]) == ("Item", "1000")


def test_tax_codes_come_from_the_tenant_mapping() -> None:
    taxable = line(LineKind.PART, "1", "5", "5", tax=ex.SAMPLE_TAX_CODE)
    assert m.line_body(taxable, mapping(), exempt=False)["taxCode"] == "TAXABLE"
    assert m.line_body(taxable, mapping(), exempt=True)["taxCode"] == "NONTAXABLE"
    untaxed = line(LineKind.LABOR, "1", "5", "5")
    assert m.line_body(untaxed, mapping(), exempt=False)["taxCode"] == "NONTAXABLE"
    with pytest.raises(ConfigurationError, match="tax_codes"):
        m.line_body(line(LineKind.PART, "1", "5", "5", tax="ZZ"), mapping(), exempt=False)


def test_unmapped_income_account_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="income_accounts"):
        m.line_body(line(LineKind.LABOR, "1", "5", "5"), mapping(income_accounts={}),
                    exempt=False)


def test_document_lines_are_numbered_like_bc() -> None:
    lines = m.document_lines(ex.sample_lines(), mapping(), exempt=False)
    assert [x["sequence"] for x in lines] == [10000, 20000, 30000]


# --------------------------------------------------------------------------- truncation


def test_customer_fields_are_cut_to_bc_lengths() -> None:
    customer = ex.sample_customer(
        display_name="N" * 150, email="a" * 90 + "@x.com", phone="5" * 40,
        billing_address=ex.sample_address(city="C" * 40, line1="L" * 120))
    body = m.customer_body(customer, local_currency="USD")
    assert len(body["displayName"]) == 100 and len(body["email"]) == 80
    assert len(body["city"]) == 30 and len(body["addressLine1"]) == 100
    assert len(body["phoneNumber"]) == 30
    assert "currencyCode" not in body  # local currency stays blank in BC
    assert body["blocked"] == m.BLOCKED_NONE and body["taxLiable"] is True


def test_customer_number_fits_code20_and_is_stable() -> None:
    assert m.customer_number("c1") == "C1"
    long_id = "customer-" + "9" * 40
    number = m.customer_number(long_id)
    assert len(number) == 20 and number == m.customer_number(long_id)
    assert number != m.customer_number(long_id + "0")


def test_line_description_cut_to_100() -> None:
    body = m.line_body(line(LineKind.LABOR, "1", "5", "5", description="d" * 250), mapping(),
                       exempt=False)
    assert len(body["description"]) == 100


def test_overlong_document_number_is_shortened_stably_not_cut() -> None:
    number = "INV-2025-03-OAKLAND-SHOP-000000012345"
    short = m.external_document_number(number)
    assert len(short) == 35 and short.startswith(number[:26] + "~")
    assert short == m.external_document_number(number)
    assert short != m.external_document_number(number[:-1] + "6")
    assert m.external_document_number("INV-1") == "INV-1"
    invoice = ex.sample_invoice(number=number)
    body = m.invoice_body(invoice, "cid", mapping(), exempt=False, local_currency="USD")
    assert body["externalDocumentNumber"] == short


def test_crm_amount_wins_when_qty_times_price_rounds_differently() -> None:
    odd = line(LineKind.LABOR, "0.333", "95.00", "31.60", description="Labor")
    body = m.line_body(odd, mapping(), exempt=False)
    assert (body["quantity"], body["unitPrice"]) == (1, 31.6)
    assert body["description"] == "Labor (0.333 x 95)"
    exact = m.line_body(line(LineKind.LABOR, "1.5", "95.00", "142.50"), mapping(),
                        exempt=False)
    assert (exact["quantity"], exact["unitPrice"]) == (1.5, 95.0)


def test_foreign_currency_invoice_carries_currency_code() -> None:
    invoice = ex.sample_invoice(currency="CAD")
    body = m.invoice_body(invoice, "cid", mapping(), exempt=False, local_currency="USD")
    assert body["currencyCode"] == "CAD" and body["externalDocumentNumber"] == invoice.number
    assert "currencyCode" not in m.invoice_body(ex.sample_invoice(), "cid", mapping(),
                                                exempt=False, local_currency="USD")


def test_payment_lines_one_per_allocation_plus_remainder() -> None:
    payment = ex.sample_payment(amount=D("150.00"), allocations=(
        Allocation(invoice_id="inv1", amount=D("100.00")),
        Allocation(invoice_id="inv2", amount=D("0")),
        Allocation(invoice_id="inv3", amount=D("30.005"))))
    lines = m.payment_lines(payment, "cid", {"inv1": "A", "inv2": "B", "inv3": "C"})
    assert [(x["amount"], x.get("appliesToInvoiceId")) for x in lines] == [
        (100.0, "A"), (30.01, "C"), (19.99, None)]
    assert {x["externalDocumentNumber"] for x in lines} == {payment.number}


# --------------------------------------------------------------------------- unsupported


def plan(event: Any, **mapping_overrides: Any) -> Any:
    entry = ex.sample_ledger_entry(event)
    return BusinessCentral().plan(entry, context(**mapping_overrides))


def test_refund_is_unsupported() -> None:
    with pytest.raises(UnsupportedEventError, match="Refund"):
        next(plan(ex.sample_refund_event()))


def test_tip_is_unsupported() -> None:
    payment = ex.sample_payment(amount=D("300.00"), tip=D("9.08"), allocations=(
        Allocation(invoice_id="inv1", amount=D("290.92")),))
    with pytest.raises(UnsupportedEventError, match="tip"):
        next(plan(ex.sample_payment_event(payment=payment)))


def test_tax_rate_is_unsupported() -> None:
    with pytest.raises(UnsupportedEventError, match="tax areas"):
        plan(ex.sample_tax_rate_event())


def test_credit_note_over_several_invoices_is_unsupported() -> None:
    note = ex.sample_credit_note(allocations=(Allocation(invoice_id="a", amount=D(1)),
                                              Allocation(invoice_id="b", amount=D(1))))
    event = ex.sample_credit_note_event().model_copy(update={"payload": note})
    with pytest.raises(UnsupportedEventError, match="one invoice"):
        next(plan(event))


def test_payment_method_without_journal_is_configuration_error() -> None:
    event = ex.sample_payment_event(payment=ex.sample_payment(method="CASH"))
    with pytest.raises(ConfigurationError, match="deposit_accounts"):
        next(plan(event))


def test_settings_validation_names_the_field() -> None:
    tenant = TenantConfig(tenant_id="t1", platform="business-central",
                          settings={"aad_tenant_id": "x", "company_id": "nope"})
    with pytest.raises(ConfigurationError, match="company_id"):
        tenant.platform_settings(BusinessCentralSettings)
    ok = BusinessCentralSettings(aad_tenant_id="contoso", company_id=COMPANY)
    assert ok.service_root == ("https://api.businesscentral.dynamics.com/v2.0/contoso/"
                               "production/api/v2.0")


def test_spec_declares_documented_limits() -> None:
    spec = BusinessCentral.spec
    assert spec.rate_limit.windows[0].limit == 6000 and spec.rate_limit.windows[0].seconds == 300
    assert spec.max_batch_size == 100 and not spec.supports_idempotency_key
    assert spec.truncate("customer.displayName", "x" * 200) == "x" * 100


# --------------------------------------------------------------------------- OData helpers


def test_odata_literals_and_keys() -> None:
    assert quote("O'Brien") == "'O''Brien'"
    assert filter_eq("externalDocumentNumber", "INV-1") == "externalDocumentNumber eq 'INV-1'"
    assert entity_path("customers", COMPANY) == f"customers({COMPANY})"
    assert entity_path("items", "A-1") == "items('A-1')"


def test_batch_round_trip() -> None:
    request = batch_request([BatchPart("a", "POST", "companies(x)/y", body={"k": 1}),
                             BatchPart("b", "DELETE", "companies(x)/y(1)",
                                       headers={"If-Match": "*"})],
                            purpose="p", atomic=True)
    parts = request.json["requests"]
    assert {p["atomicityGroup"] for p in parts} == {"g1"}
    assert parts[0]["headers"]["Content-Type"] == "application/json"
    with pytest.raises(ValueError, match="at most 100"):
        batch_request([BatchPart(str(i), "GET", "x") for i in range(101)], purpose="p",
                      atomic=False)
    reply = PlatformResponse.from_json(200, {"responses": [
        {"id": "a", "status": 201, "body": {"id": "1"}}, {"id": "b", "status": 204}]})
    parsed = parse_batch(reply)
    assert parsed["a"].json() == {"id": "1"} and parsed["b"].status == 204


def test_odata_error_reads_v4_and_v2_shapes() -> None:
    v4 = odata_error(response(400, "BadRequest", "bad"))
    assert v4 is not None and (v4.code, v4.message) == ("BadRequest", "bad")
    v2 = odata_error(PlatformResponse(400, {}, json.dumps(
        {"error": {"code": "X", "message": {"lang": "en", "value": "v"}}}).encode()))
    assert v2 is not None and v2.message == "v"
    assert odata_error(PlatformResponse(500, {}, b"<html>")) is None


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("resp", "expected", "code"), [
    (response(429, "Application_TooManyRequests", "Too many requests", **{"Retry-After": "7"}),
     RateLimitedError, "Application_TooManyRequests"),
    (response(401, "Authentication_InvalidCredentials", "The access token has expired."),
     AuthExpiredError, None),
    (response(404, "Internal_CompanyNotFound", "Cannot find company"), ConfigurationError,
     "Internal_CompanyNotFound"),
    (response(412, "Request_EntityChanged", "modified since it was last read"),
     TransientError, "Request_EntityChanged"),
    (response(503, "Internal_ServiceUnavailable", "unavailable"), TransientError,
     "Internal_ServiceUnavailable"),
    (response(400, "Internal_RecordNotFound",
              "The Customer does not exist. Identification fields and values: Id='x'"),
     ReferenceMissingError, "Internal_RecordNotFound"),
    (response(400, "Internal_RecordNotFound",
              "The G/L Account does not exist. Identification fields and values: No.='4'"),
     ConfigurationError, "Internal_RecordNotFound"),
    (response(400, "Application_DialogException",
              "Posting Date is not within your range of allowed posting dates."),
     ConfigurationError, "Application_DialogException"),
    (response(400, "Application_StringExceededLength", "The length of the string is 40"),
     PayloadRejectedError, "Application_StringExceededLength"),
    (PlatformResponse(502, {}, b"<html>Bad gateway</html>"), TransientError, None),
    (PlatformResponse(400, {}, b"not json"), PayloadRejectedError, None),
])
def test_classify_bc_errors(resp: PlatformResponse, expected: type, code: str | None) -> None:
    error = BusinessCentral().classify_error(resp)
    assert type(error) is expected
    assert error.vendor_code == code
    if isinstance(error, RateLimitedError):
        assert error.retry_after == 7


def test_closed_period_reason_names_the_setup() -> None:
    error = BusinessCentral().classify_error(response(
        400, "Application_DialogException",
        "Posting Date is not within your range of allowed posting dates."))
    assert error is not None and "Allow Posting From/To" in error.reason


def test_success_is_not_an_error() -> None:
    assert BusinessCentral().classify_error(PlatformResponse(204)) is None
