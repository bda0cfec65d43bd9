"""Sage Intacct: pure mapping (rounding, truncation, tax lines, schema order), the
shared XML API envelope/stamping/parsing, and error classification from real-shaped
gateway answers. Every function built here is validated against ``api.xsd``."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from schemas.examples import sample_credit_note, sample_customer, sample_invoice, sample_payment
from schemas.models import DocumentLine, LineKind, PaymentMethod
from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    TransientError,
    UnsupportedEventError,
)
from sinks.core.mapping import TenantConfig
from sinks.platforms.sage_intacct import SageIntacct
from sinks.platforms.sage_intacct import mapping as m
from sinks.platforms.sage_intacct.errors import flow_handled, intacct_error
from sinks.platforms.sage_intacct.spec import SPEC, SageIntacctSettings
from sinks.transport.xmlapi import (
    BodySessionAuth,
    envelope,
    parse,
    parse_response,
    serialize,
    stamp,
)
from tests.sinks.contract.harness_sage_intacct import MAPPING, XSD, intacct_schema

SETTINGS = SageIntacctSettings(sender_id="ledgerstream", company_id="ACME")
TENANT = TenantConfig(tenant_id="t1", platform="sage-intacct",
                      settings=SETTINGS.model_dump(), mapping=MAPPING)
needs_xsd = pytest.mark.skipif(not XSD.exists(),
                               reason="vendor spec /work/shared/specs/sage-intacct absent")


def valid(function: object) -> bytes:
    """The function wrapped in a request; asserts it is schema-valid."""
    body = serialize(envelope(function, sender_id="s", control_id="c1", unique=True))
    if XSD.exists():
        intacct_schema().validate(body.decode())
    return body


def texts(body: bytes, path: str) -> list[str]:
    root = parse(body)
    assert root is not None
    return [(n.text or "") for n in root.iterfind(path)]


# ---------------------------------------------------------------- mapping

def test_amounts_round_half_up_to_cents() -> None:
    assert m.amount(Decimal("31.635")) == "31.64"
    assert m.amount(Decimal("-25")) == "-25.00"
    assert m.amount(Decimal("1E+2")) == "100.00"


@needs_xsd
def test_invoice_lines_are_crm_amounts_plus_tax_lines() -> None:
    odd = DocumentLine(line_id="l1", kind=LineKind.LABOR, description="Labor 0.333 h",
                       quantity=Decimal("0.333"), unit_price=Decimal("95.00"),
                       amount=Decimal("31.60"))
    invoice = sample_invoice().model_copy(update={"lines": (odd,)})
    body = valid(m.invoice_function(invoice, False, TENANT.mapping, SETTINGS))
    prefix = "operation/content/function/create_invoice/invoiceitems/lineitem"
    assert texts(body, f"{prefix}/amount") == ["31.60", "7.42"]  # CRM amount, not 0.333*95
    assert texts(body, f"{prefix}/glaccountno") == ["4000", "2310"]
    assert "0.333 x 95.00" in texts(body, f"{prefix}/memo")[0]


@needs_xsd
def test_exempt_customer_gets_no_tax_lines_and_discount_is_negative() -> None:
    invoice = sample_invoice()
    discount = DocumentLine(line_id="d", kind=LineKind.DISCOUNT, description="Loyalty",
                            quantity=Decimal(1), unit_price=Decimal("-25"),
                            amount=Decimal("-25"))
    invoice = invoice.model_copy(update={"lines": (*invoice.lines, discount)})
    body = valid(m.invoice_function(invoice, True, TENANT.mapping, SETTINGS))
    amounts = texts(body, "operation/content/function/create_invoice/invoiceitems/lineitem/amount")
    assert amounts == ["142.50", "89.99", "49.00", "-25.00"]


def test_negative_non_discount_line_is_rejected() -> None:
    # the CRM model refuses this too; the mapping does not rely on it
    bad = DocumentLine.model_construct(line_id="x", kind=LineKind.PART, description="?",
                                       quantity=Decimal(1), unit_price=Decimal("-5"),
                                       amount=Decimal("-5"), tax_code=None)
    invoice = sample_invoice().model_copy(update={"lines": (bad,)})
    with pytest.raises(PayloadRejectedError, match="DISCOUNT"):
        m.invoice_function(invoice, False, TENANT.mapping, SETTINGS)


@needs_xsd
def test_overlong_names_are_truncated_to_documented_limits() -> None:
    customer = sample_customer("c" * 40, display_name="N" * 600, company_name="Y" * 300)
    body = valid(m.customer_function(customer, update=False))
    base = "operation/content/function/create_customer"
    assert len(texts(body, f"{base}/customerid")[0]) == SPEC.max_name_lengths["customer.id"]
    assert len(texts(body, f"{base}/name")[0]) == 100
    invoice = sample_invoice(number="INV-" + "9" * 80)
    body = valid(m.invoice_function(invoice, False, TENANT.mapping, SETTINGS))
    assert len(texts(body, "operation/content/function/create_invoice/invoiceno")[0]) == 45


@needs_xsd
def test_foreign_currency_sends_exchange_rate_type() -> None:
    invoice = sample_invoice().model_copy(update={"currency": "EUR"})
    body = valid(m.invoice_function(invoice, False, TENANT.mapping, SETTINGS))
    base = "operation/content/function/create_invoice"
    assert texts(body, f"{base}/currency") == ["EUR"]
    assert texts(body, f"{base}/exchratetype") == ["Intacct Daily Rate"]


@needs_xsd
def test_payment_subtracts_tip_and_lists_applications() -> None:
    payment = sample_payment().model_copy(update={"amount": Decimal("120"),
                                                  "tip": Decimal("20"),
                                                  "method": PaymentMethod.CHECK})
    body = valid(m.payment_function(payment, {"7": Decimal("60.005")}, TENANT.mapping,
                                    SETTINGS))
    base = "operation/content/function/create_arpayment"
    assert texts(body, f"{base}/paymentamount") == ["100.00"]
    assert texts(body, f"{base}/arpaymentitem/amount") == ["60.01"]
    assert texts(body, f"{base}/paymentmethod") == ["Printed Check"]


@needs_xsd
def test_credit_adjustment_lines_are_negative_and_update_and_reverse_validate() -> None:
    note = sample_credit_note()
    body = valid(m.adjustment_function(note, False, "INV-1", TENANT.mapping, SETTINGS))
    amounts = texts(body, "operation/content/function/create_aradjustment/aradjustmentitems"
                          "/lineitem/amount")
    assert all(a.startswith("-") for a in amounts)
    valid(m.update_invoice_function("12", sample_invoice(), False, 5, TENANT.mapping))
    valid(m.reverse_function("12", sample_invoice().issue_date, "voided"))
    valid(m.query_function("ARINVOICE", f"RECORDID = {m.quote(chr(39) + 'x')}"))
    assert m.quote("O'Brien") == "'O''Brien'"


def test_schema_catches_wrong_element_order() -> None:
    if not XSD.exists():
        pytest.skip("vendor spec absent")
    import xmlschema

    function = m.invoice_function(sample_invoice(), False, TENANT.mapping, SETTINGS)
    function.insert(0, function[-1])  # invoiceitems before customerid
    body = serialize(envelope(function, sender_id="s", control_id="c", unique=True))
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        intacct_schema().validate(body.decode())


# ---------------------------------------------------------------- transport.xmlapi

def test_envelope_has_empty_placeholders_and_stamp_fills_them() -> None:
    body = serialize(envelope(m.query_function("CUSTOMER", "1 = 1"), sender_id="s",
                              control_id="k", unique=False))
    assert texts(body, "control/password") == [""]
    assert texts(body, "operation/authentication/sessionid") == [""]
    stamped = stamp(body, sender_password="pw", session_id="sess")
    assert texts(stamped, "control/password") == ["pw"]
    assert texts(stamped, "operation/authentication/sessionid") == ["sess"]
    assert texts(stamped, "control/uniqueid") == ["false"]


def test_body_session_auth_stamps_the_outgoing_request() -> None:
    auth = BodySessionAuth(
        login=lambda: PlatformRequest("POST", "/x", "login"),
        parse_session=lambda r: "S-1", sender_password=SecretStr("pw"))
    auth.refresh(lambda r: PlatformResponse(200, {}, ANSWER_OK), stale_generation=0)
    body = serialize(envelope(m.query_function("CUSTOMER", "1 = 1"), sender_id="s",
                              control_id="k", unique=False))
    request = httpx.Request("POST", "http://h/x", content=body)
    assert auth.apply(request) == 1
    assert texts(request.read(), "operation/authentication/sessionid") == ["S-1"]
    assert request.headers["Content-Length"] == str(len(request.read()))


def test_failed_login_is_a_configuration_error() -> None:
    auth = BodySessionAuth(login=lambda: PlatformRequest("POST", "/x", "login"),
                           parse_session=lambda r: "S", sender_password=SecretStr("pw"))
    with pytest.raises(ConfigurationError, match="Sign-in"):
        auth.refresh(lambda r: PlatformResponse(200, {}, answer(
            auth="<authentication><status>failure</status></authentication>"
                 + error("XL03000006", "Sign-in information is incorrect"))),
            stale_generation=0)


# ---------------------------------------------------------------- error classification

def error(code: str, text: str) -> str:
    return (f"<errormessage><error><errorno>{code}</errorno><description></description>"
            f"<description2>{text}</description2><correction></correction></error>"
            "</errormessage>")


def answer(*, control: str = "success", control_error: str = "",
           auth: str = "<authentication><status>success</status></authentication>",
           result: str = "") -> bytes:
    ops = "" if control == "failure" else f"<operation>{auth}{result}</operation>"
    return (f"<?xml version='1.0' encoding='UTF-8'?><response><control><status>{control}"
            "</status><senderid>ledgerstream</senderid><controlid>k</controlid>"
            f"<uniqueid>true</uniqueid><dtdversion>3.0</dtdversion></control>{control_error}"
            f"{ops}</response>").encode()


def result(status: str, body: str = "") -> str:
    return (f"<result><status>{status}</status><function>create_invoice</function>"
            f"<controlid>k</controlid>{body}</result>")


ANSWER_OK = answer(result=result("success", "<key>42</key>"))


def classify(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> object:
    return SageIntacct().classify_error(PlatformResponse(status, headers or {}, body))


def test_success_is_not_an_error_and_key_is_parsed() -> None:
    assert classify(ANSWER_OK) is None
    parsed = parse_response(ANSWER_OK)
    assert parsed is not None and parsed.result().key == "42"


def test_expired_session_inside_http_200_is_auth_expired() -> None:
    body = answer(auth="<authentication><status>failure</status></authentication>"
                  + error("XL03000006", "Invalid session"))
    assert isinstance(classify(body), AuthExpiredError)


def test_duplicate_controlid_is_left_to_the_flow() -> None:
    body = answer(control="failure", control_error=error(
        "XL03000009", "A request with control id k was already processed"))
    parsed = parse_response(body)
    assert parsed is not None and flow_handled(parsed) == "XL03000009"
    assert classify(body) is None
    assert isinstance(intacct_error(PlatformResponse(200, {}, body), handled=False),
                      PayloadRejectedError)


@pytest.mark.parametrize(("code", "text", "cls"), [
    ("BL34000061", "The period for 2025-12-01 is closed", ConfigurationError),
    ("BL03000018", "Invalid customer c9", ReferenceMissingError),
    ("PL04000055", "Amount exceeds the amount due", PayloadRejectedError),
    ("BL99999999", "Something unheard of", PayloadRejectedError),
    ("XL03000000", "internal", TransientError),
    ("BL03002147", "Invoice has payments applied", UnsupportedEventError),
    ("", "The accounting period is closed for posting", ConfigurationError),
])
def test_function_failures_map_onto_the_taxonomy(code: str, text: str, cls: type) -> None:
    body = answer(result=result("failure", error(code, text)))
    assert type(classify(body)) is cls


def test_throttle_and_html_errors() -> None:
    throttled = answer(control="failure", control_error=error("XL03000130", "Too many"))
    found = classify(throttled, 429, {"retry-after": "7"})
    assert isinstance(found, RateLimitedError) and found.retry_after == 7
    assert isinstance(classify(b"<html>Service unavailable</html>", 503), TransientError)
    assert isinstance(classify(b"", 502), TransientError)
