"""Sage Intacct XML API answers → the sink error taxonomy.

Intacct reports almost everything inside **HTTP 200**: ``control/status`` failure
(bad sender, re-used ``controlid``), ``operation/authentication/status`` failure
(session invalid or expired) and per-function ``result/status`` failure, each with
``errormessage/error/errorno``. Codes marked [A] are assumed (no public table lists
them; the sandbox uses them and message fallbacks back them up — ⚠ unverified
without credentials); [K] are codes integrators commonly report.

Two outcomes are *not* errors here because the flow resolves them itself (it looks
the record up): :data:`DUPLICATE_CONTROL_ID` and :data:`ALREADY_EXISTS`. See
:func:`flow_handled`.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    UnsupportedEventError,
    classify_http,
    parse_retry_after,
)
from sinks.transport.xmlapi import XmlError, XmlResponse, parse_response

__all__ = ["CODES", "flow_handled", "intacct_error", "kind_of"]

PLATFORM = "sage-intacct"

DUPLICATE_CONTROL_ID = "XL03000009"
ALREADY_EXISTS = "BL01001973"
CUSTOMER_INACTIVE = "BL03000130"
SESSION_INVALID = "XL03000006"
PAID_INVOICE = "BL03002147"
#: Why a void of a (partly) paid invoice is dead-lettered: a limitation, not a bad payload.
PAID_VOID = ("Sage Intacct reverses only invoices without payments or credits applied "
             f"({PAID_INVOICE}); reverse the payments and credit adjustments in Intacct, "
             "then replay the void from the dead-letter topic")

#: errorno → (error class, meaning).
CODES: Mapping[str, tuple[type[SinkError], str]] = {
    SESSION_INVALID: (AuthExpiredError, "session invalid or expired"),  # [K]
    "XL03000002": (ConfigurationError, "sender id not authorised for this company"),  # [A]
    "XL03000130": (RateLimitedError, "too many concurrent requests for the company's "
                   "performance tier"),  # [A]
    "PL04000055": (PayloadRejectedError, "the request failed validation"),  # [A]
    "BL03000018": (ReferenceMissingError, "a referenced record does not exist"),  # [A]
    "BL34000061": (ConfigurationError, "the posting date is in a closed period; reopen "
                   "the period in Intacct or change the event date"),  # [A]
    PAID_INVOICE: (UnsupportedEventError, PAID_VOID),  # [A]
    CUSTOMER_INACTIVE: (ConfigurationError, "the customer is inactive in Intacct"),  # [A]
    "XL03000000": (TransientError, "Intacct internal error"),  # [A]
}


def kind_of(error: XmlError) -> str:
    """A code for ``error``, recognising known messages when the code is unknown."""
    if error.errorno in CODES or error.errorno in (DUPLICATE_CONTROL_ID, ALREADY_EXISTS):
        return error.errorno
    text = error.message.lower()
    if "controlid" in text and ("already" in text or "used" in text):
        return DUPLICATE_CONTROL_ID
    if "already exists" in text:
        return ALREADY_EXISTS
    if "session" in text and ("invalid" in text or "expired" in text):
        return SESSION_INVALID
    if "period" in text and "closed" in text:
        return "BL34000061"
    if "inactive" in text and "customer" in text:
        return CUSTOMER_INACTIVE
    return error.errorno


def flow_handled(parsed: XmlResponse) -> str | None:
    """``DUPLICATE_CONTROL_ID`` / ``ALREADY_EXISTS`` / ``CUSTOMER_INACTIVE`` when that
    is the answer's only problem (the flow looks up / reactivates), else ``None``."""
    kinds = {kind_of(e) for e in parsed.errors}
    for special in (DUPLICATE_CONTROL_ID, ALREADY_EXISTS, CUSTOMER_INACTIVE):
        if kinds == {special}:
            return special
    return None


def error_of(parsed: XmlResponse, response: PlatformResponse) -> SinkError:
    """The sink error for a failed answer (first error decides)."""
    errors = parsed.errors
    first = errors[0] if errors else XmlError("", "failure without an error message")
    code = kind_of(first)
    reason = "; ".join(f"{e.errorno}: {e.message}" for e in errors) or first.message
    common: dict[str, Any] = {"platform": PLATFORM, "vendor_code": code or None,
                              "status": response.status}
    if parsed.auth_status == "failure" and code not in CODES:
        return AuthExpiredError(f"authentication failed: {reason}", **common)
    known = CODES.get(code)
    if known is None:
        return PayloadRejectedError(f"Intacct rejected the request: {reason}", **common)
    cls, meaning = known
    if cls is RateLimitedError:
        return RateLimitedError(f"{meaning}: {reason}",
                                retry_after=parse_retry_after(response.headers.get("retry-after")),
                                **common)
    return cls(f"{meaning}: {reason}", **common)


def intacct_error(response: PlatformResponse, *, handled: bool = True) -> SinkError | None:
    """The error ``response`` stands for, or ``None`` (success, or — with ``handled`` —
    an answer the flow resolves itself, see :func:`flow_handled`)."""
    parsed = parse_response(response.body)
    if parsed is None:
        return classify_http(max(response.status, 400) if response.status < 300 else
                             response.status, response.headers, response.body,
                             platform=PLATFORM)
    if response.status >= 300 and response.status != 429:
        generic = classify_http(response.status, response.headers, response.body,
                                platform=PLATFORM)
        if generic is not None and generic.retryable:
            return generic
    if parsed.ok:
        return None
    if handled and flow_handled(parsed) is not None:
        return None
    error = error_of(parsed, response)
    if response.status == 429 and not isinstance(error, RateLimitedError):
        generic = classify_http(429, response.headers, response.body, platform=PLATFORM)
        assert generic is not None
        return generic
    return error
