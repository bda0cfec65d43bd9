"""Odoo server exceptions → the sink's error taxonomy.

JSON-2 reports errors with HTTP statuses and a body naming the Python exception
(``{"name": "odoo.exceptions.UserError", "message": ...}``); ``execute_kw`` reports
the same exception inside a 200 (JSON-RPC ``error.data.name``, XML-RPC ``<fault>``).
:func:`odoo_error` reads either through :func:`sinks.transport.rpc.rpc_fault`.

* ``UserError``/``ValidationError`` mentioning a lock date → :class:`ConfigurationError`
  (the accountant closed the period: pause the tenant until it is reopened).
* other ``UserError``/``ValidationError`` → :class:`PayloadRejectedError` (dead letter,
  with Odoo's message).
* ``MissingError`` → :class:`ReferenceMissingError` (a record we know was deleted).
* ``AccessError`` / unknown model or method (the Invoicing app missing) →
  :class:`ConfigurationError`; ``AccessDenied`` / ``SessionExpiredException`` →
  :class:`AuthExpiredError`.
* PostgreSQL serialisation failures / lock timeouts → :class:`TransientError`.
* anything else: generic HTTP classification (429 → rate limited, 5xx → transient).
"""

from __future__ import annotations

from sinks.core.contract import PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    ReferenceMissingError,
    SinkError,
    TransientError,
    classify_http,
)
from sinks.transport.rpc import rpc_fault

__all__ = ["LOCK_MARKERS", "odoo_error"]

PLATFORM = "odoo"
#: Phrases of Odoo's lock-date errors (17: "prior to and inclusive of the lock date",
#: 18+: "... lock date"; both name it).
LOCK_MARKERS = ("lock date", "locked period")
_TRANSIENT = ("SerializationFailure", "LockNotAvailable", "TransactionRollbackError",
              "could not serialize access")


def odoo_error(response: PlatformResponse) -> SinkError | None:
    fault = rpc_fault(response)
    if fault is None:
        return classify_http(response.status, response.headers, response.body,
                             platform=PLATFORM)
    name, message = fault.short_name, fault.message
    reason = f"Odoo {name}: {message}"
    status = fault.status
    if name in ("UserError", "ValidationError", "RedirectWarning"):
        if any(marker in message.lower() for marker in LOCK_MARKERS):
            return ConfigurationError(
                f"the accounting period is locked in Odoo; reopen it or move the lock "
                f"date ({message})", platform=PLATFORM, vendor_code=name, status=status)
        return PayloadRejectedError(reason, platform=PLATFORM, vendor_code=name, status=status)
    if name == "MissingError":
        return ReferenceMissingError(reason, platform=PLATFORM, vendor_code=name, status=status)
    if name in ("AccessDenied", "SessionExpiredException") or status == 401:
        return AuthExpiredError(reason, platform=PLATFORM, vendor_code=name, status=status)
    if name == "AccessError" or status == 403:
        return ConfigurationError(f"the API user lacks access rights ({message})",
                                  platform=PLATFORM, vendor_code=name, status=status)
    if name in ("NotFound",) or status == 404:
        return ConfigurationError(
            f"Odoo has no such model or method; is the Invoicing app installed? ({message})",
            platform=PLATFORM, vendor_code=name, status=status)
    if any(marker in name or marker in message for marker in _TRANSIENT):
        return TransientError(reason, platform=PLATFORM, vendor_code=name, status=status)
    generic = classify_http(status if status >= 400 else 500, response.headers,
                            response.body, platform=PLATFORM)
    if generic is not None:
        generic.vendor_code = name
    return generic
