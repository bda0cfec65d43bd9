"""QuickBooks Online fault codes → the sink error taxonomy.

QBO answers ``{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}}``
(and, for auth and throttling, a lower-case ``fault``/``error`` variant). The table
below is the whole policy; everything not in it falls back to the generic HTTP rules.

Decisions worth knowing:

* **6210 "account period has closed"** → :class:`ConfigurationError`: the books are
  locked up to a date; every event dated in the closed period fails the same way, and
  only the bookkeeper can reopen the period (or decide to post elsewhere). The event is
  fine, so pausing the tenant — not dead-lettering — is right.
* **6140 duplicate DocNumber** is not classified here: the flow handles it, because
  it must first check that the document holding the number is ours.
* **5010 stale object** is retried once inside the flow with a fresh SyncToken; if it
  escapes the flow it is a :class:`TransientError` (someone is editing concurrently).
* **610 object not found / inactive** → :class:`ReferenceMissingError` unless the flow
  reactivated the customer first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sinks.core.contract import PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    SinkError,
    TransientError,
    classify_http,
    parse_retry_after,
)
from sinks.platforms.quickbooks.spec import NAME

__all__ = ["QboFault", "classify", "faults_of"]

STALE = "5010"
DUPLICATE_NAME = "6240"
DUPLICATE_DOC_NUMBER = "6140"
PERIOD_CLOSED = "6210"
NOT_FOUND = "610"
AUTH_FAILED = "3200"
AUTH_FORBIDDEN = "3100"
THROTTLED = "003001"
SYSTEM_FAILURE = "10000"


@dataclass(frozen=True)
class QboFault:
    code: str
    message: str
    detail: str
    element: str


def faults_of(body: Any) -> list[QboFault]:
    """The errors in a QBO fault body (either spelling), or ``[]``."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body or b"null")
        except ValueError:
            return []
    if not isinstance(body, dict):
        return []
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, dict):
        return []
    errors = fault.get("Error") or fault.get("error") or []
    found = []
    for err in errors if isinstance(errors, list) else []:
        if isinstance(err, dict):
            found.append(QboFault(
                str(err.get("code") or ""), str(err.get("Message") or err.get("message") or ""),
                str(err.get("Detail") or err.get("detail") or ""), str(err.get("element") or "")))
    return found


def _text(fault: QboFault) -> str:
    return f"{fault.message}: {fault.detail}".strip(": ")


def classify(response: PlatformResponse) -> SinkError | None:
    """The error a QBO response stands for, or ``None`` on success."""
    if response.status < 400:
        return None
    faults = faults_of(response.body)
    if not faults:
        return classify_http(response.status, response.headers, response.body, platform=NAME)
    first = faults[0]
    code, reason = first.code, _text(first)
    kw: dict[str, Any] = {"platform": NAME, "vendor_code": code, "status": response.status}
    if code == AUTH_FAILED or response.status == 401:
        return AuthExpiredError(f"access token rejected: {reason}", **kw)
    if code == AUTH_FORBIDDEN or response.status == 403:
        return ConfigurationError(f"app not authorised for this company: {reason}", **kw)
    if code == THROTTLED or response.status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RateLimitedError(f"throttled: {reason}", retry_after=retry_after, **kw)
    if code == PERIOD_CLOSED:
        return ConfigurationError(
            f"the books are closed for this date; reopen the period or change the closing "
            f"date in QuickBooks, then resume the tenant ({reason})", **kw)
    if code == STALE:
        return TransientError(f"document changed concurrently: {reason}", **kw)
    if code == NOT_FOUND:
        return ReferenceMissingError(f"referenced object missing or inactive: {reason}", **kw)
    if response.status >= 500 or code == SYSTEM_FAILURE:
        return TransientError(f"QuickBooks system failure: {reason}", **kw)
    details = "; ".join(_text(f) + (f" [{f.element}]" if f.element else "") for f in faults)
    return PayloadRejectedError(f"rejected: {details}", **kw)
