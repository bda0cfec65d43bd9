"""Reckon One error bodies → the sink error taxonomy.

Two shapes reach a client:

* Reckon's own ``ErrorResponse`` (spec: ``{"code": <HTTP status>, "message": "...",
  "errors": [{"location": "...", "message": "..."}]}``), on 400/401/403/404;
* Azure API Management's gateway answers, ``{"statusCode": <int>, "message": "..."}``:
  a missing or invalid subscription key (401), a call-volume quota (403 "Out of call
  volume quota. Quota will be replenished in hh:mm:ss.") and the rate limit (429
  "Rate limit is exceeded. Try again in N seconds." + ``Retry-After``). These are
  APIM's documented default policy messages; that Reckon keeps the defaults is ⚠
  unverified without a subscription.

Reckon publishes no error codes besides the HTTP status, so the vendor-specific rules
below read the message; anything else falls back to :func:`classify_http` (a 404
becomes :class:`ReferenceMissingError`: every 404 of this API names a book or record
that does not exist).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sinks.core.errors import (
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    SinkError,
    classify_http,
    parse_retry_after,
)

__all__ = ["detail", "reckon_error"]

PLATFORM = "reckon-one"

_TRY_AGAIN = re.compile(r"try again in (\d+) seconds?", re.IGNORECASE)
_REPLENISHED = re.compile(r"replenished in (\d+):(\d{2}):(\d{2})", re.IGNORECASE)


def _body(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def detail(data: Mapping[str, Any] | None) -> str:
    """``message`` plus every ``errors[].location: message`` of an ErrorResponse."""
    if not data:
        return ""
    parts = [str(data.get("message") or "")]
    for item in data.get("errors") or []:
        if isinstance(item, dict):
            where = item.get("location")
            parts.append(f"{where}: {item.get('message')}" if where else str(item.get("message")))
    return "; ".join(p for p in parts if p)


def _gateway(status: int, headers: Mapping[str, str], message: str) -> SinkError | None:
    """APIM's own answers (``statusCode`` bodies)."""
    lowered = message.lower()
    common: dict[str, Any] = {"platform": PLATFORM, "status": status, "vendor_code": "apim"}
    if status == 401 and "subscription key" in lowered:
        return ConfigurationError(
            f"the API gateway rejected the subscription key (Ocp-Apim-Subscription-Key): "
            f"{message}", **common)
    if status == 403 and "quota" in lowered:
        found = _REPLENISHED.search(message)
        wait = (int(found[1]) * 3600 + int(found[2]) * 60 + int(found[3])) if found else None
        return RateLimitedError(f"API call quota exhausted: {message}",
                                retry_after=float(wait) if wait is not None else None, **common)
    if status == 429:
        retry = parse_retry_after(headers.get("retry-after"))
        if retry is None:
            found = _TRY_AGAIN.search(message)
            retry = float(found[1]) if found else None
        return RateLimitedError(f"rate limited by the API gateway: {message}",
                                retry_after=retry, **common)
    return None


def reckon_error(status: int, headers: Mapping[str, str], raw: bytes) -> SinkError | None:
    """The error a Reckon One response stands for, or ``None`` for success."""
    if status < 400:
        return None
    data = _body(raw)
    headers = {k.lower(): v for k, v in headers.items()}
    if data is not None and "statusCode" in data:
        found = _gateway(status, headers, str(data.get("message", "")))
        if found is not None:
            return found
    text = detail(data)
    lowered = text.lower()
    common: dict[str, Any] = {"platform": PLATFORM, "status": status}
    if status == 400 and "lock" in lowered and "date" in lowered:
        # A closed period blocks every back-dated event alike: the bookkeeper must act.
        return ConfigurationError(f"the book is locked for this date: {text}", **common)
    if status == 400 and "ledger account" in lowered and "not" in lowered:
        return ConfigurationError(f"a mapped ledger account is unknown or inactive in the "
                                  f"book (check mapping.income_accounts/deposit_accounts): "
                                  f"{text}", **common)
    if status == 400:
        return PayloadRejectedError(f"Reckon One rejected the request: {text}", **common)
    if status == 404:
        return ReferenceMissingError(f"Reckon One has no such book or record: {text}",
                                     **common)
    return classify_http(status, headers, raw, platform=PLATFORM)
