"""Zoho Books: pure mapping (rounding, truncation, discounts, tax, payments) and the
classification of real-shaped Zoho error bodies."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from schemas.examples import sample_credit_note, sample_customer, sample_invoice, sample_payment
from schemas.models import Allocation, DocumentLine, LineKind, PaymentMethod
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    TransientError,
)
from sinks.core.mapping import TenantMapping
from sinks.platforms.zoho_books import SPEC, ZohoBooksSettings
from sinks.platforms.zoho_books import mapping as m
from sinks.platforms.zoho_books.errors import DAILY_LIMIT_RETRY, zoho_error

D = Decimal
SETTINGS = ZohoBooksSettings(organization_id="20001", currency_ids={"EUR": "9002"})
MAPPING = TenantMapping.model_validate({
    "items": {"labor": "I-L", "parts": "I-P", "fees": "I-F", "discounts": "I-D"},
    "tax_codes": {"TX-AUSTIN": "T-825"},
    "exempt_tax_code": "EX-1",
    "deposit_accounts": {"card": "A-CARD", "default": "A-UF"},
})


def line(kind: LineKind, qty: str, price: str, amount: str, tax: str | None = None
         ) -> DocumentLine:
    return DocumentLine(line_id=f"l{kind}{qty}", kind=kind, description="x", quantity=D(qty),
                        unit_price=D(price), amount=D(amount), tax_code=tax)


def test_amounts_round_half_up_to_cents() -> None:
    assert m.amount(D("0.005")) == 0.01
    assert m.amount(D("2.675")) == 2.68  # float(2.675) would round down
    assert m.amount(D("-1.005")) == -1.01


def test_inexact_quantity_is_sent_as_one_at_the_crm_amount() -> None:
    items, _ = m.line_items([line(LineKind.LABOR, "0.333", "95.00", "31.60")], MAPPING,
                            exempt=False)
    assert (items[0]["quantity"], items[0]["rate"]) == (1, 31.6)
    items, _ = m.line_items([line(LineKind.LABOR, "1.5", "95.00", "142.50")], MAPPING,
                            exempt=False)
    assert (items[0]["quantity"], items[0]["rate"]) == (1.5, 95.0)


def test_credit_notes_take_whole_quantities_only() -> None:
    items, _ = m.line_items([line(LineKind.LABOR, "1.5", "95.00", "142.50"),
                             line(LineKind.PART, "2", "10.00", "20.00")],
                            MAPPING, exempt=False, whole_quantities=True)
    assert [(i["quantity"], i["rate"]) for i in items] == [(1, 142.5), (2, 10.0)]
    assert all(isinstance(i["quantity"], int) for i in items)


def test_line_kinds_map_to_items_and_taxes() -> None:
    items, header = m.line_items([line(LineKind.TRIP_FEE, "1", "49", "49"),
                                  line(LineKind.PART, "1", "89.99", "89.99", "TX-AUSTIN")],
                                 MAPPING, exempt=False)
    assert [i["item_id"] for i in items] == ["I-F", "I-P"]
    assert "tax_id" not in items[0] and items[1]["tax_id"] == "T-825"
    assert header == {}
    exempt, _ = m.line_items([line(LineKind.PART, "1", "89.99", "89.99", "TX-AUSTIN")],
                             MAPPING, exempt=True)
    assert "tax_id" not in exempt[0]


def test_unmapped_tax_code_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="TX-NOWHERE"):
        m.line_items([line(LineKind.PART, "1", "5", "5", "TX-NOWHERE")], MAPPING, exempt=False)


def test_discount_lines_become_an_entity_level_discount() -> None:
    lines = [line(LineKind.LABOR, "1", "100", "100"),
             line(LineKind.DISCOUNT, "1", "-25.005", "-25.005")]
    items, header = m.line_items(lines, MAPPING, exempt=False)
    assert len(items) == 1
    assert header == {"discount": 25.01, "discount_type": "entity_level",
                      "is_discount_before_tax": False}
    taxed = [line(LineKind.PART, "1", "100", "100", "TX-AUSTIN"),
             line(LineKind.DISCOUNT, "1", "-10", "-10", "TX-AUSTIN")]
    assert m.line_items(taxed, MAPPING, exempt=False)[1]["is_discount_before_tax"] is True


def test_negative_non_discount_line_is_rejected() -> None:
    with pytest.raises(PayloadRejectedError, match="negative"):
        m.line_items([line(LineKind.OTHER, "1", "-5", "-5")], MAPPING, exempt=False)


def test_contact_truncates_to_zoho_limits() -> None:
    customer = sample_customer("c1", display_name="N" * 300,
                               billing_address={"line1": "L" * 80, "city": "C" * 70,
                                                "postal_code": "9" * 40, "country": "US"})
    body = m.contact_body(customer, SETTINGS)
    assert len(body["contact_name"]) == SPEC.max_name_lengths["customer.display_name"] == 200
    assert len(body["billing_address"]["address"]) == 60
    assert len(body["billing_address"]["city"]) == 50
    assert len(body["billing_address"]["zip"]) == 30
    assert body["custom_fields"] == [{"api_name": "cf_ledgerstream_id", "value": "c1"}]
    assert "currency_id" not in body
    assert m.disambiguated_name(customer).endswith(" (c1)")
    assert len(m.disambiguated_name(customer)) == 200


def test_foreign_currency_needs_a_currency_id() -> None:
    assert m.currency("EUR", SETTINGS) == {"currency_id": "9002"}
    assert m.currency("USD", SETTINGS) == {}
    with pytest.raises(ConfigurationError, match=r"settings\.currency_ids\.GBP"):
        m.currency("GBP", SETTINGS)


def test_invoice_body() -> None:
    invoice = sample_invoice()
    body = m.invoice_body(invoice, "C-1", sample_customer(), MAPPING, SETTINGS)
    assert body["customer_id"] == "C-1" and body["invoice_number"] == invoice.number
    assert body["date"] == "2025-03-14" and body["due_date"] == "2025-04-13"
    assert body["custom_fields"] == [{"api_name": "cf_ledgerstream_id", "value": "inv1"}]
    assert "tax_exemption_id" not in body
    exempt = m.invoice_body(invoice, "C-1", sample_customer(tax_exempt=True), MAPPING,
                            SETTINGS)
    assert exempt["tax_exemption_id"] == "EX-1"
    auto = m.invoice_body(invoice, "C-1", None, MAPPING,
                          SETTINGS.model_copy(update={"use_crm_numbers": False}))
    assert "invoice_number" not in auto
    json.dumps(body)  # plain JSON, no Decimal


def test_credit_note_body_carries_no_custom_fields() -> None:
    body = m.credit_note_body(sample_credit_note(), "C-1", None, MAPPING, SETTINGS)
    assert body["creditnote_number"] == "CN-CN1" and "custom_fields" not in body


def test_payment_body_excludes_the_tip_and_names_it() -> None:
    payment = sample_payment(amount=D("310.92"), tip=D("20.00"),
                             allocations=(Allocation(invoice_id="inv1", amount=D("290.92")),))
    body = m.payment_body(payment, "C-1", {"Z-INV": D("290.92"), "Z-0": D(0)}, MAPPING,
                          SETTINGS)
    assert body["amount"] == 290.92 and body["payment_mode"] == "creditcard"
    assert body["invoices"] == [{"invoice_id": "Z-INV", "amount_applied": 290.92}]
    assert body["account_id"] == "A-CARD" and body["bank_charges"] == 9.32
    assert "tip 20.00 not recorded" in body["description"]
    cash = sample_payment(method=PaymentMethod.CASH)
    assert m.payment_body(cash, "C", {}, MAPPING, SETTINGS)["account_id"] == "A-UF"


def test_upsert_headers() -> None:
    assert m.upsert_headers(SETTINGS, "inv1") == {
        "X-Unique-Identifier-Key": "cf_ledgerstream_id", "X-Unique-Identifier-Value": "inv1",
        "X-Upsert": "true"}


def test_settings_derive_data_centre_hosts() -> None:
    eu = ZohoBooksSettings(organization_id="1", data_centre="eu")
    assert eu.api_base == "https://www.zohoapis.eu/books/v3"
    assert eu.token_url == "https://accounts.zoho.eu/oauth/v2/token"
    with pytest.raises(ValueError):
        ZohoBooksSettings(organization_id="1", unique_field="not a field")


def _err(status: int, body: object, headers: dict[str, str] | None = None) -> object:
    return zoho_error(status, headers or {}, json.dumps(body).encode())


@pytest.mark.parametrize(("status", "body", "cls", "code"), [
    (404, {"code": 1002, "message": "Invoice does not exist."}, ReferenceMissingError, "1002"),
    (500, {"code": 1000, "message": "Internal error"}, TransientError, "1000"),
    (401, {"code": 57, "message": "You are not authorized to perform this operation"},
     AuthExpiredError, "57"),
    (401, {"code": 14, "message": "Invalid OAuth token."}, AuthExpiredError, "14"),
    (429, {"code": 44, "message": "You have made too many requests continuously."},
     RateLimitedError, "44"),
    (400, {"code": 4000, "message": "... transaction lock date 2025-03-31."},
     ConfigurationError, "4000"),
    (400, {"code": 3004, "message": "The customer X is inactive."}, ConfigurationError, "3004"),
    (400, {"code": 4, "message": "Invalid value passed for X-Unique-Identifier-Key"},
     ConfigurationError, "4"),
    (400, {"code": 4, "message": "Invalid value passed for rate"}, PayloadRejectedError, "4"),
    (400, {"code": 9999, "message": "Invoice number INV-1 already exists."},
     PayloadRejectedError, "9999"),
])
def test_vendor_codes_are_classified(status: int, body: object, cls: type, code: str) -> None:
    error = _err(status, body)
    assert type(error) is cls and error.vendor_code == code  # type: ignore[attr-defined]
    assert error.platform == "zoho-books"  # type: ignore[attr-defined]


def test_success_and_error_in_a_200() -> None:
    assert _err(200, {"code": 0, "message": "success", "invoice": {}}) is None
    assert _err(201, {"code": 0, "message": "The invoice has been created."}) is None
    assert isinstance(_err(200, {"code": 1002, "message": "Invoice does not exist."}),
                      ReferenceMissingError)
    assert zoho_error(204, {}, b"") is None


def test_daily_limit_waits_and_retry_after_is_honoured() -> None:
    daily = _err(429, {"code": 45, "message": "daily limit"})
    assert isinstance(daily, RateLimitedError) and daily.retry_after == DAILY_LIMIT_RETRY
    hinted = _err(429, {"code": 44, "message": "slow down"}, {"retry-after": "7"})
    assert isinstance(hinted, RateLimitedError) and hinted.retry_after == 7


def test_non_json_errors_fall_back_to_http() -> None:
    assert isinstance(zoho_error(503, {}, b"<html>down</html>"), TransientError)
    assert isinstance(zoho_error(403, {}, b""), ConfigurationError)
