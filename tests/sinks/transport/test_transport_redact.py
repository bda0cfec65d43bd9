"""Credentials never reach log output."""

from __future__ import annotations

import io
import logging

import pytest
from pydantic import SecretStr

from sinks.transport.auth import ApiKeyAuth
from sinks.transport.redact import MASK, RedactingFilter, SecretRedactor, install_redaction


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer eyJhbGciOi.J9x-_y", "eyJhbGciOi.J9x-_y"),
        ("headers={'authorization': 'Bearer abc.def.ghi'}", "abc.def.ghi"),
        ("Zoho-oauthtoken 1000.abcdef.123456", "1000.abcdef.123456"),
        ("Authorization: Basic Y2lkOmNzZWNyZXQ=", "Y2lkOmNzZWNyZXQ="),
        ("grant_type=refresh_token&refresh_token=RT-998877&client_id=x", "RT-998877"),
        ('{"access_token": "at-55555", "expires_in": 1800}', "at-55555"),
        ('{"refresh_token":"rt-77777"}', "rt-77777"),
        ("client_secret=s3cr3t-value&client_id=cid", "s3cr3t-value"),
        (
            'OAuth realm="1_SB1", oauth_token="tok-123456", oauth_signature="sig%3D%3D"',
            "tok-123456",
        ),
        ('OAuth realm="1_SB1", oauth_token="tok-123456", oauth_signature="sig%3D%3D"', "sig%3D%3D"),
        ("password: hunter2-long", "hunter2-long"),
    ],
)
def test_patterns(text: str, secret: str) -> None:
    out = SecretRedactor().redact(text)
    assert secret not in out and MASK in out


@pytest.mark.parametrize(
    "text",
    [
        "xero/acme: create invoice failed (HTTP 400: Invalid tax code); retry 2 in 1.50s",
        "token endpoint said the bearer scheme is fine; basic settings unchanged",
        "refresh token for tenant 'acme' rotated (vendor code 6000)",
    ],
)
def test_ordinary_text_untouched(text: str) -> None:
    assert SecretRedactor().redact(text) == text


def test_registered_literal_secret_masked_anywhere() -> None:
    r = SecretRedactor(["weird:secret/value"])
    assert r.redact("url=https://x.test/?k=weird%3A&raw weird:secret/value end") == (
        "url=https://x.test/?k=weird%3A&raw *** end"
    )


def make_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_filter_masks_args_exceptions_and_authenticator_secrets() -> None:
    logger, stream = make_logger("test.redact.filter")
    ApiKeyAuth(SecretStr("apikey-zz-918273"), header="X-Key")  # registers its key
    logger.info("sending %s with %s", {"X-Key": "apikey-zz-918273"}, "Bearer tok.en-1")
    try:
        raise ValueError("token endpoint said refresh_token=rt-abcdef is invalid")
    except ValueError:
        logger.exception("refresh failed")
    out = stream.getvalue()
    assert "apikey-zz-918273" not in out
    assert "tok.en-1" not in out
    assert "rt-abcdef" not in out
    assert "refresh failed" in out and "ValueError" in out


def test_filter_on_child_logger_records_via_installed_handler() -> None:
    parent = logging.getLogger("test.redact.parent")
    stream = io.StringIO()
    parent.handlers[:] = [logging.StreamHandler(stream)]
    parent.propagate = False
    parent.setLevel(logging.INFO)
    install_redaction(parent)
    install_redaction(parent)  # idempotent
    assert sum(isinstance(f, RedactingFilter) for f in parent.handlers[0].filters) == 1
    logging.getLogger("test.redact.parent.child").info("client_secret=abc-123-def")
    assert "abc-123-def" not in stream.getvalue()
