"""JSON logs parse line by line and never carry a credential."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ledgerstream.observability.logging import setup_logging
from sinks.transport.redact import register_secret


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    buffer = io.StringIO()
    setup_logging("sink-xero", level="DEBUG", stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_is_a_json_object_with_the_standard_fields(stream: io.StringIO) -> None:
    log = logging.getLogger("ledgerstream.test")
    log.info("wrote %d invoices for %s", 3, "tenant-1", extra={"tenant_id": "tenant-1",
                                                                 "batch": [1, 2]})
    log.warning("plain")
    first, second = lines(stream)
    assert first["message"] == "wrote 3 invoices for tenant-1"
    assert first["level"] == "INFO" and second["level"] == "WARNING"
    assert first["component"] == "sink-xero"
    assert first["logger"] == "ledgerstream.test"
    assert first["tenant_id"] == "tenant-1" and first["batch"] == [1, 2]
    assert str(first["timestamp"]).endswith("Z") and "T" in str(first["timestamp"])


def test_bearer_and_refresh_tokens_are_masked(stream: io.StringIO) -> None:
    bearer = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"
    refresh = "AB11f9a8b7c6d5e4f3a2b1c0RefreshTok"
    log = logging.getLogger("ledgerstream.test")
    log.error("request failed: Authorization: Bearer %s", bearer)
    log.error("token endpoint said %s", f'{{"refresh_token": "{refresh}", "expires_in": 3600}}')
    log.info("form body grant_type=refresh_token&refresh_token=%s&client_id=abc", refresh)
    log.info("retrying", extra={"headers": {"Authorization": f"Bearer {bearer}"}})
    text = stream.getvalue()
    assert bearer not in text and refresh not in text
    records = lines(stream)
    assert "Bearer ***" in str(records[0]["message"])
    assert '"refresh_token": "***"' in str(records[1]["message"])
    assert records[3]["headers"] == {"Authorization": "Bearer ***"}


def test_registered_secrets_and_tracebacks_are_masked(stream: io.StringIO) -> None:
    secret = "s3cr3t-client-value-42"
    register_secret(secret)
    log = logging.getLogger("ledgerstream.test")
    try:
        raise RuntimeError(f"login failed with {secret}")
    except RuntimeError:
        log.exception("sending")
    (record,) = lines(stream)
    assert secret not in stream.getvalue()
    assert "RuntimeError: login failed with ***" in str(record["exception"])


def test_text_format_is_still_redacted() -> None:
    root = logging.getLogger()
    saved = list(root.handlers)
    buffer = io.StringIO()
    try:
        setup_logging("relay", json_format=False, stream=buffer)
        logging.getLogger("x").warning("Bearer abc123.def456-ghi")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
    assert "Bearer ***" in buffer.getvalue() and "relay" in buffer.getvalue()


def test_per_request_library_logs_are_quiet_unless_debugging() -> None:
    import io
    import logging

    from ledgerstream.observability.logging import setup_logging

    out = io.StringIO()
    setup_logging("sink-test", stream=out)
    logging.getLogger("httpx").info("HTTP Request: POST https://api.test/invoice 200")
    logging.getLogger("ledgerstream.sink").info("wrote invoice 7")
    assert "HTTP Request" not in out.getvalue() and "wrote invoice 7" in out.getvalue()
    setup_logging("sink-test", level="DEBUG", stream=out)
    logging.getLogger("httpx").info("HTTP Request: GET https://api.test/x 200")
    assert "HTTP Request: GET" in out.getvalue()
