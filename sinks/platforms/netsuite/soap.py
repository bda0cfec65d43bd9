"""Oracle NetSuite sink over SuiteTalk SOAP (2023.2) — the seed's named option.

Same events, same records, same **idempotency strategy (upsert by external id)** and
same guarantee as :mod:`sinks.platforms.netsuite.rest`, whose flows this class reuses;
only the wire changes: the ``upsert`` operation with ``record xsi:type="tranSales:
Invoice" externalId="ls-inv-…"``, ``get``/``delete`` with a ``baseRef`` keyed by
external or internal id. The REST-shaped bodies are turned into XML by a table of
element orders copied from the XSD sequences (an XSD ``sequence`` is ordered; the
tests validate every envelope against ``specs/netsuite-soap``).

Authentication is a per-request signed ``tokenPassport`` SOAP header (TBA,
HMAC-SHA256), added at send time by :class:`sinks.transport.soap.SoapHeaderAuth`
with :func:`token_passport_factory`, so no secret enters a request object.

SOAP reports write failures as HTTP 200 with ``status isSuccess="false"`` and
``statusDetail/code``; governance and session problems as SOAP faults
(``ExceededConcurrentRequestLimitFault`` code ``WS_REQUEST_BLOCKED``,
``InvalidSessionFault``). Oracle retires SOAP in 2028.2; prefer REST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, ClassVar

from lxml import etree
from pydantic import SecretStr

from sinks.core.contract import (
    PlatformRequest,
    PlatformResponse,
    PlatformSpec,
    WireProtocol,
)
from sinks.core.errors import (
    ConfigurationError,
    PayloadRejectedError,
    SinkError,
    TransientError,
)
from sinks.platforms.netsuite.common import NAME_LIMITS, RATE_LIMIT, NetSuiteSettings, classify_code
from sinks.platforms.netsuite.rest import NetSuiteRest
from sinks.transport import soap
from sinks.transport.redact import register_secret

__all__ = ["SOAP_SPEC", "NetSuiteSoap", "namespaces", "token_passport", "token_passport_factory"]

SOAP_SPEC = PlatformSpec(
    name="netsuite-soap",
    display_name="Oracle NetSuite (SuiteTalk SOAP 2023.2)",
    protocol=WireProtocol.SOAP,
    supports_idempotency_key=False,
    supports_upsert=True,
    supports_void=False,
    max_batch_size=1,  # upsertList takes ~200 records; this sink writes one event at a time
    multi_currency=True,
    partial_payments=True,
    rate_limit=RATE_LIMIT,
    max_name_lengths=NAME_LIMITS,
    settings_model=NetSuiteSettings,
)

#: record → (namespace key, XSD type, item type, apply type)
RECORD_TYPES: dict[str, tuple[str, str, str | None, str | None]] = {
    "customer": ("listRel", "Customer", None, None),
    "invoice": ("tranSales", "Invoice", "InvoiceItem", None),
    "creditMemo": ("tranCust", "CreditMemo", "CreditMemoItem", "CreditMemoApply"),
    "customerPayment": ("tranCust", "CustomerPayment", None, "CustomerPaymentApply"),
    "customerRefund": ("tranCust", "CustomerRefund", None, "CustomerRefundApply"),
}

#: Element order of each complexType's sequence (from the 2023.2 XSDs), limited to the
#: fields this sink writes. Unknown keys are a programming error.
ORDER: dict[str, tuple[str, ...]] = {
    "Customer": ("isPerson", "firstName", "lastName", "companyName", "phone", "email",
                 "isInactive", "subsidiary", "currency", "resaleNumber"),
    "Invoice": ("entity", "tranDate", "tranId", "class", "location", "subsidiary", "currency",
                "dueDate", "otherRefNum", "memo", "item"),
    "InvoiceItem": ("item", "description", "amount", "quantity", "rate", "class", "location",
                    "taxCode"),
    "CreditMemo": ("currency", "entity", "tranDate", "tranId", "class", "location",
                   "subsidiary", "memo", "item", "apply"),
    "CreditMemoItem": ("item", "quantity", "description", "rate", "amount", "taxCode", "class",
                       "location"),
    "CustomerPayment": ("customer", "currency", "payment", "tranDate", "tranId", "memo",
                        "undepFunds", "account", "apply"),
    "CustomerRefund": ("customer", "currency", "tranDate", "memo", "account", "apply"),
    "CreditMemoApply": ("apply", "doc", "amount"),
    "CustomerPaymentApply": ("apply", "doc", "amount"),
    "CustomerRefundApply": ("apply", "doc", "amount"),
}
DATE_TIME_FIELDS = frozenset({"tranDate", "dueDate"})


def namespaces(version: str) -> dict[str, str]:
    return {
        "platformMsgs": f"urn:messages_{version}.platform.webservices.netsuite.com",
        "platformCore": f"urn:core_{version}.platform.webservices.netsuite.com",
        "tranSales": f"urn:sales_{version}.transactions.webservices.netsuite.com",
        "tranCust": f"urn:customers_{version}.transactions.webservices.netsuite.com",
        "listRel": f"urn:relationships_{version}.lists.webservices.netsuite.com",
    }


def _text(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in DATE_TIME_FIELDS:
        # xsd:dateTime; NetSuite keeps the date in the account's time zone (⚠ check
        # on a live account that midnight does not shift a day).
        return f"{date.fromisoformat(str(value)).isoformat()}T00:00:00"
    return str(value)


def _ref(parent: etree._Element, ns: str, name: str, ref: dict[str, str]) -> None:
    attrib = {"internalId": ref["id"]} if "id" in ref else {"externalId": ref["externalId"]}
    soap.sub(parent, ns, name, attrib=attrib)


def record_element(record: str, body: dict[str, Any], external_id: str,
                   version: str) -> etree._Element:
    """A REST-shaped body as the SOAP ``record`` of ``upsert``."""
    ns = namespaces(version)
    prefix, xsd_type, item_type, apply_type = RECORD_TYPES[record]
    uri = ns[prefix]
    element = etree.Element(soap.q(ns["platformMsgs"], "record"),
                            attrib={f"{{{soap.XSI}}}type": f"{prefix}:{xsd_type}",
                                    "externalId": external_id},
                            nsmap={prefix: uri})
    fields = {k: v for k, v in body.items() if k != "externalId"}
    unknown = set(fields) - set(ORDER[xsd_type])
    if unknown:
        raise ValueError(f"no SOAP element order for {xsd_type}.{sorted(unknown)}")
    for name in ORDER[xsd_type]:
        if name not in fields:
            continue
        value = fields[name]
        if name == "item":
            assert item_type is not None
            sublist = soap.sub(element, uri, "itemList")
            for line in value["items"]:
                _line(soap.sub(sublist, uri, "item"), uri, item_type, line)
        elif name == "apply":
            assert apply_type is not None
            sublist = soap.sub(element, uri, "applyList")
            for line in value["items"]:
                _line(soap.sub(sublist, uri, "apply"), uri, apply_type,
                      {**line, "doc": line["doc"]["id"]})
        elif isinstance(value, dict):
            _ref(element, uri, name, value)
        else:
            soap.sub(element, uri, name, _text(value, name))
    return element


def _line(parent: etree._Element, uri: str, xsd_type: str, line: dict[str, Any]) -> None:
    for name in ORDER[xsd_type]:
        if name not in line:
            continue
        value = line[name]
        if isinstance(value, dict):
            _ref(parent, uri, name, value)
        else:
            soap.sub(parent, uri, name, _text(value, name))


def base_ref(record: str, internal_id: str | None, external_id: str,
             version: str) -> etree._Element:
    ns = namespaces(version)
    attrib = {"type": record, f"{{{soap.XSI}}}type": "platformCore:RecordRef"}
    attrib.update({"internalId": internal_id} if internal_id else {"externalId": external_id})
    return etree.Element(soap.q(ns["platformMsgs"], "baseRef"), attrib=attrib,
                         nsmap={"platformCore": ns["platformCore"]})


def token_passport(*, account: str, consumer_key: str, consumer_secret: str, token: str,
                   token_secret: str, nonce: str, timestamp: int,
                   version: str = "2023_2") -> etree._Element:
    """The TBA ``tokenPassport`` header: signature = Base64(HMAC-SHA256(key =
    ``consumerSecret&tokenSecret``, ``account&consumerKey&token&nonce&timestamp``))."""
    ns = namespaces(version)
    base = "&".join((account, consumer_key, token, nonce, str(timestamp)))
    key = f"{consumer_secret}&{token_secret}"
    signature = base64.b64encode(
        hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()
    passport = etree.Element(soap.q(ns["platformMsgs"], "tokenPassport"),
                             nsmap={"platformCore": ns["platformCore"]})
    for name, value in (("account", account), ("consumerKey", consumer_key), ("token", token),
                        ("nonce", nonce), ("timestamp", str(timestamp))):
        soap.sub(passport, ns["platformCore"], name, value)
    soap.sub(passport, ns["platformCore"], "signature", signature,
             attrib={"algorithm": "HMAC-SHA256"})
    return passport


def token_passport_factory(*, account: str, consumer_key: str, consumer_secret: SecretStr,
                           token: str, token_secret: SecretStr, version: str = "2023_2",
                           clock: Callable[[], float] = time.time,
                           nonce: Callable[[], str] = lambda: secrets.token_hex(16),
                           ) -> Callable[[], Sequence[etree._Element]]:
    """For :class:`~sinks.transport.soap.SoapHeaderAuth`: a fresh passport per request
    (nonce 6-64 alphanumerics, Unix timestamp, realm = account id in upper case)."""
    register_secret(consumer_secret.get_secret_value())
    register_secret(token_secret.get_secret_value())

    def factory() -> Sequence[etree._Element]:
        return [token_passport(
            account=account.upper(), consumer_key=consumer_key,
            consumer_secret=consumer_secret.get_secret_value(), token=token,
            token_secret=token_secret.get_secret_value(), nonce=nonce(),
            timestamp=int(clock()), version=version)]

    return factory


def write_status(response: PlatformResponse) -> tuple[bool, str | None, str, etree._Element | None]:
    """(isSuccess, first statusDetail code, its message, the response's operation
    element) of a ``…Response`` body."""
    root = soap.parse(response.body)
    operation = soap.body_of(root) if root is not None else None
    inner = operation[0] if operation is not None and len(operation) else None
    status = soap.child(inner, "status")
    if status is None:
        return (False, None, "response carries no status", operation)
    ok = status.get("isSuccess") == "true"
    detail = soap.child(status, "statusDetail")
    return (ok, soap.text_of(detail, "code"), soap.text_of(detail, "message") or "", operation)


class NetSuiteSoap(NetSuiteRest):
    """NetSuite over SOAP: the REST flows with SOAP requests and parsing.

    Not registered under its own name: the registry's ``netsuite`` is the REST sink;
    a tenant with ``settings.api: soap`` is served by this class, which needs the
    ``SoapHeaderAuth`` transport (see ``docs/platforms/netsuite.md``)."""

    spec: ClassVar[PlatformSpec] = SOAP_SPEC

    def __init__(self, version: str = "2023_2") -> None:
        self.version = version

    # ------------------------------------------------------------------ errors

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        fault = soap.parse_fault(response.body)
        if fault is not None:
            error = classify_code(fault.code, fault.message or fault.faultstring,
                                  status=response.status, path=None, platform=self.spec.name)
            if error is not None:
                return error
            if fault.fault_type and "session" in fault.fault_type.lower():
                return ConfigurationError(f"SOAP session rejected: {fault.faultstring}",
                                          platform=self.spec.name, status=response.status)
            if response.status >= 500 and fault.faultcode.endswith("Server"):
                return TransientError(f"SOAP fault: {fault.faultstring}",
                                      platform=self.spec.name, status=response.status)
            return PayloadRejectedError(f"SOAP fault {fault.faultcode}: {fault.faultstring}",
                                        platform=self.spec.name, status=response.status)
        if not response.ok:
            return super().classify_error(response)
        ok, code, message, operation = write_status(response)
        if ok:
            return None
        if code == "RCRD_DSNT_EXIST" and operation is not None and \
                soap.local(operation.tag) in ("getResponse", "deleteResponse"):
            return None  # the flow reads "not found" itself (see is_missing)
        error = classify_code(code, message, status=response.status, path=message,
                              platform=self.spec.name)
        return error or PayloadRejectedError(f"NetSuite rejected the write: {message}",
                                             platform=self.spec.name, vendor_code=code,
                                             status=response.status)

    # ------------------------------------------------------------------ requests

    @property
    def path(self) -> str:
        return f"/services/NetSuitePort_{self.version}"

    def _envelope(self, operation: str, content: etree._Element) -> etree._Element:
        ns = namespaces(self.version)
        op = etree.Element(soap.q(ns["platformMsgs"], operation),
                           nsmap={"platformMsgs": ns["platformMsgs"]})
        op.append(content)
        return soap.envelope([op], nsmap={"platformMsgs": ns["platformMsgs"],
                                          "platformCore": ns["platformCore"]})

    def upsert_request(self, record: str, external_id: str, body: dict[str, Any],
                       key: str, *, replace: str | None = None) -> PlatformRequest:
        # SOAP replaces a sublist sent in full unless replaceAll="false" (the default
        # for itemList is replaceAll="true") ⚠ — same effect as REST replace=item.
        element = record_element(record, body, external_id, self.version)
        return soap.soap_request(self.path, "upsert", self._envelope("upsert", element),
                                 purpose=f"upsert {record}", idempotency_key=key)

    def lookup_request(self, record: str, external_id: str) -> PlatformRequest:
        return soap.soap_request(self.path, "get", self._envelope(
            "get", base_ref(record, None, external_id, self.version)), purpose=f"find {record}")

    def deactivate_request(self, external_id: str) -> PlatformRequest:
        return self.upsert_request("customer", external_id, {"isInactive": True},
                                   key="deactivate")

    def delete_request(self, record: str, internal_id: str | None,
                       external_id: str, key: str) -> PlatformRequest:
        return soap.soap_request(self.path, "delete", self._envelope(
            "delete", base_ref(record, internal_id, external_id, self.version)),
            purpose=f"delete {record}", idempotency_key=key)

    def is_missing(self, response: PlatformResponse) -> bool:
        ok, code, _, _ = write_status(response)
        return not ok and code == "RCRD_DSNT_EXIST"

    def found_id(self, response: PlatformResponse) -> str | None:
        _, _, _, operation = write_status(response)
        record = soap.child(operation, "readResponse", "record")
        return record.get("internalId") if record is not None else None

    def written_id(self, response: PlatformResponse, record: str) -> str:
        _, _, _, operation = write_status(response)
        ref = soap.child(operation, "writeResponse", "baseRef")
        internal = ref.get("internalId") if ref is not None else None
        if not internal:
            raise PayloadRejectedError(f"NetSuite answered the {record} upsert without a "
                                       "baseRef internalId", platform=self.spec.name)
        return internal
