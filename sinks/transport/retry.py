"""Retry with exponential backoff and full jitter, bounded by attempts and elapsed time.

Full jitter (``uniform(0, min(cap, base * 2**n))``) spreads the retries of many
workers hit by the same outage instead of having them return in lock-step. A
:class:`RateLimitedError` carrying ``retry_after`` is the vendor telling us exactly
when to come back, so that wait replaces the backoff. Sleep, clock and randomness
are injectable so tests run instantly and deterministically.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sinks.core.errors import RateLimitedError, RetryableError

__all__ = ["RetryPolicy", "backoff_delay", "call_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first try; ``max_elapsed`` bounds the whole call
    including sleeps, so one event cannot hold a partition for long: the runner's own
    redelivery takes over after that."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_elapsed: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_elapsed < 0:
            raise ValueError("delays must not be negative")


def backoff_delay(
    policy: RetryPolicy, retry_number: int, rng: random.Random | None = None
) -> float:
    """Full-jitter delay before retry ``retry_number`` (1 for the first retry)."""
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** (retry_number - 1)))
    return (rng or random).uniform(0.0, ceiling)


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    on_retry: Callable[[RetryableError, int, float], None] | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying on :class:`RetryableError` only.

    Gives up (re-raising the last error) when attempts run out or when the next wait
    would end beyond ``max_elapsed``; a ``retry_after`` longer than the remaining
    budget is not slept through, because the caller can do better things than block
    (the runner pauses the tenant, the rate limiter already holds the bucket).
    ``on_retry(error, retry_number, delay)`` is called before each sleep.
    """
    started = clock()
    attempt = 1
    while True:
        try:
            return fn()
        except RetryableError as exc:
            if attempt >= policy.max_attempts:
                raise
            if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                delay = exc.retry_after
            else:
                delay = backoff_delay(policy, attempt, rng)
            if clock() - started + delay > policy.max_elapsed:
                raise
            if on_retry is not None:
                on_retry(exc, attempt, delay)
            sleep(delay)
            attempt += 1
