"""NetSuite mapping units: settings, external ids, lines, rounding, truncation, and
the shape of each REST request (pure; no sandbox)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from schemas.examples import (
    sample_customer,
    sample_customer_event,
    sample_invoice,
    sample_invoice_event,
    sample_ledger_entry,
    sample_tax_rate_event,
)
from schemas.models import DocumentLine, LineKind
from sinks.core.contract import PlatformRequest, PlatformResponse, SinkContext
from sinks.core.errors import ConfigurationError, UnsupportedEventError
from sinks.core.mapping import LineKind as MappingKind
from sinks.core.mapping import TenantMapping
from sinks.platforms.netsuite import SPEC, NetSuiteRest, NetSuiteSettings
from sinks.platforms.netsuite.common import (
    document_lines,
    line_kind,
    person_name,
    to_amount,
    to_rate,
)
from sinks.platforms.netsuite.rest import id_from_location
from tests.sinks.sandbox.test_sandbox_netsuite_flows import TENANT, tenant_config

D = Decimal


def mapping(**extra: Any) -> TenantMapping:
    return TenantMapping.model_validate({
        "items": {"labor": "10", "parts": "11", "fees": "12", "discounts": "13"},
        "tax_codes": {"TX-AUSTIN": "5"}, "exempt_tax_code": "-7", **extra})


def first_request(event: Any, **settings: Any) -> PlatformRequest:
    context = SinkContext(tenant_id=TENANT, event_id=event.event_id,
                          tenant=tenant_config(**settings), external_ids={"customer:c1": "77"})
    return next(NetSuiteRest().plan(sample_ledger_entry(event), context))


def test_settings_derive_realm_host_and_urls() -> None:
    settings = NetSuiteSettings(account_id="123456_SB1")
    assert settings.realm == "123456_SB1"
    assert settings.host_id == "123456-sb1"
    assert settings.root_url() == "https://123456-sb1.suitetalk.api.netsuite.com"
    assert settings.external_id("inv", "A-1") == "ls-inv-A-1"
    with pytest.raises(ConfigurationError, match=r"settings\.currencies\.EUR"):
        NetSuiteSettings(account_id="1", currencies={"USD": "1"}).currency_ref("EUR", "t1")
    assert NetSuiteSettings(account_id="1").currency_ref("EUR", "t1") is None


def test_invalid_settings_are_configuration_errors() -> None:
    tenant = tenant_config()
    bad = tenant.model_copy(update={"settings": {"account_id": "bad id!"}})
    with pytest.raises(ConfigurationError, match=r"settings\.account_id"):
        next(NetSuiteRest().plan(sample_ledger_entry(sample_invoice_event()),
                                 SinkContext(tenant_id=TENANT, event_id="e", tenant=bad)))


@pytest.mark.parametrize(("kind", "expected"), [
    (LineKind.LABOR, MappingKind.LABOR), (LineKind.PART, MappingKind.PARTS),
    (LineKind.TRIP_FEE, MappingKind.FEES), (LineKind.DIAGNOSTIC_FEE, MappingKind.FEES),
    (LineKind.OTHER, MappingKind.FEES), (LineKind.DISCOUNT, MappingKind.DISCOUNTS)])
def test_line_kinds(kind: LineKind, expected: MappingKind) -> None:
    assert line_kind(kind) is expected


def test_rounding_rule_half_up_to_currency_precision() -> None:
    m = mapping()
    assert to_amount(D("2.345"), "USD", m) == D("2.35")
    assert to_amount(D("2.335"), "USD", m) == D("2.34")
    assert to_amount(D("1234.5"), "JPY", m) == D("1235")
    even = mapping(rounding={"mode": "half_even"})
    assert to_amount(D("2.345"), "USD", even) == D("2.34")
    assert to_rate(D("31.6000000")) == D("31.6")
    assert to_rate(D("0.12345678")) == D("0.123457")


def test_lines_map_items_taxes_discounts_and_exemption() -> None:
    lines = (*sample_invoice().lines,
             DocumentLine(line_id="d", kind=LineKind.DISCOUNT, description="Loyalty",
                          quantity=D(1), unit_price=D("-25.00"), amount=D("-25.00")))
    mapped = document_lines(lines, "USD", mapping(), exempt=False, location=None)
    assert [(m.item, m.tax_code, m.amount) for m in mapped] == [
        ("10", "-7", D("142.50")), ("11", "5", D("89.99")), ("12", "-7", D("49.00")),
        ("13", "-7", D("-25.00"))]
    assert mapped[-1].rate == D("-25")
    exempt = document_lines(lines, "USD", mapping(), exempt=True, location=None)
    assert {m.tax_code for m in exempt} == {"-7"}


def test_unmapped_tax_code_names_the_missing_key() -> None:
    lines = (DocumentLine(line_id="x", kind=LineKind.PART, description="p", quantity=D(1),
                          unit_price=D(1), tax_code="TX-ELSEWHERE", amount=D(1)),)
    with pytest.raises(ConfigurationError, match="TX-ELSEWHERE"):
        document_lines(lines, "USD", mapping(), exempt=False, location=None)


def test_customer_body_company_person_and_truncation() -> None:
    rest = NetSuiteRest()
    settings = NetSuiteSettings(account_id="1", subsidiary="3")
    person = rest.customer_body(sample_customer("c1"), settings)
    assert person["isPerson"] is True
    assert (person["firstName"], person["lastName"]) == ("Zoë", "Müller-Ramírez")
    assert person["subsidiary"] == {"id": "3"} and person["externalId"] == "ls-cust-c1"
    company = rest.customer_body(sample_customer("c2", company_name="Z" * 200,
                                                 phone="+1 512 555 0100 ext 12345"), settings)
    assert company["isPerson"] is False and len(company["companyName"]) == 83
    assert len(company["phone"]) == SPEC.max_name_lengths["customer.phone"] == 21
    assert person_name("Cher") == ("Cher", "Cher")


def test_customer_event_is_an_eid_upsert() -> None:
    request = first_request(sample_customer_event())
    assert (request.method, request.path) == (
        "PUT", "/services/rest/record/v1/customer/eid:ls-cust-c1")
    assert "externalId" not in request.json  # it is in the URL
    assert request.idempotency_key


def test_invoice_request_shape() -> None:
    request = first_request(sample_invoice_event())
    assert (request.method, request.path) == (
        "PUT", "/services/rest/record/v1/invoice/eid:ls-inv-inv1")
    assert request.query == {"replace": "item"}
    body = request.json
    assert body["entity"] == {"id": "77"} and body["tranId"] == "INV-INV1"
    assert body["tranDate"] == "2025-03-14" and body["dueDate"] == "2025-04-13"
    assert [i["amount"] for i in body["item"]["items"]] == [142.5, 89.99, 49]
    assert body["item"]["items"][0]["quantity"] == 1.5
    unnumbered = first_request(sample_invoice_event(), use_crm_numbers=False).json
    assert "tranId" not in unnumbered
    euro = first_request(sample_invoice_event(invoice=sample_invoice(currency="EUR")),
                         currencies={"USD": "1", "EUR": "4"}).json
    assert euro["currency"] == {"id": "4"}


def test_unknown_customer_snapshot_is_looked_up_by_external_id() -> None:
    event = sample_invoice_event()
    entry = sample_ledger_entry(event).model_copy(update={"customer": None})
    flow = NetSuiteRest().plan(entry, SinkContext(tenant_id=TENANT, event_id=event.event_id,
                                                  tenant=tenant_config()))
    lookup = next(flow)
    assert lookup.method == "GET" and lookup.path.endswith("/customer/eid:ls-cust-c1")
    assert 404 in lookup.accept_statuses
    from sinks.core.errors import ReferenceMissingError

    with pytest.raises(ReferenceMissingError, match="never synced"):
        flow.send(PlatformResponse(404))


def test_tax_rate_event_is_unsupported_with_reason() -> None:
    with pytest.raises(UnsupportedEventError, match=r"mapping\.tax_codes"):
        first_request(sample_tax_rate_event())


def test_location_header_parsing() -> None:
    ok = PlatformResponse(204, {"Location": "https://a.suitetalk.api.netsuite.com/services/"
                                            "rest/record/v1/invoice/4711"})
    assert id_from_location(ok) == "4711"
    assert id_from_location(PlatformResponse(204)) is None


def test_spec_declares_upsert_without_keys_or_void() -> None:
    assert SPEC.supports_upsert and not SPEC.supports_idempotency_key
    assert not SPEC.supports_void
    assert SPEC.rate_limit.concurrency == 5 and SPEC.rate_limit.windows == ()
    assert SPEC.settings_model is NetSuiteSettings
