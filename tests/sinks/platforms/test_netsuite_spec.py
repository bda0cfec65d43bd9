"""Every NetSuite request the sinks build, checked against Oracle's SuiteTalk 2023.2
WSDL/XSDs in ``shared/specs/netsuite-soap`` (skipped when that folder is absent).

SOAP envelopes are validated element by element with xmlschema; the REST bodies have no
static spec (NetSuite serves its OpenAPI per account from the metadata catalog), so
their field names are checked by converting each REST body into the SOAP record of the
same type, whose builder refuses fields the XSD sequence does not list, and
validating the result. The vendor error codes the classifier knows must be members of
``StatusDetailCodeType``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from schemas.examples import (
    sample_credit_note_event,
    sample_customer_event,
    sample_invoice_event,
    sample_ledger_entry,
    sample_payment,
    sample_payment_event,
    sample_refund_event,
)
from schemas.models import CreditDisposition, Op
from sinks.core.contract import PlatformRequest, PlatformResponse, SinkContext
from sinks.platforms.netsuite.common import KNOWN_CODES
from sinks.platforms.netsuite.rest import NetSuiteRest
from sinks.platforms.netsuite.soap import NetSuiteSoap, record_element, token_passport
from sinks.transport.soap import SOAP_ENV, parse
from tests.sinks.sandbox.test_sandbox_netsuite_flows import TENANT, tenant_config

SPECS = Path(__file__).resolve().parents[4] / "shared" / "specs" / "netsuite-soap"
XSD = SPECS / "xsd"
pytestmark = pytest.mark.skipif(
    not XSD.is_dir(), reason=f"NetSuite SOAP specs not found at {SPECS} (shared/specs absent)")

REST_TO_RECORD = {"customer": "customer", "invoice": "invoice",
                  "customerPayment": "customerPayment", "creditMemo": "creditMemo",
                  "customerRefund": "customerRefund"}


@pytest.fixture(scope="module")
def schema() -> Any:
    xmlschema = pytest.importorskip("xmlschema")
    return xmlschema.XMLSchema([str(XSD / name) for name in (
        "platform.messages.xsd", "transactions.sales.xsd", "transactions.customers.xsd",
        "lists.relationships.xsd")])


def scripted(platform: NetSuiteRest, event: Any) -> list[PlatformRequest]:
    """Drive a flow with a transport that answers every write with success."""
    ids = {"customer:c1": "11", "invoice:inv1": "21", "payment:pay1": "31"}
    context = SinkContext(tenant_id=TENANT, event_id=event.event_id,
                          tenant=tenant_config(), external_ids=ids)
    flow = platform.plan(sample_ledger_entry(event), context)
    sent: list[PlatformRequest] = []
    try:
        request = next(flow)
        while True:
            sent.append(request)
            request = flow.send(answer(platform, request))
    except StopIteration:
        return sent


def answer(platform: NetSuiteRest, request: PlatformRequest) -> PlatformResponse:
    if isinstance(platform, NetSuiteSoap):
        body = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
                b'<soapenv:Body><m:r xmlns:m="urn:m" xmlns:c="urn:c"><m:writeResponse>'
                b'<c:status isSuccess="true"/><m:baseRef internalId="99"/></m:writeResponse>'
                b'</m:r></soapenv:Body></soapenv:Envelope>')
        return PlatformResponse(200, {"content-type": "text/xml"}, body)
    return PlatformResponse(204, {"location": "https://x/services/rest/record/v1/r/99"})


def events() -> Iterator[Any]:
    yield sample_customer_event()
    yield sample_invoice_event()
    yield sample_invoice_event(op=Op.DELETE, version=2)
    yield sample_payment_event(amount=Decimal("100.00"))
    yield sample_refund_event(amount=Decimal("10.00"))
    yield sample_credit_note_event()
    yield sample_credit_note_event(credit_note_id="cn2", disposition=CreditDisposition.REFUNDED)


EVENT_IDS = ["customer", "invoice", "void", "payment", "refund", "credit", "credit-refunded"]


@pytest.mark.parametrize("event", list(events()), ids=EVENT_IDS)
def test_every_soap_request_validates_against_the_xsd(schema: Any, event: Any) -> None:
    requests = scripted(NetSuiteSoap(), event)
    assert requests
    for request in requests:
        assert request.content is not None
        root = parse(request.content)
        assert root is not None and root.tag == f"{{{SOAP_ENV}}}Envelope"
        operation = root.find(f"{{{SOAP_ENV}}}Body")[0]  # type: ignore[index]
        schema.validate(etree.tostring(operation).decode())
        assert request.headers["SOAPAction"].strip('"') == etree.QName(operation).localname


@pytest.mark.parametrize("event", list(events()), ids=EVENT_IDS)
def test_rest_bodies_use_only_xsd_field_names(schema: Any, event: Any) -> None:
    for request in scripted(NetSuiteRest(), event):
        if request.method not in ("PUT", "PATCH"):
            continue
        record = request.path.split("/")[5]
        element = record_element(REST_TO_RECORD[record], request.json, "ls-x", "2023_2")
        wrapper = etree.Element("{urn:messages_2023_2.platform.webservices.netsuite.com}upsert")
        wrapper.append(element)
        schema.validate(etree.tostring(wrapper).decode())


def test_validation_catches_a_misordered_or_misnamed_envelope(schema: Any) -> None:
    body = {"entity": {"id": "1"}, "tranDate": "2025-03-14",
            "item": {"items": [{"item": {"id": "10"}, "amount": 1}]}}
    element = record_element("invoice", body, "ls-x", "2023_2")
    wrapper = etree.Element("{urn:messages_2023_2.platform.webservices.netsuite.com}upsert")
    wrapper.append(element)
    schema.validate(etree.tostring(wrapper).decode())
    element.insert(0, element[-1])  # itemList before entity: sequence order broken
    assert not schema.is_valid(etree.tostring(wrapper).decode())
    with pytest.raises(ValueError, match="no SOAP element order"):
        record_element("invoice", {**body, "lines": []}, "ls-x", "2023_2")


def test_token_passport_validates_and_signs_as_documented(schema: Any) -> None:
    passport = token_passport(account="123456_SB1", consumer_key="ck", consumer_secret="cs",
                              token="tk", token_secret="ts", nonce="abc123",
                              timestamp=1700000000)
    schema.validate(etree.tostring(passport).decode())
    # Base64(HMAC-SHA256("cs&ts", "123456_SB1&ck&tk&abc123&1700000000")), computed by hand
    import base64
    import hashlib
    import hmac

    expected = base64.b64encode(hmac.new(b"cs&ts", b"123456_SB1&ck&tk&abc123&1700000000",
                                         hashlib.sha256).digest()).decode()
    signature = passport[-1]
    assert signature.text == expected and signature.get("algorithm") == "HMAC-SHA256"


def test_wsdl_loads_and_offers_the_operations_used() -> None:
    zeep = pytest.importorskip("zeep")
    client = zeep.Client(str(SPECS / "netsuite.wsdl"))
    operations = set(client.service._binding._operations)
    assert {"upsert", "get", "delete"} <= operations


def test_known_error_codes_exist_in_the_fault_type_enumeration() -> None:
    text = (XSD / "platform.faultTypes.xsd").read_text(encoding="utf-8")
    block = text[text.index('name="StatusDetailCodeType"'):]
    block = block[:block.index("</simpleType>")]
    enumerated = set(re.findall(r'value="([A-Z0-9_]+)"', block))
    assert enumerated, "StatusDetailCodeType not found"
    assert enumerated >= KNOWN_CODES, sorted(KNOWN_CODES - enumerated)


def test_tipped_payment_never_reaches_the_wire() -> None:
    tipped = sample_payment(amount=Decimal("100.00"), tip=Decimal("5.00"),
                            allocations=({"invoice_id": "inv1", "amount": Decimal("95")},))
    from sinks.core.errors import UnsupportedEventError

    with pytest.raises(UnsupportedEventError):
        scripted(NetSuiteSoap(), sample_payment_event(payment=tipped))
