"""The sink error taxonomy: one exception tree whose classes decide what the runner does.

The runner never inspects status codes or vendor messages; it looks only at the class
of the error (or at :attr:`SinkError.action`), the way confluent-kafka's error flags
(retriable, fatal, txn-requires-abort) drive handling:

==========================  ===============================================================
``RetryableError``          retry with backoff (``RateLimitedError``: wait ``retry_after``)
``AuthExpiredError``        refresh credentials, then retry once
``PermanentError``          dead-letter the event, move the offset on
``ConfigurationError``      pause the tenant and alert; never dead-letter (the event is fine,
                            the connection or mapping is not)
``AlreadyAppliedError``     the vendor already holds the document: count it as success
==========================  ===============================================================

:func:`classify_http` does the generic, vendor-neutral part of the mapping from an
HTTP response to an error; platform modules refine it with vendor codes.
"""

from __future__ import annotations

import email.utils
import enum
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Action",
    "AlreadyAppliedError",
    "AuthExpiredError",
    "ConfigurationError",
    "PayloadRejectedError",
    "PermanentError",
    "RateLimitedError",
    "ReferenceMissingError",
    "RetryableError",
    "SinkError",
    "TransientError",
    "UnsupportedEventError",
    "classify_exception",
    "classify_http",
    "parse_retry_after",
]

#: How much of a vendor's response body an error message quotes.
BODY_EXCERPT_CHARS = 500


class Action(enum.StrEnum):
    """What the runner does with an event whose write raised this error."""

    RETRY = "retry"
    REFRESH_AUTH = "refresh_auth"
    DEAD_LETTER = "dead_letter"
    PAUSE_TENANT = "pause_tenant"
    SUCCESS = "success"


class SinkError(Exception):
    """Base of every error a sink raises about a write.

    ``reason`` is a sentence a bookkeeper could act on; ``platform`` names the sink;
    ``vendor_code`` is the platform's own error code where it sent one (kept so dead
    letters and alerts can be grouped by it); ``status`` is the HTTP status, if any.
    """

    action: Action = Action.DEAD_LETTER

    def __init__(
        self,
        reason: str,
        *,
        platform: str = "",
        vendor_code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.platform = platform
        self.vendor_code = vendor_code
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.action is Action.RETRY

    def __str__(self) -> str:
        prefix = f"{self.platform}: " if self.platform else ""
        suffix = f" (vendor code {self.vendor_code})" if self.vendor_code else ""
        return f"{prefix}{self.reason}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.reason!r}, platform={self.platform!r}, "
            f"vendor_code={self.vendor_code!r}, status={self.status!r})"
        )


class RetryableError(SinkError):
    """The same request may succeed later; retry with backoff."""

    action = Action.RETRY


class RateLimitedError(RetryableError):
    """The platform throttled us. ``retry_after`` (seconds) is the vendor's own hint."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        platform: str = "",
        vendor_code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(reason, platform=platform, vendor_code=vendor_code, status=status)
        self.retry_after = retry_after


class TransientError(RetryableError):
    """Timeouts, connection failures, 5xx: the platform or the network hiccuped."""


class AuthExpiredError(SinkError):
    """The access credential expired or was rejected; refresh it and retry once."""

    action = Action.REFRESH_AUTH


class PermanentError(SinkError):
    """This event can never be written as is: dead-letter it and move on."""

    action = Action.DEAD_LETTER


class PayloadRejectedError(PermanentError):
    """The platform rejected the document (validation error, business rule)."""


class ReferenceMissingError(PermanentError):
    """The document refers to something the platform does not hold (e.g. the invoice a
    payment applies to was never synced)."""


class UnsupportedEventError(PermanentError):
    """The platform cannot express this kind of event (e.g. a void where none exists)."""


class ConfigurationError(SinkError):
    """The tenant's connection or mapping is wrong (revoked grant, missing scope,
    unmapped account). Every event of the tenant would fail the same way, so the runner
    pauses the tenant instead of dead-lettering events that are themselves fine."""

    action = Action.PAUSE_TENANT


class AlreadyAppliedError(SinkError):
    """The platform says the document already exists; ``external_id`` is its id.

    Raised when an idempotent retry or a duplicate-number check reveals that an
    earlier attempt went through: the runner records the id and counts a success.
    """

    action = Action.SUCCESS

    def __init__(
        self,
        reason: str,
        *,
        external_id: str,
        platform: str = "",
        vendor_code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(reason, platform=platform, vendor_code=vendor_code, status=status)
        self.external_id = external_id


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    Returns ``None`` when the header is absent or unparseable (the caller then falls
    back to its own backoff), and never a negative number (a date in the past means
    "now").
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds) or math.isinf(seconds):
            return None
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; asctime dates parse as naive.
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _excerpt(body: bytes | str | Any) -> str:
    if isinstance(body, bytes):
        text = body.decode("utf-8", errors="replace")
    elif isinstance(body, str):
        text = body
    else:
        text = json.dumps(body, default=str)
    text = " ".join(text.split())
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[:BODY_EXCERPT_CHARS] + "…"
    return text


def classify_http(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str | Any = b"",
    *,
    platform: str = "",
    now: datetime | None = None,
) -> SinkError | None:
    """The vendor-neutral meaning of an HTTP response; ``None`` for success (< 400).

    401 → :class:`AuthExpiredError`; 403 → :class:`ConfigurationError` (missing scope or
    revoked access is the tenant's problem, not the event's); 408, 425 and 5xx →
    :class:`TransientError`; 429 → :class:`RateLimitedError` with ``Retry-After``
    parsed; every other 4xx → :class:`PayloadRejectedError`.
    """
    if status < 400:
        return None
    excerpt = _excerpt(body)
    detail = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if status == 401:
        return AuthExpiredError(
            f"credentials rejected ({detail})", platform=platform, status=status
        )
    if status == 403:
        return ConfigurationError(
            f"access forbidden; check the grant and its scopes ({detail})",
            platform=platform,
            status=status,
        )
    if status == 429:
        retry_after = parse_retry_after(_header(headers, "Retry-After"), now=now)
        hint = f"; retry after {retry_after:g}s" if retry_after is not None else ""
        return RateLimitedError(
            f"rate limited{hint} ({detail})",
            retry_after=retry_after,
            platform=platform,
            status=status,
        )
    if status in (408, 425) or status >= 500:
        return TransientError(
            f"platform unavailable or timed out ({detail})", platform=platform, status=status
        )
    return PayloadRejectedError(f"request rejected ({detail})", platform=platform, status=status)


def classify_exception(exc: BaseException, *, platform: str = "") -> SinkError | None:
    """The :class:`SinkError` for an exception raised while talking to a platform.

    Timeouts and connection failures (``httpx.TransportError``, ``TimeoutError``,
    ``ConnectionError``/``OSError``) are transient; a :class:`SinkError` passes through.
    Anything else returns ``None``: it is a bug, and the caller should let it surface
    rather than retry it forever or dead-letter a good event over it.
    """
    if isinstance(exc, SinkError):
        return exc
    # Imported here so that the taxonomy itself stays free of any I/O library.
    import httpx

    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return TransientError(f"request timed out ({name}: {exc})", platform=platform)
    if isinstance(exc, httpx.TransportError | OSError):
        return TransientError(f"connection failed ({name}: {exc})", platform=platform)
    return None
