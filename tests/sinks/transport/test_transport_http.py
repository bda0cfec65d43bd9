"""The HTTP executor against httpx.MockTransport: retries, 429, 401 refresh, timeouts, metrics."""

from __future__ import annotations

import json
import random
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from sinks.core.contract import PlatformRequest, RateLimitPolicy, RateWindow
from sinks.core.errors import (
    ConfigurationError,
    RateLimitedError,
    TransientError,
)
from sinks.transport.auth import ApiKeyAuth, InMemoryTokenStore, OAuth2Auth, SessionAuth, TokenSet
from sinks.transport.http import HttpExecutor, SinkMetrics, make_client
from sinks.transport.ratelimit import InMemoryRateLimiter
from sinks.transport.retry import RetryPolicy

TOKEN_URL = "https://identity.test/connect/token"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def responses(
    *items: httpx.Response | Exception,
) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    queue = list(items)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def executor(
    handler, *, registry: CollectorRegistry | None = None, **kw
) -> tuple[HttpExecutor, FakeTime, CollectorRegistry]:
    t = FakeTime()
    reg = registry or CollectorRegistry()
    ex = HttpExecutor(
        platform="xero",
        tenant_id="acme",
        client=make_client(base_url="https://api.test/v1", transport=httpx.MockTransport(handler)),
        metrics=SinkMetrics(reg),
        sleep=t.sleep,
        clock=t.clock,
        rng=random.Random(7),
        **kw,
    )
    return ex, t, reg


INVOICE = PlatformRequest(
    "PUT",
    "/Invoices",
    purpose="create invoice",
    json={"Invoices": [{"Total": 10}]},
    headers={"Idempotency-Key": "k-1"},
    query={"summarizeErrors": "false"},
    idempotency_key="k-1",
)


def test_request_is_built_from_platform_request() -> None:
    handler, seen = responses(httpx.Response(200, json={"ok": True}))
    ex, _, _ = executor(handler)
    resp = ex.send(INVOICE)
    assert resp.status == 200 and resp.json() == {"ok": True}
    req = seen[0]
    assert req.method == "PUT"
    assert str(req.url) == "https://api.test/v1/Invoices?summarizeErrors=false"
    assert req.headers["Idempotency-Key"] == "k-1"
    assert json.loads(req.content) == {"Invoices": [{"Total": 10}]}


def test_client_has_explicit_timeouts() -> None:
    client = make_client()
    assert client.timeout.read == 60.0 and client.timeout.connect == 5.0
    assert not client.follow_redirects


def test_5xx_retried_then_success_with_metrics() -> None:
    handler, seen = responses(
        httpx.Response(503), httpx.Response(502), httpx.Response(201, json={})
    )
    ex, t, reg = executor(handler)
    assert ex.send(INVOICE).status == 201
    assert len(seen) == 3 and len(t.sleeps) == 2
    assert all(0 <= s <= 30 for s in t.sleeps)
    labels = {"platform": "xero", "operation": "create invoice"}
    assert (
        reg.get_sample_value(
            "ledgerstream_sink_api_retries_total", {**labels, "reason": "http_503"}
        )
        == 1
    )
    assert (
        reg.get_sample_value(
            "ledgerstream_sink_api_retries_total", {**labels, "reason": "http_502"}
        )
        == 1
    )
    assert (
        reg.get_sample_value(
            "ledgerstream_sink_api_latency_seconds_count", {**labels, "status": "201"}
        )
        == 1
    )
    assert (
        reg.get_sample_value(
            "ledgerstream_sink_api_latency_seconds_count", {**labels, "status": "503"}
        )
        == 1
    )
    # the same idempotency key travels on every attempt
    assert {r.headers["Idempotency-Key"] for r in seen} == {"k-1"}


def test_5xx_exhausted_raises_transient() -> None:
    handler, seen = responses(*[httpx.Response(500) for _ in range(3)])
    ex, _, _ = executor(handler, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(TransientError) as info:
        ex.send(INVOICE)
    assert info.value.status == 500 and len(seen) == 3


def test_429_retry_after_honoured_and_bucket_paused() -> None:
    clock_box: list[FakeTime] = []
    limiter = InMemoryRateLimiter(
        {"xero": RateLimitPolicy((RateWindow(60, 60),), concurrency=5)},
        clock=lambda: clock_box[0].now,
        sleep=lambda s: clock_box[0].sleep(s),
    )
    handler, seen = responses(
        httpx.Response(429, headers={"Retry-After": "7", "X-Rate-Limit-Problem": "minute"}),
        httpx.Response(200, json={}),
    )
    ex, t, reg = executor(handler, limiter=limiter)
    clock_box.append(t)
    assert ex.send(INVOICE).status == 200
    assert t.sleeps == [7.0]  # exactly Retry-After; the paused bucket was free again then
    assert len(seen) == 2
    assert reg.get_sample_value("ledgerstream_sink_api_429_total", {"platform": "xero"}) == 1
    assert (
        reg.get_sample_value(
            "ledgerstream_sink_api_retries_total",
            {"platform": "xero", "operation": "create invoice", "reason": "rate_limited"},
        )
        == 1
    )


def test_429_pause_is_seen_by_other_requests_of_the_tenant() -> None:
    t = FakeTime()
    limiter = InMemoryRateLimiter({"xero": RateLimitPolicy((RateWindow(60, 60),))}, clock=t.clock)
    handler, _ = responses(httpx.Response(429, headers={"Retry-After": "30"}))
    ex, _, _ = executor(handler, limiter=limiter, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(RateLimitedError) as info:
        ex.send(INVOICE)
    assert info.value.retry_after == 30
    assert limiter.reserve("xero", "acme") == pytest.approx(30)
    assert limiter.reserve("xero", "other") == 0


def test_429_without_retry_after_uses_platform_default_pause() -> None:
    t = FakeTime()
    limiter = InMemoryRateLimiter(
        {"xero": RateLimitPolicy((RateWindow(60, 60),), default_retry_after=60)}, clock=t.clock
    )
    handler, _ = responses(httpx.Response(429))
    ex, _, _ = executor(handler, limiter=limiter, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(RateLimitedError):
        ex.send(INVOICE)
    assert limiter.reserve("xero", "acme") == pytest.approx(60)


def test_timeouts_are_retried_then_raised_as_transient() -> None:
    handler, seen = responses(
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect"),
        httpx.ReadTimeout("again"),
    )
    ex, t, reg = executor(handler, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(TransientError, match="timed out"):
        ex.send(INVOICE)
    assert len(seen) == 3 and len(t.sleeps) == 2
    assert (
        reg.get_sample_value(
            "ledgerstream_sink_api_latency_seconds_count",
            {"platform": "xero", "operation": "create invoice", "status": "timeout"},
        )
        == 3
    )


def test_connection_error_then_success() -> None:
    handler, _ = responses(httpx.ConnectError("refused"), httpx.Response(200, json={}))
    ex, _, _ = executor(handler)
    assert ex.send(INVOICE).status == 200


def test_permanent_error_is_returned_not_retried() -> None:
    handler, seen = responses(httpx.Response(400, json={"Message": "A validation exception"}))
    ex, t, _ = executor(handler)
    assert ex.send(INVOICE).status == 400
    assert len(seen) == 1 and t.sleeps == []


def test_accepted_status_is_returned() -> None:
    handler, seen = responses(httpx.Response(404))
    ex, _, _ = executor(handler)
    lookup = PlatformRequest(
        "GET", "/Contacts/x", purpose="find contact", accept_statuses=frozenset({404})
    )
    assert ex.send(lookup).status == 404 and len(seen) == 1


def test_vendor_classifier_can_make_a_200_retryable() -> None:
    def classify(resp):
        if b"ExceededConcurrentRequestLimitFault" in resp.body:
            return TransientError("concurrency fault", platform="netsuite")
        return None

    handler, seen = responses(
        httpx.Response(
            200, content=b"<soap:Fault>ExceededConcurrentRequestLimitFault</soap:Fault>"
        ),
        httpx.Response(200, content=b"<ok/>"),
    )
    ex, _, _ = executor(handler, classify=classify)
    assert ex.send(INVOICE).body == b"<ok/>" and len(seen) == 2


# ------------------------------------------------------------------ auth in the loop


def oauth(
    store: InMemoryTokenStore, *, expires_in: float = 3600, now: datetime | None = None
) -> OAuth2Auth:
    now = now or datetime.now(UTC)
    store.save(
        "xero",
        "acme",
        TokenSet(
            access_token=SecretStr("access-old-123"),
            refresh_token=SecretStr("refresh-old-123"),
            expires_at=now + timedelta(seconds=expires_in),
        ),
    )
    return OAuth2Auth(
        platform="xero",
        tenant_id="acme",
        token_url=TOKEN_URL,
        client_id="cid",
        client_secret=SecretStr("csecret-xyz"),
        store=store,
        clock=lambda: now,
    )


def api_and_token_endpoint(api_status_for: Callable[[str], int]):
    token_calls: list[httpx.Request] = []
    api_calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            token_calls.append(request)
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
            n = len(token_calls)
            assert form["grant_type"] == "refresh_token"
            return httpx.Response(
                200,
                json={
                    "access_token": f"access-new-{n}",
                    "refresh_token": f"refresh-new-{n}",
                    "expires_in": 1800,
                    "token_type": "Bearer",
                    "api_domain": "https://eu.test",
                },
            )
        api_calls.append(request)
        token = request.headers["Authorization"].removeprefix("Bearer ")
        return httpx.Response(api_status_for(token), json={"Id": "1"})

    return handler, token_calls, api_calls


def test_401_refresh_then_retry_once() -> None:
    store = InMemoryTokenStore()
    auth = oauth(store)
    handler, token_calls, api_calls = api_and_token_endpoint(
        lambda tok: 200 if tok.startswith("access-new") else 401
    )
    ex, t, reg = executor(handler, auth=auth)
    assert ex.send(INVOICE).status == 200
    assert len(token_calls) == 1 and len(api_calls) == 2 and t.sleeps == []
    assert token_calls[0].headers["Authorization"].startswith("Basic ")
    assert (
        dict(urllib.parse.parse_qsl(token_calls[0].content.decode()))["refresh_token"]
        == "refresh-old-123"
    )
    assert api_calls[1].headers["Authorization"] == "Bearer access-new-1"
    stored = store.load("xero", "acme")
    assert stored is not None and stored.version == 2
    assert stored.token.refresh_token is not None
    assert stored.token.refresh_token.get_secret_value() == "refresh-new-1"
    assert stored.token.extras == {"api_domain": "https://eu.test"}
    assert (
        reg.get_sample_value(
            "ledgerstream_sink_api_latency_seconds_count",
            {"platform": "xero", "operation": "refresh token", "status": "200"},
        )
        == 1
    )


def test_second_401_after_refresh_is_configuration_error() -> None:
    store = InMemoryTokenStore()
    handler, token_calls, api_calls = api_and_token_endpoint(lambda tok: 401)
    ex, _, _ = executor(handler, auth=oauth(store))
    with pytest.raises(ConfigurationError, match="right after a refresh"):
        ex.send(INVOICE)
    assert len(token_calls) == 1 and len(api_calls) == 2


def test_expiring_token_is_refreshed_before_use() -> None:
    store = InMemoryTokenStore()
    handler, token_calls, api_calls = api_and_token_endpoint(lambda tok: 200)
    ex, _, _ = executor(handler, auth=oauth(store, expires_in=30))  # inside the 120 s margin
    ex.send(INVOICE)
    assert len(token_calls) == 1
    assert api_calls[0].headers["Authorization"] == "Bearer access-new-1"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "invalid_grant"}, ConfigurationError),
        (401, {"error": "invalid_client"}, ConfigurationError),
        (503, {}, TransientError),
    ],
)
def test_refresh_failures(status: int, body: dict, expected: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(status, json=body)
        return httpx.Response(401)

    store = InMemoryTokenStore()
    ex, _, _ = executor(handler, auth=oauth(store), retry=RetryPolicy(max_attempts=2))
    with pytest.raises(expected):
        ex.send(INVOICE)
    stored = store.load("xero", "acme")
    assert stored is not None and stored.version == 1  # nothing rotated


def test_no_stored_grant_is_configuration_error() -> None:
    auth = OAuth2Auth(
        platform="xero",
        tenant_id="nobody",
        token_url=TOKEN_URL,
        client_id="c",
        client_secret=SecretStr("s-secret"),
        store=InMemoryTokenStore(),
    )
    handler, _, _ = api_and_token_endpoint(lambda tok: 200)
    ex, _, _ = executor(handler, auth=auth)
    with pytest.raises(ConfigurationError, match="connect it first"):
        ex.send(INVOICE)


def test_api_key_401_is_configuration_error_without_retry() -> None:
    handler, seen = responses(httpx.Response(401))
    ex, _, _ = executor(handler, auth=ApiKeyAuth(SecretStr("key-abcdef"), header="X-Api-Key"))
    with pytest.raises(ConfigurationError, match="not refreshable"):
        ex.send(INVOICE)
    assert len(seen) == 1 and seen[0].headers["X-Api-Key"] == "key-abcdef"


def test_api_key_in_query() -> None:
    handler, seen = responses(httpx.Response(200))
    ex, _, _ = executor(
        handler, auth=ApiKeyAuth(SecretStr("key-abcdef"), header=None, query_param="api_key")
    )
    ex.send(INVOICE)
    assert seen[0].url.params["api_key"] == "key-abcdef"
    assert seen[0].url.params["summarizeErrors"] == "false"


def test_session_login_and_relogin_on_401() -> None:
    logins: list[httpx.Request] = []
    valid = {"sess-1": False, "sess-2": True}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/login":
            logins.append(request)
            return httpx.Response(200, json={"session_id": f"sess-{len(logins)}"})
        return httpx.Response(
            200 if valid.get(request.headers.get("X-Session", ""), False) else 401
        )

    auth = SessionAuth(
        login=lambda: PlatformRequest("POST", "/login", purpose="login", json={"user": "u"}),
        parse_session=lambda r: r.json()["session_id"],
        header="X-Session",
    )
    ex, _, _ = executor(handler, auth=auth)
    assert ex.send(INVOICE).status == 200
    assert len(logins) == 2  # first login, then re-login after the 401
    assert ex.send(INVOICE).status == 200 and len(logins) == 2


def test_session_cookie() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/login":
            return httpx.Response(200, json={"sid": "cookie-val-9"})
        return httpx.Response(200 if request.headers.get("cookie") == "SID=cookie-val-9" else 401)

    auth = SessionAuth(
        login=lambda: PlatformRequest("POST", "/login", purpose="login"),
        parse_session=lambda r: r.json()["sid"],
        cookie="SID",
    )
    ex, _, _ = executor(handler, auth=auth)
    assert ex.send(INVOICE).status == 200


def test_session_failed_login_is_configuration_error() -> None:
    handler, _ = responses(httpx.Response(401))
    auth = SessionAuth(
        login=lambda: PlatformRequest("POST", "/login", purpose="login"),
        parse_session=lambda r: "x",
        header="X-Session",
    )
    ex, _, _ = executor(handler, auth=auth)
    with pytest.raises(ConfigurationError, match="login failed"):
        ex.send(INVOICE)
