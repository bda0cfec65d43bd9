"""Per-tenant connection configuration and the transport built from it.

A tenant's ``connection`` block in the mapping YAML says where the platform is and
how to authenticate; this module validates it and builds the :class:`HttpExecutor`
(with the shared rate limiter and token store) that the runner hands to flows.

```yaml
connection:
  base_url: https://quickbooks.api.intuit.com/v3/company/9130350
  auth:
    kind: oauth2            # none | api_key | oauth2 | client_credentials | oauth1
    token_url: https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer
    client_id: ABC
    client_secret: xyz      # the file is a secret: mount it, never commit it
```
OAuth2 grants themselves live encrypted in PostgreSQL (``ledgerstream connect``).
``client_credentials`` (Business Central via Microsoft Entra ID) has no grant to store:
``token_url``, ``client_id``, ``client_secret`` and ``scope`` suffice, the client sent
in the form body unless ``client_auth: basic``:

```yaml
  auth:
    kind: client_credentials
    token_url: https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token
    client_id: 3f2c…
    client_secret: xyz
    scope: https://api.businesscentral.dynamics.com/.default
```

``session`` is for platforms whose login opens a session that no other kind can
express — Sage Intacct (``getAPISession``; the session id and the sender password
travel *inside the XML body*, :class:`~sinks.transport.xmlapi.BodySessionAuth`) and
Acumatica (``POST /entity/auth/login``; a ``.ASPXAUTH`` cookie,
:class:`~sinks.transport.auth.SessionAuth`). The kind only carries the login
credentials; the authenticator comes from the platform: a platform package may expose
``session_auth(auth: AuthConfig, *, tenant_id: str, platform: str) -> Authenticator``
(looked up on the package of the registered platform class), else the factory
registered here under the platform's name (:data:`SESSION_AUTH_FACTORIES`, which holds
the two above until their packages expose one):

```yaml
  auth:
    kind: session
    username: ws-user           # Intacct login/userid, Acumatica name
    password: xyz               # Intacct login/password, Acumatica password
    company: ACME               # Intacct login/companyid, Acumatica company
    sender_id: ledgerstream     # Intacct Web Services sender (control/senderid)
    sender_password: xyz        # Intacct sender password (control/password)
    login_url: https://acme.acumatica.com   # Acumatica instance (login is outside
                                            # the endpoint); Intacct: gateway path
```
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from sinks.core.contract import Platform
from sinks.core.errors import ConfigurationError
from sinks.transport.auth import (
    ApiKeyAuth,
    Authenticator,
    ClientCredentialsAuth,
    OAuth1Auth,
    OAuth2Auth,
    TokenStore,
)
from sinks.transport.http import HttpExecutor, SinkMetrics, make_client
from sinks.transport.ratelimit import RateLimiter
from sinks.transport.retry import RetryPolicy
from sinks.transport.settings import TransportSettings


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal[
        "none", "api_key", "oauth2", "client_credentials", "rpc_password", "oauth1",
        "session",
    ] = "none"
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    #: How the client authenticates at the token endpoint; default ``basic`` for
    #: ``oauth2``, ``body`` for ``client_credentials`` (Entra ID's documented form).
    client_auth: Literal["basic", "body"] | None = None
    scope: str | None = None
    api_key: SecretStr | None = None
    #: A second, static key some gateways want beside the bearer token (Reckon One's
    #: Azure API Management ``Ocp-Apim-Subscription-Key``).
    subscription_key: SecretStr | None = None
    subscription_header: str = "Ocp-Apim-Subscription-Key"
    header: str = "Authorization"
    scheme: str | None = None
    # OAuth1 TBA (NetSuite)
    account: str | None = None
    consumer_key: str | None = None
    consumer_secret: SecretStr | None = None
    token_id: str | None = None
    token_secret: SecretStr | None = None
    # Session logins (kind ``session``: Sage Intacct, Acumatica); see the module doc.
    username: str | None = None
    password: SecretStr | None = None
    company: str | None = None
    sender_id: str | None = None
    sender_password: SecretStr | None = None
    login_url: str | None = None


class ConnectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str
    auth: AuthConfig = Field(default_factory=AuthConfig)
    headers: dict[str, str] = Field(default_factory=dict)


def parse_connection(tenant_id: str, platform: str, raw: dict[str, Any]) -> ConnectionConfig:
    try:
        return ConnectionConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"connection.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(
            f"tenant {tenant_id!r} has an invalid connection for {platform}: {problems}",
            platform=platform,
        ) from None


def build_auth(
    tenant_id: str, platform: str, auth: AuthConfig, tokens: TokenStore | None
) -> Authenticator | None:
    def need(value: Any, name: str) -> Any:
        if value is None:
            raise ConfigurationError(
                f"tenant {tenant_id!r}: connection.auth.{name} is required for "
                f"auth kind {auth.kind!r}", platform=platform)
        return value

    if auth.kind == "none":
        return None
    if auth.kind == "api_key":
        key = need(auth.api_key, "api_key")
        prefix = f"{auth.scheme} " if auth.scheme else ""
        return ApiKeyAuth(key, header=auth.header, prefix=prefix)
    if auth.kind == "rpc_password":
        from sinks.transport.rpc import RpcPasswordAuth

        return RpcPasswordAuth(need(auth.api_key, "api_key"))
    if auth.kind == "oauth2":
        if tokens is None:
            raise ConfigurationError(
                "OAuth2 tenants need the encrypted token store: set "
                "LEDGERSTREAM_TRANSPORT_TOKEN_ENCRYPTION_KEY", platform=platform)
        oauth = OAuth2Auth(
            platform=platform, tenant_id=tenant_id, token_url=need(auth.token_url, "token_url"),
            client_id=need(auth.client_id, "client_id"),
            client_secret=need(auth.client_secret, "client_secret"), store=tokens,
            client_auth=auth.client_auth or "basic", header=auth.header,
            scheme=auth.scheme or "Bearer",
        )
        if auth.subscription_key is None:
            return oauth
        from sinks.transport.composite_auth import oauth2_with_subscription_key

        return oauth2_with_subscription_key(oauth, auth.subscription_key,
                                            header=auth.subscription_header)
    if auth.kind == "session":
        return session_factory(platform)(auth, tenant_id=tenant_id, platform=platform)
    if auth.kind == "client_credentials":
        return ClientCredentialsAuth(
            platform=platform, tenant_id=tenant_id, token_url=need(auth.token_url, "token_url"),
            client_id=need(auth.client_id, "client_id"),
            client_secret=need(auth.client_secret, "client_secret"), scope=auth.scope,
            client_auth=auth.client_auth or "body", header=auth.header,
            scheme=auth.scheme or "Bearer",
        )
    return OAuth1Auth(
        realm=need(auth.account, "account"),
        consumer_key=need(auth.consumer_key, "consumer_key"),
        consumer_secret=need(auth.consumer_secret, "consumer_secret"),
        token=need(auth.token_id, "token_id"),
        token_secret=need(auth.token_secret, "token_secret"),
    )


# --------------------------------------------------------------------------- sessions

#: ``(auth, *, tenant_id, platform) -> Authenticator`` for ``kind: session``.
SessionAuthFactory = Callable[..., Authenticator]


def _required(auth: AuthConfig, platform: str, tenant_id: str, *names: str) -> list[Any]:
    values = [getattr(auth, name) for name in names]
    missing = [n for n, v in zip(names, values, strict=True) if v is None]
    if missing:
        raise ConfigurationError(
            f"tenant {tenant_id!r}: connection.auth.{', '.join(missing)} required for "
            f"auth kind 'session' on {platform}", platform=platform)
    return values


def _intacct_session(auth: AuthConfig, *, tenant_id: str, platform: str) -> Authenticator:
    """Sage Intacct: ``getAPISession`` with the login in the body; the session id and
    sender password are stamped into every request body."""
    import uuid

    from sinks.transport.redact import register_secret
    from sinks.transport.xmlapi import (
        BodySessionAuth,
        login_envelope,
        session_of,
        xml_request,
    )

    user, password, company, sender, sender_password = _required(
        auth, platform, tenant_id, "username", "password", "company", "sender_id",
        "sender_password")
    register_secret(password.get_secret_value())
    path = auth.login_url or "/ia/xml/xmlgw.phtml"

    def login() -> Any:
        root = login_envelope(sender_id=sender, sender_password=sender_password.get_secret_value(),
                              user_id=user, company_id=company,
                              user_password=password.get_secret_value(),
                              control_id=f"login-{uuid.uuid4().hex}")
        return xml_request(path, root, purpose="login")

    return BodySessionAuth(login=login, parse_session=session_of,
                           sender_password=sender_password, platform=platform)


def _acumatica_session(auth: AuthConfig, *, tenant_id: str, platform: str) -> Authenticator:
    """Acumatica: ``POST {instance}/entity/auth/login``; the ``.ASPXAUTH`` cookie."""
    from sinks.platforms.acumatica import AcumaticaSettings, login_request, logout_request
    from sinks.transport.auth import SessionAuth
    from sinks.transport.redact import register_secret
    from sinks.transport.session_rest import session_cookie

    user, password, company, instance = _required(
        auth, platform, tenant_id, "username", "password", "company", "login_url")
    register_secret(password.get_secret_value())
    settings = AcumaticaSettings(instance_url=instance, company=company)
    return SessionAuth(
        login=lambda: login_request(settings, user, password.get_secret_value()),
        parse_session=lambda response: session_cookie(response, ".ASPXAUTH"),
        cookie=".ASPXAUTH", logout=lambda: logout_request(settings), platform=platform)


#: Session factories by platform name, for platforms whose package exposes none.
SESSION_AUTH_FACTORIES: dict[str, SessionAuthFactory] = {
    "sage-intacct": _intacct_session,
    "acumatica": _acumatica_session,
}


def session_factory(platform: str) -> SessionAuthFactory:
    """The ``session_auth`` the platform's package exposes, else the registered one."""
    from sinks.platforms.registry import get_platform

    with_package: SessionAuthFactory | None = None
    try:
        module = type(get_platform(platform)).__module__
    except ConfigurationError:
        module = ""
    for name in (module, module.rpartition(".")[0]):
        if name:
            with_package = getattr(importlib.import_module(name), "session_auth", None)
            if with_package is not None:
                return with_package
    factory = SESSION_AUTH_FACTORIES.get(platform)
    if factory is None:
        raise ConfigurationError(
            f"auth kind 'session' is not available for {platform}: its package exposes "
            "no session_auth factory", platform=platform)
    return factory


def build_executor(
    *,
    platform: Platform,
    tenant_id: str,
    connection: ConnectionConfig,
    limiter: RateLimiter | None,
    tokens: TokenStore | None,
    settings: TransportSettings | None = None,
    retry: RetryPolicy | None = None,
    metrics: SinkMetrics | None = None,
    transport: httpx.BaseTransport | None = None,
) -> HttpExecutor:
    name = platform.spec.name
    client = make_client(base_url=connection.base_url, settings=settings or TransportSettings(),
                         headers=connection.headers, transport=transport)
    return HttpExecutor(
        platform=name, tenant_id=tenant_id, client=client,
        auth=build_auth(tenant_id, name, connection.auth, tokens),
        limiter=limiter, retry=retry, classify=platform.classify_error, metrics=metrics,
    )
