"""Against the real PostgreSQL: encrypted token rows, the refresh lock, the shared budget."""

from __future__ import annotations

import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from sinks.core.contract import PlatformRequest, RateLimitPolicy, RateWindow
from sinks.core.errors import ConfigurationError
from sinks.transport.auth import (
    OAuth2Auth,
    PostgresTokenStore,
    TokenCipher,
    TokenSet,
    generate_token_key,
)
from sinks.transport.db import apply_schema
from sinks.transport.http import HttpExecutor, SinkMetrics, make_client
from sinks.transport.ratelimit import PostgresRateLimiter

pytestmark = pytest.mark.integration

TOKEN_URL = "https://identity.test/connect/token"
KEY = SecretStr(generate_token_key())


@pytest.fixture
def db(fresh_database: str) -> str:
    apply_schema(fresh_database)
    apply_schema(fresh_database)  # idempotent
    return fresh_database


def all_row_text(db: str) -> str:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT t::text, encode(ciphertext, 'escape') FROM sink_oauth_tokens t"
        ).fetchall()
    return "\n".join(" ".join(r) for r in rows)


def test_token_row_is_encrypted(db: str) -> None:
    store = PostgresTokenStore(db, TokenCipher([KEY]))
    grant = TokenSet(
        SecretStr("plain-access-AAAA"),
        SecretStr("plain-refresh-BBBB"),
        datetime.now(UTC) + timedelta(hours=1),
    )
    assert store.save("qbo", "acme", grant).version == 1
    text = all_row_text(db)
    assert "plain-access-AAAA" not in text and "plain-refresh-BBBB" not in text
    loaded = store.load("qbo", "acme")
    assert (
        loaded is not None and loaded.token.access_token.get_secret_value() == "plain-access-AAAA"
    )
    assert store.save("qbo", "acme", grant).version == 2
    # another key cannot read it
    with pytest.raises(ConfigurationError):
        PostgresTokenStore(db, TokenCipher([SecretStr(generate_token_key())])).load("qbo", "acme")
    assert store.load("qbo", "nobody") is None


class RotatingTokenEndpoint:
    """A strict rotating-refresh-token server: each refresh token works once."""

    def __init__(self, first_refresh: str) -> None:
        self.lock = threading.Lock()
        self.valid_refresh = {first_refresh}
        self.valid_access: set[str] = set()
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
            time.sleep(0.2)  # widen the race window
            with self.lock:
                self.calls += 1
                if form["refresh_token"] not in self.valid_refresh:
                    return httpx.Response(400, json={"error": "invalid_grant"})
                self.valid_refresh.discard(form["refresh_token"])
                n = self.calls
                self.valid_refresh.add(f"refresh-{n}-XYZ")
                self.valid_access.add(f"access-{n}-XYZ")
            return httpx.Response(
                200,
                json={
                    "access_token": f"access-{n}-XYZ",
                    "refresh_token": f"refresh-{n}-XYZ",
                    "expires_in": 1800,
                },
            )
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            ok = token in self.valid_access
        return httpx.Response(200 if ok else 401, json={})


def test_concurrent_refresh_hits_token_endpoint_once(db: str) -> None:
    seed = PostgresTokenStore(db, TokenCipher([KEY]))
    seed.save(
        "xero",
        "acme",
        TokenSet(
            SecretStr("access-0-XYZ"),
            SecretStr("refresh-0-XYZ"),
            datetime.now(UTC) + timedelta(hours=1),
        ),
    )
    server = RotatingTokenEndpoint("refresh-0-XYZ")
    workers = 4
    auths = [
        OAuth2Auth(
            platform="xero",
            tenant_id="acme",
            token_url=TOKEN_URL,
            client_id="cid",
            client_secret=SecretStr("client-secret-1"),
            store=PostgresTokenStore(db, TokenCipher([KEY])),
        )  # own connections each
        for _ in range(workers)
    ]
    for a in auths:
        assert a.generation == 1  # each has cached the old grant
    executors = [
        HttpExecutor(
            platform="xero",
            tenant_id="acme",
            client=make_client(base_url="https://api.test", transport=httpx.MockTransport(server)),
            auth=a,
            metrics=SinkMetrics(CollectorRegistry()),
        )
        for a in auths
    ]
    barrier = threading.Barrier(workers)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def work(ex: HttpExecutor) -> None:
        barrier.wait()
        try:
            statuses.append(
                ex.send(PlatformRequest("GET", "/Invoices", purpose="list invoices")).status
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ex,)) for ex in executors]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert statuses == [200] * workers
    assert server.calls == 1
    final = {a.current.token.access_token.get_secret_value() for a in auths}
    assert final == {"access-1-XYZ"}
    stored = seed.load("xero", "acme")
    assert stored is not None and stored.version == 2
    assert stored.token.refresh_token is not None
    assert stored.token.refresh_token.get_secret_value() == "refresh-1-XYZ"
    text = all_row_text(db)
    assert "access-1-XYZ" not in text and "refresh-1-XYZ" not in text


def test_refresh_failure_rolls_back_and_releases_lock(db: str) -> None:
    store = PostgresTokenStore(db, TokenCipher([KEY]))
    store.save("xero", "t", TokenSet(SecretStr("access-a-123"), SecretStr("refresh-a-123")))

    def refused(current: TokenSet) -> TokenSet:
        raise ConfigurationError("invalid_grant")

    with pytest.raises(ConfigurationError):
        store.rotate("xero", "t", seen_version=1, refresh=refused)
    # lock released and nothing changed: another rotation goes through at once
    new = store.rotate(
        "xero",
        "t",
        seen_version=1,
        refresh=lambda cur: TokenSet(SecretStr("access-b-123"), cur.refresh_token),
    )
    assert new.version == 2


class FrozenClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_shared_budget_never_overspent(db: str) -> None:
    """Workers with their own connections drawing at the same instant get exactly the
    bucket's capacity between them; refills are shared too."""
    policy = RateLimitPolicy((RateWindow(10, 3600),))  # a long window keeps its burst
    clock = FrozenClock()
    workers = 4
    limiters = [PostgresRateLimiter(db, {"xero": policy}, clock=clock) for _ in range(workers)]
    barrier = threading.Barrier(workers)
    granted = [0] * workers

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(15):
            if limiters[i].reserve("xero", "acme") == 0:
                granted[i] += 1

    def run_all() -> None:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    run_all()
    assert sum(granted) == 10
    granted[:] = [0] * workers
    clock.now += 1080  # 10 per hour → 3 tokens
    run_all()
    assert sum(granted) == 3
    assert limiters[0].reserve("xero", "other-tenant") == 0


def test_shared_budget_real_clock_bound(db: str) -> None:
    """With the database's clock and blocking acquire, grants over the run stay within
    capacity + rate * elapsed."""
    window = RateWindow(5, 1)
    workers = 3
    limiters = [PostgresRateLimiter(db, {"p": RateLimitPolicy((window,))}) for _ in range(workers)]
    stop = time.monotonic() + 2.0
    count = [0] * workers

    def work(i: int) -> None:
        while time.monotonic() < stop:
            limiters[i].acquire("p", "t")
            count[i] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started
    assert sum(count) <= window.limit + elapsed * window.limit / window.seconds + 1
    assert sum(count) >= window.limit  # and the budget was actually used


def test_pause_is_shared(db: str) -> None:
    clock = FrozenClock()
    a = PostgresRateLimiter(db, {"qbo": RateLimitPolicy((RateWindow(500, 60),))}, clock=clock)
    b = PostgresRateLimiter(db, {"qbo": RateLimitPolicy((RateWindow(500, 60),))}, clock=clock)
    assert b.reserve("qbo", "realm") == 0
    a.pause("qbo", "realm", 60)
    assert b.reserve("qbo", "realm") == pytest.approx(60)
    clock.now += 60
    assert b.reserve("qbo", "realm") == 0


def test_budget_time_is_read_after_the_row_lock(db: str) -> None:
    """A worker queued behind another's lock must judge the bucket at the time it gets
    the row, not when it started waiting: else it finds the bucket emptier than it is
    and sleeps past its token."""
    clock = FrozenClock()
    limiter = PostgresRateLimiter(db, {"p": RateLimitPolicy((RateWindow(1, 10),))}, clock=clock)
    assert limiter.reserve("p", "t") == 0  # the bucket is now empty until t + 10 s
    result: list[float] = []
    with psycopg.connect(db) as holder:
        holder.execute("SELECT 1 FROM sink_rate_budgets WHERE platform = 'p' FOR UPDATE")
        worker = threading.Thread(target=lambda: result.append(limiter.reserve("p", "t")))
        worker.start()
        time.sleep(0.5)  # the worker is blocked on the row
        clock.now += 10  # its token comes due while it waits
        holder.commit()
    worker.join(10)
    assert result == [0]
