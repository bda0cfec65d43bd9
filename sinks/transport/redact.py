"""Masking of credentials in log records.

Tokens leak through logs more often than through anything else: an exception that
quotes a request, a debug line with headers, a token endpoint's error body. The
:class:`RedactingFilter` rewrites every record that passes a handler, masking

* values after credential schemes (``Bearer``, ``Basic``, ``Zoho-oauthtoken``, ...),
* values of credential-named fields in JSON, form and header syntax
  (``refresh_token=...``, ``"client_secret": "..."``, ``oauth_signature="..."``),
* and any literal secret registered with :func:`register_secret` (the authenticators
  register theirs), whatever the syntax around it.

Install it on handlers (a filter on a logger does not see records propagated from
child loggers): :func:`install_redaction` does that for the root logger's handlers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

__all__ = [
    "MASK",
    "RedactingFilter",
    "SecretRedactor",
    "default_redactor",
    "install_redaction",
    "register_secret",
]

MASK = "***"

# Credential schemes followed by their value. "Basic" is matched case-sensitively and
# only with a long base64 value, and a bearer value must contain a digit or punctuation
# (real tokens do), so that prose such as "basic settings" or "bearer scheme" survives.
_SCHEME_RE = re.compile(
    r"(?i:\b(bearer|zoho-oauthtoken))(\s+)"
    r"(?=[A-Za-z0-9._~+/=\-]*[0-9._~+/=\-])[A-Za-z0-9._~+/=\-]{4,}"
    r"|\b(Basic)(\s+)[A-Za-z0-9+/]{12,}={0,2}"
)

_FIELDS = (
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "consumer_secret",
    "token_secret",
    "oauth_token",
    "oauth_signature",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "x-api-key",
    "session_id",
    "sessionid",
    "secret",
    "authorization_code",
)
# name, optional closing quote, separator (= : or ': '), optional opening quote, value.
_FIELD_RE = re.compile(
    r"(?i)(?P<key>[\"']?\b(?:" + "|".join(re.escape(f) for f in _FIELDS) + r")\b[\"']?"
    r"\s*[:=]\s*[\"']?)(?P<value>[^\"'&\s,;}\]]+)"
)


class SecretRedactor:
    """Masks credentials in text; thread-safe registry of literal secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        """Mask this exact value wherever it appears. Values shorter than 6 characters
        are ignored: masking them would garble ordinary text."""
        if secret and len(secret) >= 6:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _SCHEME_RE.sub(
            lambda m: f"{m.group(1) or m.group(3)}{m.group(2) or m.group(4)}{MASK}", text
        )
        return _FIELD_RE.sub(lambda m: f"{m.group('key')}{MASK}", text)


_DEFAULT = SecretRedactor()


def default_redactor() -> SecretRedactor:
    """The process-wide redactor used by :class:`RedactingFilter` by default."""
    return _DEFAULT


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` in every log record from now on."""
    _DEFAULT.add(secret)


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites records with credentials masked; never drops one."""

    def __init__(self, redactor: SecretRedactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or _DEFAULT

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: still redact what we have
            message = str(record.msg)
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


def install_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add one :class:`RedactingFilter` to every handler of ``logger`` (root by default).
    Idempotent: handlers that already have one are left alone."""
    target = logger or logging.getLogger()
    flt = RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt
