"""Webhook signatures: HMAC-SHA256 over ``"{timestamp}.{body}"`` with the tenant's secret.

Headers (sender side):

- ``X-Ledgerstream-Timestamp``: Unix seconds when the request was signed;
- ``X-Ledgerstream-Signature``: ``v1=<hex digest>``; several comma-separated ``v1=``
  values are allowed so a sender can sign with the old and new secret while rotating.

Signing the timestamp with the body lets the receiver refuse stale requests (more than
five minutes off, either way) so a captured request cannot be replayed later; replays
within the window are caught by remembering the signatures already accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

TIMESTAMP_HEADER = "X-Ledgerstream-Timestamp"
SIGNATURE_HEADER = "X-Ledgerstream-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The request is not authentic; the message says why (never which secret)."""


class StaleTimestampError(SignatureError):
    pass


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}.{body}"``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers a sender adds (used by tests and by anyone writing a sender)."""
    return {TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: f"{SCHEME}={signature(secret, timestamp, body)}"}


def verify(secrets: Sequence[str], timestamp_header: str | None,
           signature_header: str | None, body: bytes, *, now: float,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> str:
    """Return the matching signature (the replay-store key) or raise SignatureError."""
    if not timestamp_header or not signature_header:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not Unix seconds") from None
    if abs(now - timestamp) > tolerance_s:
        raise StaleTimestampError(
            f"timestamp {timestamp} is {int(now - timestamp)}s away from now; "
            f"the limit is {tolerance_s}s")
    offered = [part.strip().partition("=") for part in signature_header.split(",")]
    candidates = [value for scheme, sep, value in offered if sep and scheme == SCHEME]
    if not candidates:
        raise SignatureError(f"{SIGNATURE_HEADER} has no {SCHEME}= signature")
    for secret in secrets:
        expected = signature(secret, timestamp, body)
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate):
                return candidate
    raise SignatureError("signature does not match the body")
