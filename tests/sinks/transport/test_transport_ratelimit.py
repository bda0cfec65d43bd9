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


def test_minute_window_is_paced_so_no_rolling_minute_exceeds_the_limit() -> None:
    """Xero's 60/min is counted over a rolling minute: a full bucket of 60 plus its
    refill would allow ~119 calls in the first minute. Paced: one call, then (0.8 of a
    token carried: capacity 3 % of 60 = 1.8) one after 0.2 * 60/58.2 s, then one every
    60/58.2 s."""
    clock = Clock()
    limiter = InMemoryRateLimiter({"xero": XERO}, clock=clock)
    assert limiter.reserve("xero", "t1") == 0
    wait = limiter.reserve("xero", "t1")
    assert wait == pytest.approx(0.2 * 60 / 58.2)
    clock.now += wait / 2
    assert limiter.reserve("xero", "t1") == pytest.approx(wait / 2)
    clock.now += wait / 2
    assert limiter.reserve("xero", "t1") == 0
    assert limiter.reserve("xero", "t1") == pytest.approx(60 / 58.2)
    # another tenant has its own budget
    assert limiter.reserve("xero", "t2") == 0


def test_daily_window_keeps_its_burst_and_binds() -> None:
    """A daily quota is not paced (that would spread it one call per 14 minutes): the
    minute pacing sets the speed until the day's 100 are spent, then the day binds."""
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
            last_grant = now
    assert granted == 100
    # paced by the minute window: 1.8 tokens at once, then one every 60/58.2 s
    assert last_grant == pytest.approx(98.2 * 60 / 58.2, rel=1e-3)
    assert wait > 60


def test_refused_request_spends_nothing() -> None:
    policy = RateLimitPolicy((RateWindow(10, 1), RateWindow(2, 3600)))
    state = BucketState(refilled_at=0.0)
    state, _ = take(policy, state, 0.0)
    state, _ = take(policy, state, 0.2)
    state2, wait = take(policy, state, 0.4)  # the hourly window (2) is spent
    assert wait == pytest.approx(1800 - 0.4)
    assert state2.tokens["10/1"] == pytest.approx(1.5)  # the paced window kept its tokens


@settings(max_examples=50)
def assert_no_window_exceeds(policy: RateLimitPolicy, window: RateWindow,
                             gaps: list[float]) -> None:
    """Take a token after each gap; no rolling ``window`` may hold more grants than
    its limit."""
    state, now, grants = BucketState(refilled_at=0.0), 0.0, []
    for gap in gaps:
        now += gap
        state, wait = take(policy, state, now)
        if wait == 0:
            grants.append(now)
    for i, start in enumerate(grants):
        inside = [t for t in grants[i:] if t < start + window.seconds]
        assert len(inside) <= window.limit


@given(st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=300))
def test_no_rolling_window_ever_exceeds_its_limit(gaps: list[float]) -> None:
    """The property platforms enforce: in ANY window of ``seconds``, at most ``limit``."""
    window = RateWindow(10, 2)
    policy = RateLimitPolicy((window,))
    assert_no_window_exceeds(policy, window, gaps)


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=0, max_value=0.2), min_size=1, max_size=400))
def test_a_burst_never_lets_a_rolling_window_exceed_its_limit(gaps: list[float]) -> None:
    """With a burst capacity (3 % of 300 = 9 tokens at once) the rolling bound still
    holds: the refill is what is left of the limit after the burst."""
    window = RateWindow(300, 5)
    policy = RateLimitPolicy((window,))
    burst, now = BucketState(refilled_at=0.0), 0.0
    for _ in range(9):  # the burst is really there: 9 at one instant, not a 10th
        burst, wait = take(policy, burst, now)
        assert wait == 0
    assert take(policy, burst, now)[1] > 0
    assert_no_window_exceeds(policy, window, gaps)


def test_burst_then_paced_at_what_is_left_of_the_limit() -> None:
    """QuickBooks' 500/min: 15 calls at once, then one every 60/485 s; over a busy
    minute (from the first call) never more than 500."""
    policy = RateLimitPolicy((RateWindow(500, 60),))
    state, now = BucketState(refilled_at=0.0), 0.0
    waits = []
    for _ in range(16):
        state, wait = take(policy, state, now)
        waits.append(wait)
    assert waits[:15] == [0.0] * 15
    assert waits[15] == pytest.approx(60 / 485)
    grants = 15
    while True:
        state, wait = take(policy, state, now)
        if wait:
            now += wait
            if now >= 60:
                break
            continue
        grants += 1
    assert grants <= 500
    assert grants >= 499


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


def test_a_late_waiter_loses_no_budget() -> None:
    """Waiters that come a little after their token (a quarter interval late, each
    time) still get the full paced rate: the carry makes up the lateness."""
    policy = RateLimitPolicy((RateWindow(500, 60),))
    state, now, grants = BucketState(refilled_at=0.0), 0.0, 0
    interval = 60 / 485
    while now < 600:
        state, wait = take(policy, state, now)
        if wait == 0:
            grants += 1
            wait = interval * 0.05
        now += wait + interval * 0.25
    assert grants >= 0.99 * 600 * 485 / 60


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
