"""ClientCredentialsAuth through the HTTP executor (httpx.MockTransport) and against the
Business Central sandbox's Entra-style token endpoint: token fetched with the
client credentials grant, cached, fetched again shortly before expiry and once on 401."""

from __future__ import annotations

import logging
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.core.errors import ConfigurationError, TransientError
from sinks.transport.auth import ClientCredentialsAuth
from sinks.transport.connection import AuthConfig, build_auth
from sinks.transport.http import HttpExecutor, SinkMetrics, make_client
from sinks.transport.redact import RedactingFilter

TOKEN_URL = "https://login.test/contoso/oauth2/v2.0/token"
SCOPE = "https://api.businesscentral.dynamics.com/.default"
SECRET = "cc-secret-0123456789"
GET = PlatformRequest("GET", "/companies", "list companies")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Server:
    """A token endpoint and an API that accepts only the newest token."""

    def __init__(self, *, expires_in: int | None = 3600) -> None:
        self.expires_in = expires_in
        self.issued = 0
        self.token_forms: list[dict[str, str]] = []
        self.api_calls: list[str] = []
        self.revoke = False
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/v2.0/token"):
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
            with self.lock:
                self.token_forms.append(form)
                if form.get("client_secret") != SECRET:
                    return httpx.Response(401, json={
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided."})
                self.issued += 1
                body: dict[str, object] = {"access_token": f"tok-{self.issued:04d}",
                                           "token_type": "Bearer"}
                if self.expires_in is not None:
                    body["expires_in"] = self.expires_in
                return httpx.Response(200, json=body)
        header = request.headers.get("authorization", "")
        with self.lock:
            self.api_calls.append(header)
            current = f"Bearer tok-{self.issued:04d}"
            if self.revoke or header != current:
                return httpx.Response(401, json={"error": {
                    "code": "Authentication_InvalidCredentials",
                    "message": "The credentials provided are incorrect"}})
        return httpx.Response(200, json={"value": []})


def make(server: Server, clock: Clock, **kw: object) -> tuple[HttpExecutor, ClientCredentialsAuth]:
    auth = ClientCredentialsAuth(token_url=TOKEN_URL, client_id="app-1",
                                 client_secret=SecretStr(SECRET), scope=SCOPE,
                                 platform="business-central", tenant_id="acme",
                                 clock=clock, **kw)  # type: ignore[arg-type]
    executor = HttpExecutor(
        platform="business-central", tenant_id="acme",
        client=make_client(base_url="https://api.test/v2.0",
                           transport=httpx.MockTransport(server)),
        auth=auth, metrics=SinkMetrics(CollectorRegistry()), sleep=lambda _: None)
    return executor, auth


def test_token_fetched_with_client_credentials_and_cached() -> None:
    server, clock = Server(), Clock()
    executor, auth = make(server, clock)
    for _ in range(3):
        assert executor.send(GET).status == 200
    assert server.issued == 1
    assert server.token_forms == [{"grant_type": "client_credentials", "scope": SCOPE,
                                   "client_id": "app-1", "client_secret": SECRET}]
    assert server.api_calls == ["Bearer tok-0001"] * 3
    assert auth.generation == 1


def test_basic_client_auth_keeps_the_secret_out_of_the_form() -> None:
    auth = ClientCredentialsAuth(token_url=TOKEN_URL, client_id="app-1",
                                 client_secret=SecretStr(SECRET), scope=SCOPE,
                                 client_auth="basic")
    request = auth.token_request()
    assert request.content is not None and SECRET not in request.content.decode()
    assert request.headers["Authorization"].startswith("Basic ")


def test_token_refreshed_shortly_before_expiry() -> None:
    server, clock = Server(expires_in=3600), Clock()
    executor, _ = make(server, clock, refresh_margin=120.0)
    executor.send(GET)
    clock.advance(3600 - 121)
    executor.send(GET)
    assert server.issued == 1, "still valid beyond the margin: cached"
    clock.advance(2)
    executor.send(GET)
    assert server.issued == 2, "inside the margin: fetched again before use"
    assert server.api_calls[-1] == "Bearer tok-0002"
    assert not any(call == "Bearer tok-0001" for call in server.api_calls[2:])


def test_missing_expires_in_uses_the_default_lifetime() -> None:
    server, clock = Server(expires_in=None), Clock()
    executor, _ = make(server, clock, default_lifetime=600.0, refresh_margin=60.0)
    executor.send(GET)
    clock.advance(539)
    executor.send(GET)
    assert server.issued == 1
    clock.advance(2)
    executor.send(GET)
    assert server.issued == 2


def test_401_fetches_a_new_token_once_and_retries() -> None:
    server, clock = Server(), Clock()
    executor, auth = make(server, clock)
    executor.send(GET)
    server.issued += 1  # the tenant's token was invalidated server-side (tok-0002 is live)
    assert executor.send(GET).status == 200
    assert server.issued == 3
    assert server.api_calls[-2:] == ["Bearer tok-0001", "Bearer tok-0003"]
    assert auth.generation == 2


def test_401_right_after_a_fresh_token_pauses_the_tenant() -> None:
    server, clock = Server(), Clock()
    executor, _ = make(server, clock)
    executor.send(GET)
    server.revoke = True  # e.g. the app was removed from BC's Entra Applications page
    with pytest.raises(ConfigurationError, match="right after a refresh"):
        executor.send(GET)
    assert server.issued == 2, "exactly one refresh per request"


def test_rejected_client_is_a_configuration_error() -> None:
    server, clock = Server(), Clock()
    auth = ClientCredentialsAuth(token_url=TOKEN_URL, client_id="app-1",
                                 client_secret=SecretStr("wrong"), scope=SCOPE, clock=clock)
    executor = HttpExecutor(
        platform="business-central", tenant_id="acme",
        client=make_client(transport=httpx.MockTransport(server)), auth=auth,
        metrics=SinkMetrics(CollectorRegistry()), sleep=lambda _: None)
    with pytest.raises(ConfigurationError, match="AADSTS7000215") as caught:
        executor.send(GET)
    assert caught.value.action.value == "pause_tenant"
    assert server.api_calls == []


def test_token_endpoint_outage_is_retryable() -> None:
    auth = ClientCredentialsAuth(token_url=TOKEN_URL, client_id="app-1",
                                 client_secret=SecretStr(SECRET), scope=SCOPE)
    with pytest.raises(TransientError):
        auth.refresh(lambda _: PlatformResponse(503, {}, b"unavailable"), stale_generation=0)
    assert auth.needs_refresh()


def test_concurrent_workers_fetch_one_token() -> None:
    server, clock = Server(), Clock()
    executor, _ = make(server, clock)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            executor.send(GET)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert server.issued == 1


def test_secrets_are_redacted_from_logs(caplog: pytest.LogCaptureFixture) -> None:
    server, clock = Server(), Clock()
    executor, _ = make(server, clock)
    executor.send(GET)
    logger = logging.getLogger("test.client_credentials")
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1,
                               "secret=%s token=%s", (SECRET, "tok-0001"), None)
    RedactingFilter().filter(record)
    message = record.getMessage()
    assert SECRET not in message and "tok-0001" not in message


def test_connection_block_builds_client_credentials_auth() -> None:
    config = AuthConfig.model_validate({
        "kind": "client_credentials", "token_url": TOKEN_URL, "client_id": "app-1",
        "client_secret": SECRET, "scope": SCOPE})
    auth = build_auth("acme", "business-central", config, tokens=None)
    assert isinstance(auth, ClientCredentialsAuth)
    form = dict(urllib.parse.parse_qsl(auth.token_request().content.decode()))  # type: ignore[union-attr]
    assert form["client_secret"] == SECRET and form["scope"] == SCOPE
    with pytest.raises(ConfigurationError, match="client_secret"):
        build_auth("acme", "business-central", AuthConfig.model_validate({
            "kind": "client_credentials", "token_url": TOKEN_URL, "client_id": "app-1"}),
            tokens=None)


def test_against_the_business_central_sandbox() -> None:
    """The BC sandbox serves Entra's ``/{tenant}/oauth2/v2.0/token``; a token from it
    opens the API."""
    from sinks.sandbox.business_central import BusinessCentralSandbox

    sandbox = BusinessCentralSandbox()
    sandbox.clients["app-1"] = SECRET
    company = "5d1e2f3a-0000-4000-8000-000000000001"
    sandbox.configure(company)
    auth = ClientCredentialsAuth(token_url="/contoso/oauth2/v2.0/token", client_id="app-1",
                                 client_secret=SecretStr(SECRET), scope=SCOPE)
    with sandbox.client() as client:
        executor = HttpExecutor(platform="business-central", tenant_id="acme", client=client,
                                auth=auth, metrics=SinkMetrics(CollectorRegistry()),
                                sleep=lambda _: None)
        response = executor.send(PlatformRequest(
            "GET", f"/v2.0/contoso/production/api/v2.0/companies({company})/customers",
            "list customers"))
    assert response.status == 200, response.text
    assert auth.generation == 1
