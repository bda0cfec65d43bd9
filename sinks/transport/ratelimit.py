"""Client-side rate limiting per (platform, tenant): token buckets plus a concurrency cap.

Platforms publish per-tenant budgets (QuickBooks 500/min and 10 concurrent per realm;
Xero 60/min, 5,000/day and 5 concurrent per organisation). Spending them evenly keeps
us clear of 429s, which cost a round-trip and, on some platforms, a minute-long
penalty. Each :class:`~sinks.core.contract.RateWindow` of a platform's
:class:`~sinks.core.contract.RateLimitPolicy` is one bucket; a request needs a token
from every bucket. Platforms count calls in *rolling* windows, and a bucket of capacity
``limit`` refilled at ``limit / seconds`` admits up to twice the limit in one rolling
window (a full bucket at its start, then the refill). So short windows (up to
:data:`PACED_WINDOW_S`) are paced instead: capacity ``c``, refilled at
``(limit - c) / seconds``, which keeps any rolling window at or under
``c + (limit - c)`` = the limit. ``c`` is :data:`PACED_BURST_SHARE` of the limit
(QuickBooks 500/min: 15, so a tenant's few documents go out at once instead of one
call per 120 ms, at the price of 3 % of the sustained rate), and at least
1 + :data:`PACED_CARRY` (Xero's 60/min: 1.8). The fraction of a token beyond the one
handed out is what keeps a paced budget spent: a waiter woken a few milliseconds
after its token came due (scheduling, the database round-trip) would lose that time
with a capacity of exactly 1 (about 5 % of QuickBooks' 500/min on a loaded machine);
with it, the lateness is made up. Long windows (a daily quota) keep the full burst,
since pacing them would spread a day's budget one call at a time.
A 429's ``Retry-After`` pauses the whole budget.

Two backends behind :class:`RateLimiter`: :class:`InMemoryRateLimiter` (default; one
process) and :class:`PostgresRateLimiter`, which keeps the buckets in one row per
(platform, tenant) updated under ``SELECT ... FOR UPDATE`` so that a tenant's several
worker processes share one budget. The bucket arithmetic (:func:`take`) is the same
pure function for both. Clocks are injectable. A policy without windows (a sandbox with
its limits lifted) has no tokens to share, only 429 pauses: the PostgreSQL backend then
reads the pause at most every :data:`PAUSE_CHECK_S` instead of once per request.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from psycopg.types.json import Jsonb

from sinks.core.contract import RateLimitPolicy
from sinks.core.errors import RateLimitedError, TransientError
from sinks.transport.db import Database, connection

__all__ = [
    "BucketState",
    "ConcurrencyLimiter",
    "InMemoryRateLimiter",
    "PostgresRateLimiter",
    "RateLimiter",
    "take",
]


@dataclass(frozen=True)
class BucketState:
    """Tokens left per window key, when they were last refilled, and any pause."""

    tokens: Mapping[str, float] = field(default_factory=dict)
    refilled_at: float = 0.0
    paused_until: float = 0.0


def refill(policy: RateLimitPolicy, state: BucketState, now: float) -> BucketState:
    """``state`` with every bucket topped up for the time elapsed since the last refill.

    A bucket never seen before starts full; time running backwards (clocks of different
    hosts) adds nothing rather than removing tokens.
    """
    elapsed = max(0.0, now - state.refilled_at)
    tokens = {}
    for window in policy.windows:
        capacity, rate = bucket_shape(window.limit, window.seconds)
        current = state.tokens.get(window.key)
        if current is None:
            tokens[window.key] = capacity
        else:
            tokens[window.key] = min(capacity, current + elapsed * rate)
    return replace(state, tokens=tokens, refilled_at=max(now, state.refilled_at))


#: Windows up to this length are paced (see the module docstring).
PACED_WINDOW_S = 300.0
#: Least fraction of a token a paced bucket holds beyond the one it hands out.
PACED_CARRY = 0.5
#: Share of a paced window's limit that may go out at once (its bucket's capacity).
PACED_BURST_SHARE = 0.03


def bucket_shape(limit: int, seconds: float) -> tuple[float, float]:
    """(capacity, refill rate per second) of the bucket standing for a rolling window."""
    if seconds <= PACED_WINDOW_S and limit > 1:
        capacity = max(1.0 + PACED_CARRY, PACED_BURST_SHARE * limit)
        return capacity, (limit - capacity) / seconds
    return float(limit), limit / seconds


def take(
    policy: RateLimitPolicy, state: BucketState, now: float, n: int = 1
) -> tuple[BucketState, float]:
    """Try to take ``n`` tokens from every bucket at time ``now``.

    Returns the new state and ``0.0`` when granted, or the unchanged (refilled) state
    and the seconds until a retry could succeed. All-or-nothing: a request that one
    bucket refuses spends nothing from the others.
    """
    state = refill(policy, state, now)
    if now < state.paused_until:
        return state, state.paused_until - now
    wait = 0.0
    for window in policy.windows:
        missing = n - state.tokens[window.key]
        if missing > 1e-9:
            capacity, rate = bucket_shape(window.limit, window.seconds)
            if n > capacity:
                raise ValueError(f"cannot take {n} tokens from a bucket of {capacity:g}")
            wait = max(wait, missing / rate)
    if wait > 0:
        return state, wait
    tokens = {key: value - n for key, value in state.tokens.items()}
    return replace(state, tokens=tokens), 0.0


def pause(state: BucketState, now: float, seconds: float) -> BucketState:
    """``state`` paused for ``seconds`` from ``now`` (never shortening a longer pause)."""
    return replace(state, paused_until=max(state.paused_until, now + max(0.0, seconds)))


class ConcurrencyLimiter:
    """At most ``policy.concurrency`` requests in flight per (platform, tenant), in
    this process. Waiting longer than ``timeout`` raises :class:`TransientError`
    (something is stuck; let the retry policy and the runner deal with it)."""

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._semaphores: dict[tuple[str, str], threading.BoundedSemaphore] = {}

    @contextlib.contextmanager
    def slot(self, platform: str, tenant_id: str, limit: int | None) -> Iterator[None]:
        if limit is None:
            yield
            return
        with self._lock:
            sem = self._semaphores.setdefault(
                (platform, tenant_id), threading.BoundedSemaphore(limit)
            )
        if not sem.acquire(timeout=self.timeout):
            raise TransientError(
                f"no free connection slot for tenant {tenant_id!r} within {self.timeout:g}s",
                platform=platform,
            )
        try:
            yield
        finally:
            sem.release()


class RateLimiter(ABC):
    """The interface the HTTP executor uses; backends implement :meth:`reserve` and
    :meth:`pause`, and get blocking :meth:`acquire` and :meth:`slot` for free."""

    def __init__(
        self,
        policies: Mapping[str, RateLimitPolicy] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: ConcurrencyLimiter | None = None,
    ) -> None:
        self._policies: dict[str, RateLimitPolicy] = dict(policies or {})
        self._sleep = sleep
        self._concurrency = concurrency or ConcurrencyLimiter()

    def configure(self, platform: str, policy: RateLimitPolicy) -> None:
        """Set the limits of ``platform`` (normally ``spec.rate_limit``)."""
        self._policies[platform] = policy

    def policy(self, platform: str) -> RateLimitPolicy:
        return self._policies.get(platform, RateLimitPolicy())

    @abstractmethod
    def reserve(self, platform: str, tenant_id: str, n: int = 1) -> float:
        """Take ``n`` tokens now and return 0.0, or take nothing and return the wait."""

    @abstractmethod
    def pause(self, platform: str, tenant_id: str, seconds: float) -> None:
        """Refuse every request of the tenant for ``seconds`` (a 429's Retry-After)."""

    def acquire(self, platform: str, tenant_id: str, *, max_wait: float | None = None) -> float:
        """Block (with the injected sleep) until a token is granted; return the time
        waited. If the wait would exceed ``max_wait``, raise :class:`RateLimitedError`
        carrying the wait, so the caller can release the event instead of blocking."""
        waited = 0.0
        while True:
            wait = self.reserve(platform, tenant_id)
            if wait <= 0:
                return waited
            if max_wait is not None and waited + wait > max_wait:
                raise RateLimitedError(
                    f"local rate budget of tenant {tenant_id!r} exhausted",
                    retry_after=wait,
                    platform=platform,
                )
            self._sleep(wait)
            waited += wait

    def slot(self, platform: str, tenant_id: str) -> contextlib.AbstractContextManager[None]:
        """Context manager holding one of the tenant's concurrent-request slots."""
        return self._concurrency.slot(platform, tenant_id, self.policy(platform).concurrency)


class InMemoryRateLimiter(RateLimiter):
    """Buckets in this process's memory; the default backend."""

    def __init__(
        self,
        policies: Mapping[str, RateLimitPolicy] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: ConcurrencyLimiter | None = None,
    ) -> None:
        super().__init__(policies, sleep=sleep, concurrency=concurrency)
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], BucketState] = {}

    def _state(self, key: tuple[str, str], now: float) -> BucketState:
        return self._states.get(key) or BucketState(refilled_at=now)

    def reserve(self, platform: str, tenant_id: str, n: int = 1) -> float:
        with self._lock:
            now = self._clock()
            key = (platform, tenant_id)
            state, wait = take(self.policy(platform), self._state(key, now), now, n)
            self._states[key] = state
            return wait

    def pause(self, platform: str, tenant_id: str, seconds: float) -> None:
        with self._lock:
            now = self._clock()
            key = (platform, tenant_id)
            self._states[key] = pause(self._state(key, now), now, seconds)


#: How stale a no-window tenant's view of a pause set by another worker may be.
PAUSE_CHECK_S = 1.0


class PostgresRateLimiter(RateLimiter):
    """Buckets in ``sink_rate_budgets``, one row per (platform, tenant), shared by all
    worker processes of a tenant.

    Every :meth:`reserve` is one short transaction: create the row if missing, lock it
    with ``SELECT ... FOR UPDATE``, apply :func:`take`, write it back. The row lock
    serialises concurrent workers, so tokens are never spent twice. Time comes from the
    database (``clock_timestamp()``) unless a clock is injected, so that workers on
    different hosts agree on it.
    """

    def __init__(
        self,
        db: Database,
        policies: Mapping[str, RateLimitPolicy] | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: ConcurrencyLimiter | None = None,
    ) -> None:
        super().__init__(policies, sleep=sleep, concurrency=concurrency)
        self._db = db
        self._clock = clock
        # (platform, tenant) -> (checked at, paused until), both time.monotonic()
        self._pauses: dict[tuple[str, str], tuple[float, float]] = {}
        self._pauses_lock = threading.Lock()

    def _update(
        self, platform: str, tenant_id: str, change: Callable[[BucketState, float], BucketState]
    ) -> BucketState:
        lock = ("SELECT tokens, refilled_at, paused_until FROM sink_rate_budgets"
                " WHERE platform = %s AND tenant_id = %s FOR UPDATE")
        with connection(self._db) as conn, conn.transaction():
            # The row exists but for a tenant's first request: lock it straight away
            # (one round-trip fewer per request than inserting it every time).
            found = conn.execute(lock, (platform, tenant_id)).fetchone()
            if found is None:
                conn.execute(
                    "INSERT INTO sink_rate_budgets (platform, tenant_id, refilled_at)"
                    " VALUES (%s, %s, COALESCE(%s, extract(epoch FROM clock_timestamp())))"
                    " ON CONFLICT DO NOTHING",
                    (platform, tenant_id, self._clock() if self._clock is not None else None),
                )
                found = conn.execute(lock, (platform, tenant_id)).fetchone()
            assert found is not None
            # The time is read only now, holding the row: read before the lock, it would
            # be as old as the wait for the lock, and a worker queued behind others would
            # find the bucket emptier than it is and sleep past its token (budget lost
            # under contention).
            if self._clock is not None:
                now = self._clock()
            else:
                row = conn.execute(
                    "SELECT extract(epoch FROM clock_timestamp())::float8"
                ).fetchone()
                assert row is not None
                now = float(row[0])
            tokens, refilled_at, paused_until = found
            state = BucketState(
                tokens={k: float(v) for k, v in (tokens or {}).items()},
                refilled_at=float(refilled_at),
                paused_until=float(paused_until),
            )
            new = change(state, now)
            conn.execute(
                "UPDATE sink_rate_budgets SET tokens = %s, refilled_at = %s, paused_until = %s"
                " WHERE platform = %s AND tenant_id = %s",
                (Jsonb(dict(new.tokens)), new.refilled_at, new.paused_until, platform, tenant_id),
            )
            return new

    def reserve(self, platform: str, tenant_id: str, n: int = 1) -> float:
        policy = self.policy(platform)
        if not policy.windows:
            return self._pause_left(platform, tenant_id)
        wait = 0.0

        def change(state: BucketState, now: float) -> BucketState:
            nonlocal wait
            new, wait = take(policy, state, now, n)
            return new

        self._update(platform, tenant_id, change)
        return wait

    def pause(self, platform: str, tenant_id: str, seconds: float) -> None:
        self._update(platform, tenant_id, lambda state, now: pause(state, now, seconds))
        mono = time.monotonic()
        with self._pauses_lock:
            _, until = self._pauses.get((platform, tenant_id), (mono, mono))
            self._pauses[(platform, tenant_id)] = (mono, max(until, mono + max(0.0, seconds)))

    def _pause_left(self, platform: str, tenant_id: str) -> float:
        """Seconds the tenant's shared budget stays paused, re-read from the database
        at most every :data:`PAUSE_CHECK_S` (no-window policies only)."""
        key = (platform, tenant_id)
        mono = time.monotonic()
        with self._pauses_lock:
            cached = self._pauses.get(key)
        if cached is None or mono - cached[0] >= PAUSE_CHECK_S:
            left = 0.0

            def look(state: BucketState, now: float) -> BucketState:
                nonlocal left
                left = max(0.0, state.paused_until - now)
                return state

            self._update(platform, tenant_id, look)
            cached = (mono, mono + left)
            with self._pauses_lock:
                self._pauses[key] = cached
        return max(0.0, cached[1] - mono)
