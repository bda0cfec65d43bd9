"""Login sessions: every cookie of the login goes back, and the sink logs out when it
stops (platforms count open API sessions against a licence: Acumatica)."""

from __future__ import annotations

import logging
import random

import httpx
import pytest
from prometheus_client import CollectorRegistry

from sinks.core.contract import PlatformRequest
from sinks.transport.auth import SessionAuth, response_cookies
from sinks.transport.http import HttpExecutor, SinkMetrics, make_client

GET = PlatformRequest("GET", "/Customer", purpose="list customers")
SET_COOKIES = [("set-cookie", "ASP.NET_SessionId=sid-1; path=/; HttpOnly; SameSite=Lax"),
               ("set-cookie", ".ASPXAUTH=auth-1; expires=Wed, 21 Oct 2026 07:28:00 GMT; "
                              "path=/; HttpOnly"),
               ("set-cookie", "UserBranch=7; path=/")]


class FakePlatform:
    """Logs in with three cookies, serves only requests carrying the two that matter."""

    def __init__(self, logout_status: int = 204) -> None:
        self.logout_status = logout_status
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.path.endswith("/auth/login"):
            return httpx.Response(204, headers=SET_COOKIES)
        cookies = dict(part.split("=", 1) for part in
                       request.headers.get("cookie", "").split("; ") if part)
        if cookies.get(".ASPXAUTH") != "auth-1" or cookies.get("ASP.NET_SessionId") != "sid-1":
            return httpx.Response(401)
        if request.url.path.endswith("/auth/logout"):
            return httpx.Response(self.logout_status)
        return httpx.Response(200, json=[])

    def paths(self) -> list[str]:
        return [r.url.path for r in self.seen]


def session_executor(platform: FakePlatform) -> tuple[HttpExecutor, SessionAuth]:
    auth = SessionAuth(
        login=lambda: PlatformRequest("POST", "/entity/auth/login", purpose="login",
                                      json={"name": "u", "password": "p"}),
        parse_session=lambda r: response_cookies(r)[".ASPXAUTH"],
        cookie=".ASPXAUTH",
        logout=lambda: PlatformRequest("POST", "/entity/auth/logout", purpose="logout"),
        platform="acumatica")
    ex = HttpExecutor(platform="acumatica", tenant_id="t1",
                      client=make_client(base_url="https://erp.test",
                                         transport=httpx.MockTransport(platform)),
                      auth=auth, metrics=SinkMetrics(CollectorRegistry()),
                      sleep=lambda _s: None, rng=random.Random(1))
    return ex, auth


def test_every_login_cookie_goes_back_and_close_logs_out_with_them() -> None:
    platform = FakePlatform()
    ex, auth = session_executor(platform)
    assert ex.send(GET).status == 200
    assert ex.send(GET).status == 200
    ex.close()
    assert platform.paths() == ["/entity/auth/login", "/Customer", "/Customer",
                                "/entity/auth/logout"]
    assert "UserBranch=7" in platform.seen[-1].headers["cookie"]
    assert auth.needs_refresh()  # the session is gone: a later call logs in again
    ex.close()  # nothing held: nothing sent
    assert len(platform.seen) == 4


def test_close_without_a_session_sends_nothing() -> None:
    platform = FakePlatform()
    ex, _ = session_executor(platform)
    ex.close()
    assert platform.seen == []


def test_a_failed_logout_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    platform = FakePlatform(logout_status=500)
    ex, _ = session_executor(platform)
    ex.send(GET)
    with caplog.at_level(logging.WARNING, logger="sinks.transport.auth"):
        ex.close()
    assert "logout answered HTTP 500" in caplog.text


def test_cookie_attributes_and_expiry_commas_are_not_cookies() -> None:
    from sinks.core.contract import PlatformResponse
    joined = ", ".join(value for _, value in SET_COOKIES)
    response = PlatformResponse(204, {"set-cookie": joined}, b"")
    assert response_cookies(response) == {"ASP.NET_SessionId": "sid-1", ".ASPXAUTH": "auth-1",
                                          "UserBranch": "7"}


def test_lanes_starting_together_share_one_login() -> None:
    """Two lanes find no session at once: one logs in, the other waits and uses it (a
    generation read after that wait used to look stale and cost a second seat)."""
    import threading
    import time

    platform = FakePlatform()
    slow_login = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/login"):
            slow_login.set()
            time.sleep(0.2)
        return platform(request)

    auth = session_executor(platform)[1]
    ex = HttpExecutor(platform="acumatica", tenant_id="t1",
                      client=make_client(base_url="https://erp.test",
                                         transport=httpx.MockTransport(handler)),
                      auth=auth, metrics=SinkMetrics(CollectorRegistry()),
                      sleep=lambda _s: None, rng=random.Random(1))
    first = threading.Thread(target=ex.send, args=(GET,))
    first.start()
    slow_login.wait(5)
    assert ex.send(GET).status == 200
    first.join(5)
    assert platform.paths().count("/entity/auth/login") == 1
