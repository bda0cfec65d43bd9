"""Readiness: named checks, each a callable returning ``True`` (ready), ``False`` or a
string saying why not; an exception counts as not ready. Results are cached for
``ttl_s`` so that a scraper or a kubelet probing often does not hammer PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Check", "Heartbeat", "Readiness", "ReadinessResult", "fresh", "postgres_check"]

#: A readiness check: ``True`` when ready; ``False`` or a reason when not.
Check = Callable[[], "bool | str"]


@dataclass(frozen=True)
class ReadinessResult:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks}


class Readiness:
    """A component's readiness: every registered check must pass."""

    def __init__(self, checks: dict[str, Check] | None = None, *, ttl_s: float = 1.0) -> None:
        self._checks: dict[str, Check] = dict(checks or {})
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, ReadinessResult] | None = None

    def add(self, name: str, check: Check) -> Readiness:
        with self._lock:
            self._checks[name] = check
            self._cached = None
        return self

    def evaluate(self) -> ReadinessResult:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._ttl_s:
                return self._cached[1]
            checks = dict(self._checks)
        results: dict[str, str] = {}
        ready = True
        for name, check in checks.items():
            try:
                outcome = check()
            except Exception as exc:  # a failing probe is an answer, not a crash
                outcome = f"{type(exc).__name__}: {exc}"
            if outcome is True:
                results[name] = "ok"
            else:
                ready = False
                results[name] = outcome if isinstance(outcome, str) and outcome else "failing"
        result = ReadinessResult(ready, results)
        with self._lock:
            self._cached = (time.monotonic(), result)
        return result


class Heartbeat:
    """Marks the last time something succeeded; :meth:`check` fails once that is older
    than ``max_age_s`` (e.g. the relay's last successful batch)."""

    def __init__(self, max_age_s: float, *, started: bool = False) -> None:
        self.max_age_s = max_age_s
        self._last: float | None = time.monotonic() if started else None

    def beat(self) -> None:
        self._last = time.monotonic()

    @property
    def age_s(self) -> float | None:
        return None if self._last is None else time.monotonic() - self._last

    def check(self) -> bool | str:
        age = self.age_s
        if age is None:
            return "no success yet"
        if age > self.max_age_s:
            return f"last success {age:.0f}s ago (limit {self.max_age_s:.0f}s)"
        return True


def postgres_check(database_url: str, *, timeout_s: int = 2) -> Check:
    """A check that PostgreSQL answers ``SELECT 1`` within ``timeout_s``."""

    def check() -> bool | str:
        import psycopg

        with psycopg.connect(database_url, connect_timeout=timeout_s, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True

    return check


def fresh(last: Callable[[], float | None], max_age_s: float, what: str = "success") -> Check:
    """A check that ``last()`` (a ``time.monotonic()`` stamp) is at most ``max_age_s``
    old, e.g. the relay's last batch that did not roll back."""

    def check() -> bool | str:
        at = last()
        if at is None:
            return f"no {what} yet"
        age = time.monotonic() - at
        return True if age <= max_age_s else f"last {what} {age:.0f}s ago (limit {max_age_s:.0f}s)"

    return check
