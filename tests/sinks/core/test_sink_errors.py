"""The error taxonomy and the generic HTTP classification."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.core.errors import (
    Action,
    AlreadyAppliedError,
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    PermanentError,
    RateLimitedError,
    ReferenceMissingError,
    RetryableError,
    SinkError,
    TransientError,
    UnsupportedEventError,
    classify_exception,
    classify_http,
    parse_retry_after,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_hierarchy_and_actions() -> None:
    assert issubclass(RateLimitedError, RetryableError)
    assert issubclass(TransientError, RetryableError)
    for cls in (PayloadRejectedError, ReferenceMissingError, UnsupportedEventError):
        assert issubclass(cls, PermanentError)
        assert cls("x").action is Action.DEAD_LETTER
    assert TransientError("x").retryable
    assert not PayloadRejectedError("x").retryable
    assert AuthExpiredError("x").action is Action.REFRESH_AUTH
    assert ConfigurationError("x").action is Action.PAUSE_TENANT
    assert not issubclass(ConfigurationError, PermanentError)  # never dead-lettered
    dup = AlreadyAppliedError("duplicate", external_id="145", platform="xero")
    assert dup.action is Action.SUCCESS and dup.external_id == "145"


def test_error_carries_reason_platform_and_vendor_code() -> None:
    err = PayloadRejectedError("Invalid customer", platform="quickbooks-online", vendor_code="6000")
    assert str(err) == "quickbooks-online: Invalid customer (vendor code 6000)"
    assert err.reason == "Invalid customer"
    assert "vendor_code='6000'" in repr(err)
    assert str(SinkError("plain")) == "plain"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AuthExpiredError),
        (403, ConfigurationError),
        (408, TransientError),
        (425, TransientError),
        (429, RateLimitedError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (400, PayloadRejectedError),
        (404, PayloadRejectedError),
        (409, PayloadRejectedError),
        (422, PayloadRejectedError),
    ],
)
def test_classify_http_status(status: int, expected: type[SinkError]) -> None:
    err = classify_http(status, {}, b'{"Fault": "x"}', platform="xero")
    assert type(err) is expected
    assert err is not None and err.platform == "xero" and err.status == status
    assert str(status) in err.reason


@pytest.mark.parametrize("status", [200, 201, 204, 302])
def test_classify_http_success_is_none(status: int) -> None:
    assert classify_http(status, {}, b"") is None


def test_429_retry_after_seconds_and_date() -> None:
    err = classify_http(429, {"Retry-After": "17"}, b"", now=NOW)
    assert isinstance(err, RateLimitedError) and err.retry_after == 17.0
    err = classify_http(429, {"retry-after": "Sat, 01 Mar 2025 12:01:30 GMT"}, b"", now=NOW)
    assert isinstance(err, RateLimitedError) and err.retry_after == 90.0
    err = classify_http(429, {}, b"")
    assert isinstance(err, RateLimitedError) and err.retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # in the past → now
        ("Sun, 02 Mar 2025 12:00:00 GMT", 86400.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises_nor_goes_negative(value: str) -> None:
    result = parse_retry_after(value, now=NOW)
    assert result is None or result >= 0


def test_long_body_is_excerpted() -> None:
    err = classify_http(400, {}, b"x" * 10_000)
    assert err is not None and len(err.reason) < 700


def test_classify_exception() -> None:
    req = httpx.Request("GET", "https://x.test/")
    assert isinstance(classify_exception(httpx.ReadTimeout("slow", request=req)), TransientError)
    assert isinstance(
        classify_exception(httpx.ConnectError("refused", request=req)), TransientError
    )
    assert isinstance(classify_exception(ConnectionResetError()), TransientError)
    same = PayloadRejectedError("x")
    assert classify_exception(same) is same
    assert classify_exception(KeyError("bug")) is None
