"""Reckon One: pure mapping (rounding, tax spreading, truncation, markers), vendor
error bodies → taxonomy, and the composite OAuth2 + subscription-key authenticator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from schemas.examples import (
    SAMPLE_TAX_CODE,
    sample_credit_note,
    sample_customer,
    sample_invoice,
    sample_lines,
    sample_payment,
)
from schemas.models import DocumentLine, LineKind, PaymentMethod, TaxLine
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
from sinks.platforms.reckon_one import SPEC, ReckonOneSettings
from sinks.platforms.reckon_one import mapping as m
from sinks.platforms.reckon_one.errors import reckon_error
from sinks.sandbox.reckon_one import error_body
from sinks.transport.auth import ApiKeyAuth, InMemoryTokenStore, OAuth2Auth, TokenSet
from sinks.transport.composite_auth import (
    APIM_SUBSCRIPTION_HEADER,
    CompositeAuth,
    StaticHeaderAuth,
    oauth2_with_subscription_key,
)
from tests.sinks.contract.harness_reckon_one import MAPPING

D = Decimal
BOOK = "5af6572c-9771-4b86-995d-3374d3bc683c"
SETTINGS = ReckonOneSettings(book_id=BOOK, book_currency="USD")
TENANT = TenantConfig.model_validate({"tenant_id": "t1", "platform": "reckon-one",
                                      "settings": {"book_id": BOOK}, "mapping": MAPPING})
MAP = TENANT.mapping


def line(line_id: str, kind: LineKind, quantity: str, unit: str, amount: str,
         tax_code: str | None = SAMPLE_TAX_CODE) -> DocumentLine:
    return DocumentLine(line_id=line_id, kind=kind, description=f"line {line_id}",
                        quantity=D(quantity), unit_price=D(unit), amount=D(amount),
                        tax_code=tax_code)


# --------------------------------------------------------------------------- invoices


def test_invoice_sends_line_amounts_and_the_crm_tax_exactly() -> None:
    lines = (line("l1", LineKind.LABOR, "0.333", "95.00", "31.60"),
             line("l2", LineKind.PART, "3", "3.335", "10.01"),
             line("l3", LineKind.TRIP_FEE, "1", "49.00", "49.00", None))
    invoice = sample_invoice("inv1", "c1", lines=lines).model_copy(update={
        "tax_lines": (TaxLine(code=SAMPLE_TAX_CODE, name="Austin", rate=D("0.0825"),
                              taxable_amount=D("41.61"),
                              tax_amount=D("3.43")),),
        "total_tax": D("3.43"), "subtotal": D("90.61"), "total": D("94.04")})
    body = m.invoice_body(invoice, "cust", sample_customer("c1"), MAP, SETTINGS)
    items = body["lineItems"]
    # amounts, not quantity x rounded price: Reckon books exactly the CRM line amount
    assert [i["accountDetails"]["amount"] for i in items] == [31.6, 10.01, 49.0]
    assert items[0]["accountDetails"]["quantity"] == 0.333
    assert [i["accountDetails"]["ledgerAccount"] for i in items] == ["4-1000", "4-1100", "4-1200"]
    taxes = [D(str(i.get("taxAmount", 0))) for i in items]
    assert sum(taxes) == D("3.43") and taxes[2] == 0
    assert "taxRate" not in items[2]
    assert all("taxIsModified" not in i for i in items)  # read-only in the spec
    assert body["amountTaxStatus"] == "Exclusive"
    assert body["invoiceDate"] == f"{invoice.issue_date.isoformat()}T00:00:00Z"
    assert body["reference"] == invoice.number


def test_amounts_round_half_up_to_cents() -> None:
    assert m.amount(D("2.675")) == 2.68
    assert m.amount(D("-0.005")) == -0.01
    assert m.amount(D("10")) == 10.0


def test_discount_lines_become_invoice_discount_amount() -> None:
    lines = (*sample_lines(), DocumentLine(line_id="d", kind=LineKind.DISCOUNT,
                                           description="Loyalty", quantity=D(1),
                                           unit_price=D("-25.005"), amount=D("-25.005")))
    invoice = sample_invoice("inv1", "c1", lines=lines)
    body = m.invoice_body(invoice, "cust", None, MAP, SETTINGS)
    assert body["invoiceDiscountAmount"] == 25.01
    assert len(body["lineItems"]) == len(sample_lines())


def test_exempt_customer_is_non_taxed_without_tax_rates() -> None:
    customer = sample_customer("c9", tax_exempt=True, tax_exemption_number="X")
    body = m.invoice_body(sample_invoice("inv1", "c9"), "cust", customer, MAP, SETTINGS)
    assert body["amountTaxStatus"] == "NonTaxed"
    assert all("taxRate" not in i and "taxAmount" not in i for i in body["lineItems"])


def test_inclusive_prices_leave_tax_to_reckon() -> None:
    invoice = sample_invoice("inv1", "c1").model_copy(update={"prices_include_tax": True})
    body = m.invoice_body(invoice, "cust", None, MAP, SETTINGS)
    assert body["amountTaxStatus"] == "Inclusive"
    assert all("taxAmount" not in i for i in body["lineItems"])


def test_unmapped_tax_code_names_the_key() -> None:
    invoice = sample_invoice("inv1", "c1", lines=(line("l1", LineKind.LABOR, "1", "5", "5",
                                                       "TX-NOWHERE"),))
    with pytest.raises(ConfigurationError, match="TX-NOWHERE"):
        m.invoice_body(invoice, "cust", None, MAP, SETTINGS)


def test_foreign_currency_is_unsupported() -> None:
    invoice = sample_invoice("inv1", "c1").model_copy(update={"currency": "EUR"})
    with pytest.raises(UnsupportedEventError, match="one currency"):
        m.invoice_body(invoice, "cust", None, MAP, SETTINGS)


def test_long_reference_is_cut_to_the_assumed_limit() -> None:
    number = "INV-" + "9" * 80
    assert m.reference("invoice", number) == number[:50]
    assert len(m.reference("receipt", "R" * 300)) == 200


# --------------------------------------------------------------------------- customers


def test_customer_body_truncates_to_spec_lengths() -> None:
    customer = sample_customer("c-long", display_name="N" * 600, company_name="C" * 300,
                               email="e" * 120 + "@example.com")
    body = m.customer_body(customer)
    assert len(body["name"]) == 100 and len(body["organisationName"]) == 100
    assert len(body["electronicAddresses"][0]["address"]) == 100
    assert all(len(v) <= 80 for k, v in body["addresses"][0].items() if k != "type")
    assert body["notes"] == "crm:customer:c-long"
    assert body["entityTypes"] == {"isCustomer": True}


def test_disambiguated_name_fits() -> None:
    name = m.disambiguated_name(sample_customer("c2", display_name="A" * 200))
    assert len(name) == SPEC.max_name_lengths["customer.name"] and name.endswith(" (c2)")


def test_notes_keep_other_lines_and_drop_oldest_tombstones_when_full() -> None:
    notes = m.merge_notes("called on Monday", crm_id="c1")
    assert notes.splitlines() == ["crm:customer:c1", "called on Monday"]
    for i in range(40):
        notes = m.merge_notes(notes, extra=[m.tombstone("invoice", f"inv{i}", "x" * 36)])
    assert len(notes) <= 1000
    stones = m.tombstones(notes)
    assert "invoice:inv39" in stones and "invoice:inv0" not in stones
    assert notes.splitlines()[:2] == ["crm:customer:c1", "called on Monday"]
    assert m.merge_notes(notes, extra=[m.tombstone("invoice", "inv39", "x" * 36)]) == notes


# --------------------------------------------------------------------------- receipts, credits


def test_receipt_links_invoices_and_books_the_tip_as_income() -> None:
    payment = sample_payment("p1", "c1", invoice_id="inv1", amount=D("120.00")).model_copy(
        update={"tip": D("20.00"), "processor_fee": D("3.10"), "method": PaymentMethod.CARD})
    body = m.receipt_body(payment, "cust", {"INV-A": D("100.00"), "INV-B": D(0)}, MAP,
                          SETTINGS)
    assert body["totalAmount"] == 120.0
    assert body["transactionLinks"] == [{"transactionId": "INV-A", "transactionAmount": 100.0,
                                         "transactionType": "Invoice"}]
    assert body["ledgerAccount"] == "1-1200"  # card deposits
    tip = body["lineItems"][0]
    assert tip["accountDetails"] == {"ledgerAccount": "4-1400", "quantity": 1, "amount": 20.0}
    assert "processor fee 3.10 not booked" in body["notes"]


def test_credit_note_with_discount_is_rejected() -> None:
    lines = (*sample_lines(), DocumentLine(line_id="d", kind=LineKind.DISCOUNT, description="x",
                                           quantity=D(1), unit_price=D(-1), amount=D(-1)))
    note = sample_credit_note("cn1", "c1", invoice_id="inv1").model_copy(update={"lines": lines})
    with pytest.raises(PayloadRejectedError, match="discount"):
        m.credit_note_body(note, "cust", None, MAP, SETTINGS)


# --------------------------------------------------------------------------- errors


def test_validation_error_names_the_field() -> None:
    error = reckon_error(400, {}, error_body(400, "The request is invalid.", [
        {"location": "lineItems[0].accountDetails.amount", "message": "A number is required."}]))
    assert isinstance(error, PayloadRejectedError)
    assert "lineItems[0].accountDetails.amount: A number is required." in error.reason


def test_lock_off_date_pauses_the_tenant() -> None:
    error = reckon_error(400, {}, error_body(400, "Transactions dated on or before the lock-off "
                                                  "date 2025-12-31 cannot be created or amended."))
    assert isinstance(error, ConfigurationError) and error.action.value == "pause_tenant"


def test_unknown_ledger_account_is_configuration() -> None:
    error = reckon_error(400, {}, error_body(400, "The ledger account 9-9 does not exist or is "
                                                  "not active."))
    assert isinstance(error, ConfigurationError)


def test_reckon_401_403_404_and_5xx() -> None:
    assert isinstance(reckon_error(401, {}, error_body(401, "token expired")), AuthExpiredError)
    assert isinstance(reckon_error(403, {}, error_body(403, "no permission")),
                      ConfigurationError)
    assert isinstance(reckon_error(404, {}, error_body(404, "The specified invoice does not "
                                                            "exist.")), ReferenceMissingError)
    assert isinstance(reckon_error(503, {}, b"<html>busy</html>"), TransientError)
    assert reckon_error(204, {}, b"") is None


def test_gateway_subscription_key_rejection_is_configuration_not_auth() -> None:
    body = json.dumps({"statusCode": 401, "message": "Access denied due to missing "
                       "subscription key. Make sure to include subscription key when making "
                       "requests to an API."}).encode()
    error = reckon_error(401, {}, body)
    assert isinstance(error, ConfigurationError) and "Ocp-Apim-Subscription-Key" in error.reason


def test_gateway_throttle_and_quota() -> None:
    body = json.dumps({"statusCode": 429, "message": "Rate limit is exceeded. Try again in 12 "
                                                     "seconds."}).encode()
    with_header = reckon_error(429, {"Retry-After": "7"}, body)
    assert isinstance(with_header, RateLimitedError) and with_header.retry_after == 7
    from_text = reckon_error(429, {}, body)
    assert isinstance(from_text, RateLimitedError) and from_text.retry_after == 12
    quota = json.dumps({"statusCode": 403, "message": "Out of call volume quota. Quota will be "
                                                      "replenished in 01:02:03."}).encode()
    error = reckon_error(403, {}, quota)
    assert isinstance(error, RateLimitedError) and error.retry_after == 3723


# --------------------------------------------------------------------------- composite auth


SUBSCRIPTION = SecretStr("rk-test-subscription-key-41b2")


def _oauth(store: InMemoryTokenStore, expires_in: float = 3600) -> OAuth2Auth:
    store.save("reckon-one", "t1", TokenSet(
        access_token=SecretStr("rk-test-access-1-77aa"),
        refresh_token=SecretStr("rk-test-refresh-1-88bb"),
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in)))
    return OAuth2Auth(platform="reckon-one", tenant_id="t1", token_url="https://id/token",
                      client_id="app", client_secret=SecretStr("rk-test-client-secret-9a7c"),
                      store=store)


def test_composite_stamps_bearer_and_subscription_key() -> None:
    auth = oauth2_with_subscription_key(_oauth(InMemoryTokenStore()), SUBSCRIPTION)
    request = httpx.Request("GET", "https://api/x")
    generation = auth.apply(request)
    assert request.headers["Authorization"] == "Bearer rk-test-access-1-77aa"
    assert request.headers[APIM_SUBSCRIPTION_HEADER] == "rk-test-subscription-key-41b2"
    assert generation == auth.primary.generation and auth.can_refresh


def test_composite_delegates_expiry_and_refresh_to_the_primary() -> None:
    store = InMemoryTokenStore()
    auth = oauth2_with_subscription_key(_oauth(store, expires_in=10), SUBSCRIPTION)
    assert auth.needs_refresh()
    sent: list[PlatformRequest] = []

    def send(request: PlatformRequest) -> PlatformResponse:
        sent.append(request)
        return PlatformResponse.from_json(200, {"access_token": "rk-test-access-2-99cc",
                                                "refresh_token": "rk-test-refresh-2-11dd",
                                                "expires_in": 10800})
    auth.refresh_if_needed(send)
    request = httpx.Request("GET", "https://api/x")
    auth.apply(request)
    assert request.headers["Authorization"] == "Bearer rk-test-access-2-99cc"
    assert request.headers[APIM_SUBSCRIPTION_HEADER] == "rk-test-subscription-key-41b2"
    assert len(sent) == 1 and b"rk-test-refresh-1-88bb" in (sent[0].content or b"")


def test_composite_rules() -> None:
    with pytest.raises(ValueError, match="primary"):
        CompositeAuth(ApiKeyAuth(SecretStr("rk-test-api-key-0c3d")), [_oauth(InMemoryTokenStore())])
    with pytest.raises(ConfigurationError):
        StaticHeaderAuth(APIM_SUBSCRIPTION_HEADER, SecretStr(""))
    static = CompositeAuth(ApiKeyAuth(SecretStr("rk-test-api-key-0c3d")), [])
    with pytest.raises(ConfigurationError, match="cannot be refreshed"):
        static.refresh(lambda r: None, stale_generation=0)  # type: ignore[arg-type,return-value]
