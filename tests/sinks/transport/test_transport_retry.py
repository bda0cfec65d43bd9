"""Backoff with full jitter, attempt and elapsed bounds, Retry-After."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.core.errors import PayloadRejectedError, RateLimitedError, TransientError
from sinks.transport.retry import RetryPolicy, backoff_delay, call_with_retry


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(errors: list[Exception], result: str = "ok"):
    calls = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**32))
def test_jitter_is_bounded(retry_number: int, seed: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30)
    delay = backoff_delay(policy, retry_number, random.Random(seed))
    assert 0 <= delay <= min(30, 0.5 * 2 ** (retry_number - 1))


def test_jitter_actually_varies() -> None:
    rng = random.Random(1)
    delays = {backoff_delay(RetryPolicy(), 4, rng) for _ in range(20)}
    assert len(delays) == 20


def test_retries_transient_then_succeeds() -> None:
    t = FakeTime()
    fn = failing([TransientError("503"), TransientError("503")])
    assert (
        call_with_retry(fn, RetryPolicy(), sleep=t.sleep, clock=t.clock, rng=random.Random(0))
        == "ok"
    )
    assert len(fn.calls) == 3 and len(t.sleeps) == 2
    assert t.sleeps[0] <= 0.5 and t.sleeps[1] <= 1.0


def test_gives_up_after_max_attempts() -> None:
    t = FakeTime()
    fn = failing([TransientError(str(i)) for i in range(10)])
    with pytest.raises(TransientError, match="2"):
        call_with_retry(fn, RetryPolicy(max_attempts=3), sleep=t.sleep, clock=t.clock)
    assert len(fn.calls) == 3


def test_permanent_errors_are_not_retried() -> None:
    t = FakeTime()
    fn = failing([PayloadRejectedError("bad")])
    with pytest.raises(PayloadRejectedError):
        call_with_retry(fn, RetryPolicy(), sleep=t.sleep, clock=t.clock)
    assert len(fn.calls) == 1 and t.sleeps == []


def test_retry_after_is_honoured_exactly() -> None:
    t = FakeTime()
    seen = []
    fn = failing([RateLimitedError("429", retry_after=7.0)])
    result = call_with_retry(
        fn,
        RetryPolicy(),
        sleep=t.sleep,
        clock=t.clock,
        on_retry=lambda e, n, d: seen.append((type(e).__name__, n, d)),
    )
    assert result == "ok" and t.sleeps == [7.0]
    assert seen == [("RateLimitedError", 1, 7.0)]


def test_retry_after_beyond_max_elapsed_is_raised_not_slept() -> None:
    t = FakeTime()
    fn = failing([RateLimitedError("429", retry_after=3600.0)])
    with pytest.raises(RateLimitedError):
        call_with_retry(fn, RetryPolicy(max_elapsed=120), sleep=t.sleep, clock=t.clock)
    assert t.sleeps == []


def test_max_elapsed_bounds_total_time() -> None:
    t = FakeTime()
    fn = failing([RateLimitedError("429", retry_after=40.0) for _ in range(10)])
    with pytest.raises(RateLimitedError):
        call_with_retry(
            fn, RetryPolicy(max_attempts=10, max_elapsed=100), sleep=t.sleep, clock=t.clock
        )
    assert t.sleeps == [40.0, 40.0] and t.now <= 100


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
