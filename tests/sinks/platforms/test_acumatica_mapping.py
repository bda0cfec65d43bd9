"""Acumatica: pure mapping (rounding, truncation, keys, taxes), error classification from
Acumatica-shaped bodies, shared value-wrapping helpers and the OpenAPI validator."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from schemas.examples import sample_credit_note, sample_customer, sample_invoice, sample_payment
from schemas.models import DocumentLine, InvoiceStatus, LineKind
from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    TransientError,
)
from sinks.platforms.acumatica import Acumatica
from sinks.platforms.acumatica import mapping as m
from sinks.platforms.acumatica.platform import MAX_NAME_LENGTHS, _limits
from sinks.transport.session_rest import (
    await_operation,
    field_errors,
    session_cookie,
    unwrap_values,
    wrap_values,
)
from tests.sinks.platforms.acumatica_support import load_openapi, request_errors, tenant_config

D = Decimal
MAPPING = tenant_config().mapping
TAXES = m.Taxes("TAXABLE", "EXEMPT")
LIMITS = _limits()


def test_line_amount_is_half_up_per_line_and_tax_comes_from_the_crm() -> None:
    lines = (DocumentLine(line_id="a", kind=LineKind.LABOR, description="x", quantity=D("3"),
                          unit_price=D("0.335"), amount=D("1.01")),
             *sample_invoice().lines)
    invoice = sample_invoice(lines=lines)
    body = m.document_body(invoice, "CC1", MAPPING, TAXES, exempt=False, limits=LIMITS)
    assert body["Details"][0]["Amount"] == 1.01  # 1.005 -> 1.01, half-up per line
    assert body["Details"][0]["UnitPrice"] == 0.335
    assert body["TaxDetails"] == [{"TaxID": "AUSTINTX", "TaxRate": 8.25,
                                   "TaxableAmount": 89.99, "TaxAmount": 7.42}]
    assert [d["TaxCategory"] for d in body["Details"]] == ["EXEMPT", "EXEMPT", "TAXABLE",
                                                           "EXEMPT"]
    assert body["Type"] == "Invoice" and body["Hold"] is False
    assert body["CustomerOrder"] == "inv1" and body["Description"] == "INV-INV1"


def test_exempt_customer_sends_no_tax_and_draft_is_on_hold() -> None:
    body = m.document_body(sample_invoice(status=InvoiceStatus.DRAFT), "CC1", MAPPING, TAXES,
                           exempt=True, limits=LIMITS)
    assert body["TaxDetails"] == [] and body["Hold"] is True
    assert {d["TaxCategory"] for d in body["Details"]} == {"EXEMPT"}


def test_credit_memo_body_and_application() -> None:
    body = m.document_body(sample_credit_note(), "CC1", MAPPING, TAXES, exempt=False,
                           limits=LIMITS)
    assert body["Type"] == "Credit Memo" and body["DueDate"] is None
    application = m.credit_application_body("CM000001", "CC1", [("AR000001", D("97.41"))])
    assert application["Type"] == "Credit Memo" and application["ReferenceNbr"] == "CM000001"
    assert application["DocumentsToApply"][0] == {"DocType": "Invoice",
                                                  "ReferenceNbr": "AR000001",
                                                  "AmountPaid": 97.41}


def test_customer_key_is_upper_case_and_truncated() -> None:
    assert m.customer_key("c1", "C", LIMITS) == "CC1"
    key = m.customer_key("customer-with-long-id", "C", LIMITS)
    assert key == "CCUSTOMER-" and len(key) == MAX_NAME_LENGTHS["customer.id"]
    body = m.customer_body(sample_customer(display_name="N" * 400, company_name=None), key,
                           None, LIMITS)
    assert len(body["CustomerName"]) == MAX_NAME_LENGTHS["customer.name"]
    assert body["Status"] == "Active"


def test_payment_body_applications_and_fee_charge() -> None:
    payment = sample_payment(amount=D("100.004"))
    body = m.payment_body(payment, "CC1", "10250", "CREDITCARD",
                          [("Invoice", "AR000001", D("100.00"))], limits=LIMITS,
                          fee_entry_type="BANKFEE")
    assert body["PaymentAmount"] == 100.0 and body["ExternalRef"] == "pay1"
    assert body["Charges"] == [{"EntryTypeID": "BANKFEE", "Amount": 3.2}]


def test_value_wrapping_round_trip_and_field_errors() -> None:
    wrapped = wrap_values({"Type": "Invoice", "Hold": False, "Skip": None,
                           "Details": [{"Qty": 1.5}], "MainContact": {"Email": "a@b.c"}})
    assert wrapped == {"Type": {"value": "Invoice"}, "Hold": {"value": False},
                       "Details": [{"Qty": {"value": 1.5}}],
                       "MainContact": {"Email": {"value": "a@b.c"}}}
    assert unwrap_values({"id": "g", **wrapped})["Details"] == [{"Qty": 1.5}]
    entity = {"Date": {"value": "2025-03-01", "error": "closed"},
              "Details": [{"Account": {"value": "1", "error": "missing"}}]}
    assert field_errors(entity) == {"Date": "closed", "Details[0].Account": "missing"}


def test_await_operation_polls_until_done_and_gives_up() -> None:
    start = PlatformRequest("POST", "/Invoice/ReleaseInvoice", "release")
    flow = await_operation(start, lambda loc: PlatformRequest("GET", loc, "status"),
                           max_polls=2)
    assert next(flow) is start
    accepted = PlatformResponse(202, {"Location": "/op/1"})
    assert flow.send(accepted).path == "/op/1"
    assert flow.send(accepted).path == "/op/1"
    with pytest.raises(TransientError, match="still running"):
        flow.send(accepted)
    done = await_operation(start, lambda loc: PlatformRequest("GET", loc, "status"))
    next(done)
    with pytest.raises(StopIteration) as stop:
        done.send(PlatformResponse(204))
    assert stop.value.value.status == 204


def test_session_cookie_parses_set_cookie() -> None:
    response = PlatformResponse(204, {"Set-Cookie": ".ASPXAUTH=abc; path=/; HttpOnly, "
                                                    "ASP.NET_SessionId=def; path=/"})
    assert session_cookie(response, ".ASPXAUTH") == "abc"
    assert session_cookie(response, "ASP.NET_SessionId") == "def"
    with pytest.raises(ValueError):
        session_cookie(response, "UserBranch")


# --------------------------------------------------------------------------- errors


def http_error(status: int, message: str, exception: str | None = None,
               kind: str = "PX.Data.PXException", headers: dict[str, str] | None = None
               ) -> PlatformResponse:
    body: dict[str, object] = {"message": message}
    if exception is not None:
        body.update(exceptionMessage=exception, exceptionType=kind)
    return PlatformResponse(status, headers or {}, json.dumps(body).encode())


def entity_error(**errors: str) -> PlatformResponse:
    body: dict[str, object] = {"id": "x", "error": "; ".join(errors.values())}
    for name, message in errors.items():
        if name.startswith("Details_"):
            body["Details"] = [{name.removeprefix("Details_"): {"value": "?", "error": message}}]
        else:
            body[name] = {"value": "?", "error": message}
    return PlatformResponse(422, {}, json.dumps(body).encode())


@pytest.mark.parametrize(("response", "expected"), [
    (http_error(401, "You are not logged in."), AuthExpiredError),
    (http_error(429, "API Login Limit"), RateLimitedError),
    (http_error(500, "An error has occurred.", "API Login Limit"), RateLimitedError),
    (http_error(500, "An error has occurred.", "The document is released.",
                "PX.Data.PXException"), PayloadRejectedError),
    (http_error(500, "An error has occurred.", "Timeout expired", "System.TimeoutException"),
     TransientError),
    (http_error(503, "Service Unavailable"), TransientError),
    (http_error(404, "No entity satisfies the condition."), ReferenceMissingError),
    (entity_error(Details_Account="Account '1' cannot be found in the system."),
     ConfigurationError),
    (entity_error(CashAccount="Cash Account 'X' cannot be found."), ConfigurationError),
    (entity_error(CustomerID="Customer 'CC9' cannot be found in the system."),
     ReferenceMissingError),
    (entity_error(Description="too long"), PayloadRejectedError),
])
def test_vendor_errors_are_classified(response: PlatformResponse, expected: type) -> None:
    assert type(Acumatica().classify_error(response)) is expected


def test_closed_period_and_retry_after() -> None:
    closed = Acumatica().classify_error(entity_error(Date="The 032025 financial period is "
                                                          "closed."))
    assert isinstance(closed, ConfigurationError) and "reopen" in closed.reason
    limited = Acumatica().classify_error(http_error(429, "limit", headers={"Retry-After": "7"}))
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 7
    assert Acumatica().classify_error(PlatformResponse(204)) is None


# --------------------------------------------------------------------------- validator


def test_openapi_validator_catches_invented_fields_and_bad_types() -> None:
    spec = load_openapi()
    good = PlatformRequest("PUT", "/Invoice", "t", json=wrap_values({"Type": "Invoice"}))
    assert request_errors(spec, good) == []
    invented = PlatformRequest("PUT", "/Invoice", "t", json=wrap_values({"Reference": "x"}))
    assert any("Reference: no such field" in p for p in request_errors(spec, invented))
    bad_type = PlatformRequest("PUT", "/Invoice", "t",
                               json={"Details": [{"Qty": {"value": "one"}}]})
    assert any("expected number" in p for p in request_errors(spec, bad_type))
    unwrapped = PlatformRequest("PUT", "/Customer", "t", json={"CustomerID": "C1"})
    assert any("expected an object" in p for p in request_errors(spec, unwrapped))
    query = PlatformRequest("GET", "/Invoice", "t", query={"search": "x"})
    assert request_errors(spec, query) != []
    assert request_errors(spec, PlatformRequest("GET", "/Invoice/Invoice/AR1", "t")) == []
