"""Token-bucket arithmetic with a fake clock, pauses, concurrency slots."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.core.contract import RateLimitPolicy, RateWindow
from sinks.core.errors import RateLimitedError, TransientError
from sinks.transport.ratelimit import (
    BucketState,
    ConcurrencyLimiter,
    InMemoryRateLimiter,
    take,
)

XERO = RateLimitPolicy((RateWindow(60, 60), RateWindow(5000, 86400)), concurrency=5)
QBO = RateLimitPolicy((RateWindow(500, 60),), concurrency=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_starts_full_then_refills_at_rate() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter({"xero": XERO}, clock=clock)
    assert all(limiter.reserve("xero", "t1") == 0 for _ in range(60))
    wait = limiter.reserve("xero", "t1")
    assert wait == pytest.approx(1.0)  # 60/min → one token per second
    clock.now += 0.5
    assert limiter.reserve("xero", "t1") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.reserve("xero", "t1") == 0
    assert limiter.reserve("xero", "t1") == pytest.approx(1.0)
    # another tenant has its own budget
    assert limiter.reserve("xero", "t2") == 0


def test_daily_window_binds_after_minute_windows_refill() -> None:
    policy = RateLimitPolicy((RateWindow(60, 60), RateWindow(100, 86400)))
    state = BucketState(refilled_at=0.0)
    now = 0.0
    granted = 0
    for _ in range(10_000):
        state, wait = take(policy, state, now)
        if wait:
            now += wait
            if wait > 60:
                break
        else:
            granted += 1
    assert granted == 100  # 60 at once, 40 more over ~40 s, then the day cap
    assert wait > 60


def test_refused_request_spends_nothing() -> None:
    policy = RateLimitPolicy((RateWindow(10, 1), RateWindow(2, 60)))
    state = BucketState(refilled_at=0.0)
    state, _ = take(policy, state, 0.0)
    state, _ = take(policy, state, 0.0)
    state2, wait = take(policy, state, 0.0)
    assert wait == pytest.approx(30.0)
    assert state2.tokens["10/1"] == pytest.approx(8.0)


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=300))
def test_never_exceeds_capacity_plus_refill(gaps: list[float]) -> None:
    """Over any run, grants ≤ capacity + rate * elapsed (the token-bucket bound)."""
    window = RateWindow(10, 2)
    policy = RateLimitPolicy((window,))
    state, now, granted = BucketState(refilled_at=0.0), 0.0, 0
    for gap in gaps:
        now += gap
        state, wait = take(policy, state, now)
        granted += wait == 0
    assert granted <= window.limit + now * window.limit / window.seconds + 1e-6


def test_pause_honours_retry_after() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter({"qbo": QBO}, clock=clock)
    limiter.pause("qbo", "realm1", 60)
    assert limiter.reserve("qbo", "realm1") == pytest.approx(60)
    limiter.pause("qbo", "realm1", 10)  # a shorter pause does not shorten it
    clock.now += 30
    assert limiter.reserve("qbo", "realm1") == pytest.approx(30)
    clock.now += 30
    assert limiter.reserve("qbo", "realm1") == 0


def test_acquire_sleeps_with_injected_sleep_and_bounds_wait() -> None:
    clock = Clock()
    limiter = InMemoryRateLimiter(
        {"p": RateLimitPolicy((RateWindow(1, 10),))}, clock=clock, sleep=clock.sleep
    )
    assert limiter.acquire("p", "t") == 0
    assert limiter.acquire("p", "t") == pytest.approx(10)
    assert clock.now == pytest.approx(1010)
    with pytest.raises(RateLimitedError) as info:
        limiter.acquire("p", "t", max_wait=5)
    assert info.value.retry_after == pytest.approx(10)


def test_unconfigured_platform_is_unlimited() -> None:
    limiter = InMemoryRateLimiter(clock=Clock())
    assert all(limiter.reserve("other", "t") == 0 for _ in range(1000))


def test_concurrency_limit() -> None:
    limiter = InMemoryRateLimiter({"xero": XERO})
    active = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal active, peak
        with limiter.slot("xero", "t"):
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1

    threads = [threading.Thread(target=work) for _ in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert peak == 5


def test_concurrency_timeout() -> None:
    limiter = ConcurrencyLimiter(timeout=0.05)
    with (
        limiter.slot("p", "t", 1),
        pytest.raises(TransientError, match="slot"),
        limiter.slot("p", "t", 1),
    ):
        pass
