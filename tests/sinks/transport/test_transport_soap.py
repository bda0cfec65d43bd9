"""Shared SOAP mechanics: envelopes, requests, fault parsing, header authentication."""

from __future__ import annotations

import httpx
from lxml import etree

from sinks.transport.soap import (
    SOAP_ENV,
    SoapHeaderAuth,
    build_fault,
    child,
    envelope,
    parse,
    parse_fault,
    soap_request,
    sub,
    text_of,
)

NS = "urn:example"


def test_envelope_and_request_headers() -> None:
    op = etree.Element(f"{{{NS}}}ping")
    sub(op, NS, "value", 42)
    request = soap_request("/svc", "ping", envelope([op], nsmap={"ex": NS}), purpose="ping",
                           idempotency_key="k")
    assert request.method == "POST" and request.headers["SOAPAction"] == '"ping"'
    assert request.headers["Content-Type"].startswith("text/xml")
    root = parse(request.content or b"")
    assert root is not None and root.tag == f"{{{SOAP_ENV}}}Envelope"
    assert [etree.QName(c).localname for c in root] == ["Header", "Body"]
    assert text_of(root, "Body", "ping", "value") == "42"


def test_parse_rejects_non_xml_and_entities() -> None:
    assert parse(b"") is None and parse(b"{}") is None and parse(b"<unclosed") is None
    evil = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<r>&x;</r>")
    root = parse(evil)
    assert root is None or "root:" not in (root.text or "")


def test_fault_round_trip() -> None:
    detail = etree.Element(f"{{{NS}}}busyFault")
    sub(detail, NS, "code", "BUSY")
    sub(detail, NS, "message", "try later")
    fault = parse_fault(build_fault("soapenv:Server", "busy", detail))
    assert fault is not None
    assert (fault.faultcode, fault.faultstring, fault.fault_type, fault.code, fault.message) \
        == ("soapenv:Server", "busy", "busyFault", "BUSY", "try later")
    ok = envelope([etree.Element(f"{{{NS}}}pingResponse")])
    assert parse_fault(etree.tostring(ok)) is None


def test_header_auth_inserts_fresh_elements_and_fixes_length() -> None:
    calls = []

    def factory() -> list[etree._Element]:
        calls.append(1)
        token = etree.Element(f"{{{NS}}}token")
        token.text = f"t{len(calls)}"
        return [token]

    auth = SoapHeaderAuth(factory)
    request = soap_request("/svc", "ping", envelope([etree.Element(f"{{{NS}}}ping")]),
                           purpose="ping")
    outgoing = httpx.Request("POST", "http://x/svc", content=request.content)
    auth.apply(outgoing)
    root = parse(outgoing.read())
    assert text_of(child(root, "Header"), "token") == "t1"
    assert outgoing.headers["Content-Length"] == str(len(outgoing.content))
    auth.apply(httpx.Request("POST", "http://x/svc", content=request.content))
    assert len(calls) == 2  # one per request, never cached
