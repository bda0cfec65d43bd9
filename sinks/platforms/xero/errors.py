"""Xero error bodies → the sink error taxonomy.

Xero reports validation problems as ``{"ErrorNumber": 10, "Type":
"ValidationException", "Elements": [{…, "ValidationErrors": [{"Message"}]}]}`` with
HTTP 400, or — with ``?summarizeErrors=false`` — as HTTP **200** whose elements carry
``HasErrors``/``HasValidationErrors`` and their ``ValidationErrors``. Both become a
:class:`PayloadRejectedError` quoting every message, except:

* a **lock date** message (the document date is in a period the organisation has
  locked) → :class:`ConfigurationError`: the tenant's bookkeeper must move the lock
  date; every event in that period would fail the same way, so the tenant is paused;
* 429 keeps Xero's ``X-Rate-Limit-Problem`` (minute/day/concurrent) in the reason, and
  ``Retry-After`` in ``retry_after``; the transport waits it out.
"""

from __future__ import annotations

import json
from typing import Any

from sinks.core.contract import PlatformResponse
from sinks.core.errors import (
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    SinkError,
    classify_http,
    parse_retry_after,
)
from sinks.platforms.xero.spec import NAME

__all__ = ["classify", "validation_errors"]

COLLECTIONS = ("Invoices", "CreditNotes", "Payments", "Contacts", "Allocations",
               "BankTransactions")
LOCK_DATE = "lock date"
ARCHIVED = "has been archived"
NAME_TAKEN = "is already assigned to another contact"


def _body(response: PlatformResponse) -> Any:
    try:
        return json.loads(response.body or b"null")
    except ValueError:
        return None


def validation_errors(body: Any) -> list[str]:
    """Every ``ValidationErrors[].Message`` in a Xero response body, either shape."""
    if not isinstance(body, dict):
        return []
    elements = list(body.get("Elements") or [])
    for name in COLLECTIONS:
        elements += [e for e in body.get(name) or [] if isinstance(e, dict)
                     and (e.get("HasErrors") or e.get("HasValidationErrors")
                          or e.get("ValidationErrors"))]
    messages = [str(err.get("Message")) for element in elements if isinstance(element, dict)
                for err in element.get("ValidationErrors") or [] if isinstance(err, dict)]
    if not messages and body.get("Type") == "ValidationException" and body.get("Message"):
        messages.append(str(body["Message"]))
    return messages


def classify(response: PlatformResponse) -> SinkError | None:
    """The error a Xero response stands for, or ``None`` on success."""
    body = _body(response)
    messages = validation_errors(body)
    if response.status < 400 and not messages:
        return None
    kw: dict[str, Any] = {"platform": NAME, "status": response.status}
    if response.status == 429:
        problem = response.headers.get("x-rate-limit-problem", "unknown")
        return RateLimitedError(
            f"rate limited ({problem} limit)",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            vendor_code=f"rate-limit:{problem}", **kw)
    if messages:
        text = "; ".join(messages)
        number = str(body.get("ErrorNumber")) if isinstance(body, dict) and \
            body.get("ErrorNumber") is not None else None
        if any(LOCK_DATE in m.lower() for m in messages):
            return ConfigurationError(
                f"the organisation's books are locked for this date; move the lock date in "
                f"Xero (Settings → Advanced → Financial settings), then resume the tenant "
                f"({text})", vendor_code=number, **kw)
        return PayloadRejectedError(f"rejected: {text}", vendor_code=number, **kw)
    return classify_http(response.status, response.headers, response.body, platform=NAME)
