"""Core sandbox machinery: limits, token rotation grace, duplicate counting."""

from __future__ import annotations

from decimal import Decimal

from sinks.sandbox.core import (
    DocumentSummary,
    ManualClock,
    RateLimiter,
    TokenAuthority,
    Window,
    build_report,
)


def test_rate_limiter_retry_after_and_concurrency() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, [Window("minute", 60, 2)], max_concurrent=5)
    assert limiter.acquire("t") is None and limiter.acquire("t") is None
    clock.advance(20)
    throttle = limiter.acquire("t")
    assert throttle is not None and throttle.problem == "minute" and throttle.retry_after == 40
    limiter.release("t")
    limiter.release("t")
    clock.advance(41)
    assert limiter.acquire("t") is None


def test_refresh_grace_period() -> None:
    clock = ManualClock()
    tokens = TokenAuthority(clock, "x", 1800, reuse_grace_seconds=30)
    pair = tokens.issue(["t"])
    assert tokens.refresh(pair.refresh_token) is not None
    assert tokens.refresh(pair.refresh_token) is not None  # within grace
    clock.advance(31)
    assert tokens.refresh(pair.refresh_token) is None


def test_duplicates_count_each_extra_document_once() -> None:
    def doc(ident: str, seq: int) -> DocumentSummary:
        return DocumentSummary("invoice", ident, "N-1", "R-1", "c", "AUTHORISED",
                               Decimal(10), Decimal(10), None, seq)

    report = build_report("p", "t", [doc("a", 1), doc("b", 2)], [], [], [])
    assert report["duplicates"]["count"] == 1
    assert {g["field"] for g in report["duplicates"]["groups"]} == {"number", "reference"}
