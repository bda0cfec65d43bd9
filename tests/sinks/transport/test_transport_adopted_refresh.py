"""A 401 cured by another worker's rotation: the executor adopts the rotated grant, and
if that grant's access token is dead too, it refreshes once more itself (with the
rotated refresh token, never the spent one) instead of pausing the tenant."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from sinks.core.contract import PlatformRequest
from sinks.core.errors import ConfigurationError
from sinks.transport.auth import InMemoryTokenStore, OAuth2Auth, TokenSet
from sinks.transport.http import HttpExecutor, make_client

TOKEN_URL = "https://identity.test/connect/token"


class Platform:
    """Access tokens the API accepts, and a token endpoint that rotates."""

    def __init__(self) -> None:
        self.live_access: set[str] = set()
        self.live_refresh: set[str] = {"adopt-ref-1"}
        self.minted = 0
        self.token_calls: list[str] = []
        self.api_calls: list[str] = []

    def rotate(self, refresh_token: str) -> dict[str, object]:
        assert refresh_token in self.live_refresh, f"spent refresh token {refresh_token}"
        self.live_refresh.discard(refresh_token)
        self.minted += 1
        access, refresh = f"adopt-acc-{self.minted + 1}", f"adopt-ref-{self.minted + 1}"
        self.live_access.add(access)
        self.live_refresh.add(refresh)
        return {"access_token": access, "refresh_token": refresh, "expires_in": 1800}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
            self.token_calls.append(form["refresh_token"])
            if form["refresh_token"] not in self.live_refresh:
                return httpx.Response(400, json={"error": "invalid_grant"})
            return httpx.Response(200, json=self.rotate(form["refresh_token"]))
        bearer = request.headers["Authorization"].removeprefix("Bearer ")
        self.api_calls.append(bearer)
        if bearer not in self.live_access:
            return httpx.Response(401, json={"Detail": "TokenExpired: token expired"})
        return httpx.Response(200, json={"ok": True})


def setup() -> tuple[Platform, InMemoryTokenStore, HttpExecutor]:
    platform = Platform()
    platform.live_access.add("adopt-acc-1")
    store = InMemoryTokenStore()
    store.save("xero", "acme", TokenSet(access_token=SecretStr("adopt-acc-1"),
                                        refresh_token=SecretStr("adopt-ref-1"),
                                        expires_at=datetime.now(UTC) + timedelta(hours=1)))
    auth = OAuth2Auth(platform="xero", tenant_id="acme", token_url=TOKEN_URL,
                      client_id="cid", client_secret=SecretStr("csecret-adopted-987"), store=store)
    executor = HttpExecutor(
        platform="xero", tenant_id="acme", auth=auth,
        client=make_client(base_url="https://api.test", transport=httpx.MockTransport(
            platform.handler)))
    return platform, store, executor


def other_worker_rotates(platform: Platform, store: InMemoryTokenStore) -> None:
    current = store.load("xero", "acme")
    assert current is not None and current.token.refresh_token is not None
    new = platform.rotate(current.token.refresh_token.get_secret_value())
    store.rotate("xero", "acme", seen_version=current.version, refresh=lambda _: TokenSet(
        access_token=SecretStr(str(new["access_token"])),
        refresh_token=SecretStr(str(new["refresh_token"])),
        expires_at=datetime.now(UTC) + timedelta(seconds=1800)))


GET = PlatformRequest("GET", "/Invoices", purpose="list invoices")


def test_adopted_grant_with_a_dead_access_token_is_refreshed_once_more() -> None:
    platform, store, executor = setup()
    assert executor.send(GET).status == 200          # caches access-1
    other_worker_rotates(platform, store)             # store: access-2 / refresh-2
    platform.live_access.clear()                      # every access token expires
    assert executor.send(GET).status == 200
    # access-1 rejected -> adopt access-2 (no endpoint call) -> rejected -> refresh
    # with the rotated refresh-2 (the spent refresh-1 is never sent) -> access-3
    assert platform.api_calls == ["adopt-acc-1", "adopt-acc-1", "adopt-acc-2", "adopt-acc-3"]
    assert platform.token_calls == ["adopt-ref-2"]
    stored = store.load("xero", "acme")
    assert stored is not None and stored.token.access_token.get_secret_value() == "adopt-acc-3"


def test_adopted_grant_that_works_needs_no_token_call() -> None:
    platform, store, executor = setup()
    executor.send(GET)
    other_worker_rotates(platform, store)
    platform.live_access.discard("adopt-acc-1")
    assert executor.send(GET).status == 200
    assert platform.api_calls[-2:] == ["adopt-acc-1", "adopt-acc-2"]
    assert platform.token_calls == []


def test_a_token_we_minted_rejected_still_pauses_the_tenant() -> None:
    platform, _, executor = setup()
    executor.send(GET)
    platform.live_access.clear()
    original = platform.rotate

    def rotate_but_dead(refresh_token: str) -> dict[str, object]:
        out = original(refresh_token)
        platform.live_access.clear()  # the platform rejects even fresh tokens (revoked app)
        return out

    platform.rotate = rotate_but_dead  # type: ignore[method-assign]
    with pytest.raises(ConfigurationError, match="right after a refresh"):
        executor.send(GET)
    assert platform.token_calls == ["adopt-ref-1"], "exactly one minting refresh"
