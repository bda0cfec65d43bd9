"""NetSuite error classification from vendor-shaped bodies: REST ``nsError`` JSON and
SOAP faults / ``status isSuccess="false"`` write responses."""

from __future__ import annotations

from typing import Any

import pytest

from sinks.core.contract import PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    SinkError,
    TransientError,
)
from sinks.platforms.netsuite import NetSuiteRest, NetSuiteSoap


def ns_error(status: int, code: str, detail: str, path: str | None = None,
             headers: dict[str, str] | None = None) -> PlatformResponse:
    item: dict[str, Any] = {"detail": detail, "o:errorCode": code}
    if path:
        item["o:errorPath"] = path
    return PlatformResponse.from_json(status, {
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
        "title": "Bad Request", "status": status, "o:errorDetails": [item]}, headers)


@pytest.mark.parametrize(("status", "code", "path", "expected"), [
    (401, "INVALID_LOGIN", None, AuthExpiredError),
    (403, "INSUFFICIENT_PERMISSION", None, ConfigurationError),
    (429, "CONCURRENCY_LIMIT_EXCEEDED", None, RateLimitedError),
    (400, "SSS_REQUEST_LIMIT_EXCEEDED", None, RateLimitedError),
    (400, "RCRD_HAS_BEEN_CHANGED", None, TransientError),
    (500, "UNEXPECTED_ERROR", None, TransientError),
    (400, "INVALID_KEY_OR_REF", "item.items[0].item", ConfigurationError),
    (400, "INVALID_KEY_OR_REF", "item.items[2].taxCode", ConfigurationError),
    (400, "INVALID_KEY_OR_REF", "account", ConfigurationError),
    (400, "INVALID_KEY_OR_REF", "entity", ReferenceMissingError),
    (400, "INVALID_KEY_OR_REF", "apply.items.doc", ReferenceMissingError),
    (400, "DUP_TRANS", "tranId", PayloadRejectedError),
    (400, "TRAN_PERIOD_CLOSED", None, ConfigurationError),  # pause, like other sinks
    (400, "CANT_DELETE_TRANS", None, PayloadRejectedError),
    (400, "MISSING_REQD_FLD", "tranDate", PayloadRejectedError),
    (400, "SOMETHING_NEW", None, PayloadRejectedError),  # generic 4xx fallback
    (503, "SOMETHING_NEW", None, TransientError),
])
def test_rest_error_bodies(status: int, code: str, path: str | None,
                           expected: type[SinkError]) -> None:
    error = NetSuiteRest().classify_error(ns_error(status, code, "detail text", path))
    assert type(error) is expected
    if code != "SOMETHING_NEW":
        assert error.vendor_code == code and error.status == status
        assert error.platform == "netsuite"


def test_rest_success_and_bodyless_429() -> None:
    rest = NetSuiteRest()
    assert rest.classify_error(PlatformResponse(204, {"location": "x/1"})) is None
    throttled = rest.classify_error(PlatformResponse(429, {"retry-after": "7"}, b"busy"))
    assert isinstance(throttled, RateLimitedError) and throttled.retry_after == 7
    assert rest.classify_error(PlatformResponse(502, {}, b"<html>bad gateway</html>")) \
        .__class__ is TransientError


def test_closed_period_reason_tells_the_bookkeeper_what_to_do() -> None:
    error = NetSuiteRest().classify_error(ns_error(400, "TRAN_PERIOD_CLOSED", "Period closed"))
    assert error is not None and "reopen" in error.reason


V = "2023_2"
ENV = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
       'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{}</soapenv:Body>'
       '</soapenv:Envelope>')


def soap_fault(kind: str, code: str, message: str) -> PlatformResponse:
    body = (f'<soapenv:Fault><faultcode>soapenv:Server.userException</faultcode>'
            f'<faultstring>{message}</faultstring><detail>'
            f'<platformFaults:{kind} xmlns:platformFaults="urn:faults_{V}.platform.'
            f'webservices.netsuite.com"><platformFaults:code>{code}</platformFaults:code>'
            f'<platformFaults:message>{message}</platformFaults:message>'
            f'</platformFaults:{kind}></detail></soapenv:Fault>')
    return PlatformResponse(500, {"content-type": "text/xml"}, ENV.format(body).encode())


def soap_status(operation: str, ok: bool, code: str = "", message: str = "") -> PlatformResponse:
    detail = "" if ok else (f'<platformCore:statusDetail type="ERROR"><platformCore:code>{code}'
                            f'</platformCore:code><platformCore:message>{message}'
                            f'</platformCore:message></platformCore:statusDetail>')
    inner = "readResponse" if operation == "get" else "writeResponse"
    body = (f'<{operation}Response xmlns="urn:messages_{V}.platform.webservices.netsuite.com" '
            f'xmlns:platformCore="urn:core_{V}.platform.webservices.netsuite.com"><{inner}>'
            f'<platformCore:status isSuccess="{str(ok).lower()}">{detail}</platformCore:status>'
            + ('<baseRef internalId="42" type="invoice"/>' if ok and inner == "writeResponse"
               else "") + f'</{inner}></{operation}Response>')
    return PlatformResponse(200, {"content-type": "text/xml"}, ENV.format(body).encode())


@pytest.mark.parametrize(("kind", "code", "expected"), [
    ("exceededConcurrentRequestLimitFault", "WS_REQUEST_BLOCKED", RateLimitedError),
    ("exceededRequestLimitFault", "WS_CONCUR_SESSION_DISALLWD", RateLimitedError),
    ("invalidSessionFault", "INVALID_LOGIN_ATTEMPT", AuthExpiredError),
    ("invalidSessionFault", "SESSION_TIMED_OUT", ConfigurationError),
    ("unexpectedErrorFault", "UNEXPECTED_ERROR", TransientError),
    ("invalidCredentialsFault", "INSUFFICIENT_PERMISSION", ConfigurationError),
])
def test_soap_faults(kind: str, code: str, expected: type[SinkError]) -> None:
    assert type(NetSuiteSoap().classify_error(soap_fault(kind, code, "msg"))) is expected


def test_soap_status_false_inside_http_200() -> None:
    soap = NetSuiteSoap()
    assert soap.classify_error(soap_status("upsert", True)) is None
    rejected = soap.classify_error(soap_status("upsert", False, "DUP_TRANS", "number in use"))
    assert isinstance(rejected, PayloadRejectedError) and rejected.vendor_code == "DUP_TRANS"
    missing = soap.classify_error(soap_status("upsert", False, "INVALID_KEY_OR_REF",
                                              "Invalid item reference key 999."))
    assert isinstance(missing, ConfigurationError)  # the mapping names a missing item
    unknown = soap.classify_error(soap_status("upsert", False, "NEW_CODE", "?"))
    assert isinstance(unknown, PayloadRejectedError) and unknown.vendor_code == "NEW_CODE"


def test_soap_not_found_on_get_and_delete_is_left_to_the_flow() -> None:
    soap = NetSuiteSoap()
    for operation in ("get", "delete"):
        response = soap_status(operation, False, "RCRD_DSNT_EXIST", "gone")
        assert soap.classify_error(response) is None
        assert soap.is_missing(response)
    assert isinstance(soap.classify_error(soap_status("upsert", False, "RCRD_DSNT_EXIST", "x")),
                      ReferenceMissingError)
    assert soap.written_id(soap_status("upsert", True), "invoice") == "42"
