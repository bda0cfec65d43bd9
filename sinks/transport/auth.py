"""Authentication schemes, applied by the HTTP executor to each outgoing request.

Every scheme is an :class:`Authenticator`: :meth:`~Authenticator.apply` stamps the
credential on an ``httpx.Request`` and returns its *generation* (a number that
changes whenever the credential does); :meth:`~Authenticator.refresh` obtains a new
credential by sending requests through the executor (the token or login call is an
ordinary request, so it gets the same timeouts, metrics and error taxonomy) and is
told which generation failed, so that a worker that lost a race adopts the winner's
credential instead of refreshing again.

Schemes: :class:`ApiKeyAuth` (header or query), :class:`OAuth2Auth` (bearer with
refresh; rotating refresh tokens persisted encrypted in a :class:`TokenStore`, rotated
under a row lock), :class:`ClientCredentialsAuth` (OAuth 2 client credentials grant,
RFC 6749 §4.4: no refresh token, a new access token is simply requested again; cached
per process), :class:`OAuth1Auth` (NetSuite token-based auth, RFC 5849 with
HMAC-SHA256) and :class:`SessionAuth` (login request, re-login on 401).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from sinks.core.contract import PlatformRequest, PlatformResponse, Transport
from sinks.core.errors import ConfigurationError, SinkError, classify_http
from sinks.transport.db import Database, connection
from sinks.transport.redact import register_secret

log = logging.getLogger(__name__)

#: ``Set-Cookie`` attributes, which are not cookies of their own.
_COOKIE_ATTRIBUTES = frozenset({"path", "domain", "expires", "max-age", "secure", "httponly",
                                "samesite", "priority", "partitioned"})


def response_cookies(response: PlatformResponse) -> dict[str, str]:
    """Every cookie a response set, by name. ``PlatformResponse`` headers are one
    lower-cased mapping, so several ``Set-Cookie`` headers arrive joined by commas; an
    ``expires`` date's own comma leaves a fragment without ``=``, which is skipped."""
    out: dict[str, str] = {}
    for part in response.headers.get("set-cookie", "").replace(",", ";").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name.lower() not in _COOKIE_ATTRIBUTES:
            out[name] = value
    return out

__all__ = [
    "ApiKeyAuth",
    "Authenticator",
    "ClientCredentialsAuth",
    "InMemoryTokenStore",
    "OAuth1Auth",
    "OAuth2Auth",
    "PostgresTokenStore",
    "SessionAuth",
    "StoredToken",
    "TokenCipher",
    "TokenSet",
    "TokenStore",
    "generate_token_key",
    "oauth1_signature_base_string",
]


class Authenticator(ABC):
    """A credential the executor stamps on requests and, where possible, renews."""

    #: Whether :meth:`refresh` can obtain a new credential (a 401 with an API key or a
    #: TBA token cannot be cured by retrying; it is a configuration error).
    can_refresh: ClassVar[bool] = False

    @abstractmethod
    def apply(self, request: httpx.Request) -> int:
        """Add the credential to ``request``; return its generation."""

    @property
    def generation(self) -> int:
        """The generation :meth:`apply` would stamp now."""
        return 0

    def needs_refresh(self) -> bool:
        """True when the credential is missing or about to expire."""
        return False

    def refresh_if_needed(self, send: Transport) -> None:
        """Renew a missing or expiring credential before it is used.

        The generation is read *before* the check: read after it, it could be that of
        a credential another lane renewed while this one waited for the lock, which
        :meth:`refresh` would then take for stale and renew again (for a login session,
        one more licence seat held)."""
        stale = self.generation
        if self.needs_refresh():
            self.refresh(send, stale_generation=stale)

    def refresh(self, send: Transport, *, stale_generation: int) -> bool | None:
        """Renew the credential of generation ``stale_generation`` using ``send``.

        Returns ``False`` when no new credential was minted because another worker had
        already renewed it (its result was adopted), so the executor knows that a
        rejection of the adopted credential is not yet a rejection of the tenant.
        """
        raise ConfigurationError("credentials were rejected and cannot be refreshed")

    def close(self, send: Transport) -> None:
        """Give back what the credential holds at the platform (a login session) when
        the sink stops; nothing for tokens and keys."""
        del send


# --------------------------------------------------------------------------- API key


class ApiKeyAuth(Authenticator):
    """A static key in a header (``X-API-Key: k``, ``Authorization: Token k``) or in a
    query parameter (``?api_key=k``)."""

    def __init__(
        self,
        key: SecretStr,
        *,
        header: str | None = "X-API-Key",
        prefix: str = "",
        query_param: str | None = None,
    ) -> None:
        if (header is None) == (query_param is None):
            raise ValueError("give exactly one of header / query_param")
        self._key = key
        self._header = header
        self._prefix = prefix
        self._query_param = query_param
        register_secret(key.get_secret_value())

    def apply(self, request: httpx.Request) -> int:
        value = self._key.get_secret_value()
        if self._query_param is not None:
            request.url = request.url.copy_set_param(self._query_param, value)
        elif self._header is not None:
            request.headers[self._header] = f"{self._prefix}{value}"
        return 0


# ------------------------------------------------------------------------ OAuth 1 (TBA)


def _pct(value: str) -> str:
    """RFC 5849 §3.6 percent-encoding (unreserved characters only stay as they are)."""
    return urllib.parse.quote(value, safe="-._~")


def oauth1_signature_base_string(
    method: str, url: str, oauth_params: Mapping[str, str], body: bytes | None, content_type: str
) -> str:
    """RFC 5849 §3.4.1: method, base string URI and normalised parameters.

    Parameters come from the query, the ``oauth_*`` protocol parameters (without
    ``realm`` and ``oauth_signature``) and a form-encoded body; JSON bodies are not
    signed (they are not parameters).
    """
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    host = (parsed.hostname or "").lower()
    port = parsed.port
    if port is not None and not (
        (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    ):
        host = f"{host}:{port}"
    base_uri = f"{scheme}://{host}{parsed.path or '/'}"
    params: list[tuple[str, str]] = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    if body and content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        params += urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    params += [(k, v) for k, v in oauth_params.items() if k not in ("realm", "oauth_signature")]
    normalised = "&".join(f"{k}={v}" for k, v in sorted((_pct(k), _pct(v)) for k, v in params))
    return "&".join((method.upper(), _pct(base_uri), _pct(normalised)))


class OAuth1Auth(Authenticator):
    """OAuth 1.0a as NetSuite token-based authentication uses it (RFC 5849 header).

    Signature = base64(HMAC-SHA256(key = ``consumer_secret&token_secret``, base
    string)); ``realm`` is the account id (uppercase, ``123456_SB1``) and is not
    signed. Every request gets a fresh nonce and timestamp.
    """

    _ALGORITHMS: ClassVar[dict[str, Callable[..., Any]]] = {
        "HMAC-SHA256": hashlib.sha256,
        "HMAC-SHA1": hashlib.sha1,
    }

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: SecretStr,
        token: str,
        token_secret: SecretStr,
        realm: str | None = None,
        signature_method: Literal["HMAC-SHA256", "HMAC-SHA1"] = "HMAC-SHA256",
        include_version: bool = True,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.consumer_key = consumer_key
        self.token = token
        self.realm = realm
        self.signature_method = signature_method
        self._consumer_secret = consumer_secret
        self._token_secret = token_secret
        self._include_version = include_version
        self._clock = clock
        self._nonce = nonce
        register_secret(consumer_secret.get_secret_value())
        register_secret(token_secret.get_secret_value())

    def sign(self, method: str, url: str, body: bytes | None, content_type: str) -> str:
        """The ``Authorization`` header value for one request."""
        oauth = {
            "oauth_consumer_key": self.consumer_key,
            "oauth_token": self.token,
            "oauth_signature_method": self.signature_method,
            "oauth_timestamp": str(int(self._clock())),
            "oauth_nonce": self._nonce(),
        }
        if self._include_version:
            oauth["oauth_version"] = "1.0"
        base = oauth1_signature_base_string(method, url, oauth, body, content_type)
        key = "&".join(
            (
                _pct(self._consumer_secret.get_secret_value()),
                _pct(self._token_secret.get_secret_value()),
            )
        )
        digest = hmac.new(
            key.encode(), base.encode(), self._ALGORITHMS[self.signature_method]
        ).digest()
        oauth["oauth_signature"] = base64.b64encode(digest).decode()
        parts = [f'realm="{_pct(self.realm)}"'] if self.realm is not None else []
        parts += [f'{_pct(k)}="{_pct(v)}"' for k, v in oauth.items()]
        return "OAuth " + ", ".join(parts)

    def apply(self, request: httpx.Request) -> int:
        body = request.content if request.content else None
        request.headers["Authorization"] = self.sign(
            request.method, str(request.url), body, request.headers.get("content-type", "")
        )
        return 0


# ------------------------------------------------------------------- token storage


@dataclass(frozen=True)
class TokenSet:
    """An OAuth 2 grant: the short-lived access token and the (rotating) refresh token.

    ``extras`` keeps other fields of the token response a platform needs later
    (Zoho's ``api_domain``, QuickBooks' refresh-token expiry).
    """

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_at: datetime | None = None
    token_type: str = "Bearer"
    scope: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def expires_within(self, seconds: float, now: datetime) -> bool:
        if self.expires_at is None:
            return False
        return (self.expires_at - now).total_seconds() <= seconds

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "access_token": self.access_token.get_secret_value(),
                "refresh_token": (
                    self.refresh_token.get_secret_value() if self.refresh_token else None
                ),
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "token_type": self.token_type,
                "scope": self.scope,
                "extras": dict(self.extras),
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TokenSet:
        data = json.loads(raw)
        return cls(
            access_token=SecretStr(data["access_token"]),
            refresh_token=SecretStr(data["refresh_token"]) if data.get("refresh_token") else None,
            expires_at=datetime.fromisoformat(data["expires_at"]) if data["expires_at"] else None,
            token_type=data.get("token_type") or "Bearer",
            scope=data.get("scope"),
            extras=data.get("extras") or {},
        )


@dataclass(frozen=True)
class StoredToken:
    """A token set and its row version (bumped on every rotation)."""

    token: TokenSet
    version: int


def generate_token_key() -> str:
    """A new urlsafe-base64 AES-256 key for :class:`TokenCipher`."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


class TokenCipher:
    """AES-256-GCM encryption of token sets at rest.

    The (platform, tenant) pair is authenticated as associated data, so a ciphertext
    copied onto another tenant's row fails to decrypt instead of handing one shop's
    books to another. Blobs carry a key id: the first key encrypts, every listed key
    decrypts, so keys can be rotated.
    """

    _VERSION = b"\x01"

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        if not keys:
            raise ConfigurationError("no token encryption key configured")
        self._keys: list[tuple[bytes, AESGCM]] = []
        for key in keys:
            raw = base64.urlsafe_b64decode(key.get_secret_value())
            if len(raw) != 32:
                raise ConfigurationError("token encryption keys must be 32 bytes (base64)")
            self._keys.append((hashlib.sha256(raw).digest()[:4], AESGCM(raw)))

    @staticmethod
    def _aad(platform: str, tenant_id: str) -> bytes:
        return f"ledgerstream-token\x00{platform}\x00{tenant_id}".encode()

    def encrypt(self, token: TokenSet, platform: str, tenant_id: str) -> bytes:
        kid, aes = self._keys[0]
        nonce = os.urandom(12)
        sealed = aes.encrypt(nonce, token.to_json(), self._aad(platform, tenant_id))
        return self._VERSION + kid + nonce + sealed

    def decrypt(self, blob: bytes, platform: str, tenant_id: str) -> TokenSet:
        if blob[:1] != self._VERSION:
            raise ConfigurationError("unknown token ciphertext format", platform=platform)
        kid, nonce, sealed = blob[1:5], blob[5:17], blob[17:]
        for key_id, aes in self._keys:
            if key_id == kid:
                try:
                    plain = aes.decrypt(nonce, sealed, self._aad(platform, tenant_id))
                except InvalidTag:
                    break
                return TokenSet.from_json(plain)
        raise ConfigurationError(
            f"stored token of tenant {tenant_id!r} cannot be decrypted with the configured keys",
            platform=platform,
        )


class TokenStore(ABC):
    """Where OAuth grants live between processes."""

    @abstractmethod
    def load(self, platform: str, tenant_id: str) -> StoredToken | None:
        """The current grant, or ``None`` if the tenant never connected."""

    @abstractmethod
    def save(self, platform: str, tenant_id: str, token: TokenSet) -> StoredToken:
        """Store a grant obtained outside a refresh (initial connection, re-consent)."""

    @abstractmethod
    def rotate(
        self,
        platform: str,
        tenant_id: str,
        *,
        seen_version: int,
        refresh: Callable[[TokenSet], TokenSet],
    ) -> StoredToken:
        """Replace the grant of version ``seen_version`` by ``refresh(current)``, holding
        an exclusive lock across the call; if the stored version moved on meanwhile,
        return the newer grant without calling ``refresh``."""


class InMemoryTokenStore(TokenStore):
    """A process-local store (tests, single-process demos)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], StoredToken] = {}

    def load(self, platform: str, tenant_id: str) -> StoredToken | None:
        with self._lock:
            return self._rows.get((platform, tenant_id))

    def save(self, platform: str, tenant_id: str, token: TokenSet) -> StoredToken:
        with self._lock:
            old = self._rows.get((platform, tenant_id))
            row = StoredToken(token, (old.version + 1) if old else 1)
            self._rows[(platform, tenant_id)] = row
            return row

    def rotate(
        self,
        platform: str,
        tenant_id: str,
        *,
        seen_version: int,
        refresh: Callable[[TokenSet], TokenSet],
    ) -> StoredToken:
        with self._lock:
            row = self._rows.get((platform, tenant_id))
            if row is None:
                raise _not_connected(platform, tenant_id)
            if row.version != seen_version:
                return row
            new = StoredToken(refresh(row.token), row.version + 1)
            self._rows[(platform, tenant_id)] = new
            return new


def _not_connected(platform: str, tenant_id: str) -> ConfigurationError:
    return ConfigurationError(
        f"tenant {tenant_id!r} has no stored OAuth grant; connect it first", platform=platform
    )


class PostgresTokenStore(TokenStore):
    """Grants in ``sink_oauth_tokens``, encrypted with a :class:`TokenCipher`.

    :meth:`rotate` runs in one transaction: ``SELECT ... FOR UPDATE`` on the row,
    compare versions, call the token endpoint, write the new grant, commit. A second
    worker blocks on the row lock and then sees the bumped version, so a rotating
    refresh token is never spent twice. The lock is held across the HTTP call, which
    the client's timeouts bound.
    """

    def __init__(self, db: Database, cipher: TokenCipher) -> None:
        self._db = db
        self._cipher = cipher

    def load(self, platform: str, tenant_id: str) -> StoredToken | None:
        with connection(self._db) as conn:
            row = conn.execute(
                "SELECT ciphertext, version FROM sink_oauth_tokens"
                " WHERE platform = %s AND tenant_id = %s",
                (platform, tenant_id),
            ).fetchone()
        if row is None:
            return None
        return StoredToken(self._cipher.decrypt(bytes(row[0]), platform, tenant_id), row[1])

    def save(self, platform: str, tenant_id: str, token: TokenSet) -> StoredToken:
        blob = self._cipher.encrypt(token, platform, tenant_id)
        with connection(self._db) as conn, conn.transaction():
            row = conn.execute(
                "INSERT INTO sink_oauth_tokens (platform, tenant_id, ciphertext, expires_at)"
                " VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (platform, tenant_id) DO UPDATE SET"
                "   ciphertext = EXCLUDED.ciphertext, expires_at = EXCLUDED.expires_at,"
                "   version = sink_oauth_tokens.version + 1, updated_at = now()"
                " RETURNING version",
                (platform, tenant_id, blob, token.expires_at),
            ).fetchone()
        assert row is not None
        return StoredToken(token, row[0])

    def rotate(
        self,
        platform: str,
        tenant_id: str,
        *,
        seen_version: int,
        refresh: Callable[[TokenSet], TokenSet],
    ) -> StoredToken:
        with connection(self._db) as conn, conn.transaction():
            row = conn.execute(
                "SELECT ciphertext, version FROM sink_oauth_tokens"
                " WHERE platform = %s AND tenant_id = %s FOR UPDATE",
                (platform, tenant_id),
            ).fetchone()
            if row is None:
                raise _not_connected(platform, tenant_id)
            current = self._cipher.decrypt(bytes(row[0]), platform, tenant_id)
            if row[1] != seen_version:
                return StoredToken(current, row[1])
            new = refresh(current)
            blob = self._cipher.encrypt(new, platform, tenant_id)
            conn.execute(
                "UPDATE sink_oauth_tokens SET ciphertext = %s, expires_at = %s,"
                " version = version + 1, updated_at = now()"
                " WHERE platform = %s AND tenant_id = %s",
                (blob, new.expires_at, platform, tenant_id),
            )
            return StoredToken(new, row[1] + 1)


# ------------------------------------------------------------------------- OAuth 2

_GRANT_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


def _token_endpoint_request(
    token_url: str,
    form: dict[str, str],
    *,
    client_id: str,
    client_secret: SecretStr,
    client_auth: Literal["basic", "body"],
    purpose: str,
) -> PlatformRequest:
    """A form-encoded token-endpoint POST, the client authenticated per ``client_auth``
    (HTTP Basic or ``client_id``/``client_secret`` in the body)."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    secret = client_secret.get_secret_value()
    if client_auth == "basic":
        pair = f"{_pct(client_id)}:{_pct(secret)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    else:
        form |= {"client_id": client_id, "client_secret": secret}
    return PlatformRequest(
        "POST",
        token_url,
        purpose=purpose,
        headers=headers,
        content=urllib.parse.urlencode(form).encode(),
    )


def _token_payload(
    response: PlatformResponse,
    *,
    platform: str,
    fatal_codes: frozenset[str],
    what: str,
    remedy: str,
) -> dict[str, Any]:
    """The JSON object of a successful token-endpoint response, or the error it stands
    for: a refusal (a ``fatal_codes`` error or 401) or a non-retryable failure is a
    :class:`ConfigurationError` starting with ``what``; retryable failures are raised
    as classified."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status in (400, 401) and isinstance(payload, dict):
        code = str(payload.get("error", ""))
        if code in fatal_codes or response.status == 401:
            raise ConfigurationError(
                f"{what} refused: {payload.get('error_description') or code}; {remedy}",
                platform=platform,
                vendor_code=code or None,
                status=response.status,
            )
    error = classify_http(response.status, response.headers, response.body, platform=platform)
    if error is not None:
        if error.retryable:
            raise error
        raise ConfigurationError(
            f"{what} failed: {error.reason}",
            platform=platform,
            status=response.status,
        )
    if not isinstance(payload, dict) or not payload.get("access_token"):
        raise ConfigurationError(
            "token endpoint answered without an access_token", platform=platform
        )
    return payload



class OAuth2Auth(Authenticator):
    """Bearer tokens with refresh, for one (platform, tenant).

    The grant lives in a :class:`TokenStore` (shared by all workers); this object
    caches it. Refreshing goes through :meth:`TokenStore.rotate`, so with the
    PostgreSQL store exactly one worker calls the token endpoint per rotation and the
    others pick up its result. A rejected grant (``invalid_grant``: revoked, expired,
    or a rotated refresh token spent by someone else) is a :class:`ConfigurationError`:
    the tenant must reconnect.
    """

    can_refresh = True

    def __init__(
        self,
        *,
        platform: str,
        tenant_id: str,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        store: TokenStore,
        client_auth: Literal["basic", "body"] = "basic",
        header: str = "Authorization",
        scheme: str = "Bearer",
        refresh_margin: float = 120.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.platform = platform
        self.tenant_id = tenant_id
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._store = store
        self._client_auth = client_auth
        self._header = header
        self._scheme = scheme
        self._margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._current: StoredToken | None = None
        register_secret(client_secret.get_secret_value())

    @property
    def current(self) -> StoredToken:
        """The cached grant, loaded from the store on first use."""
        with self._lock:
            if self._current is None:
                found = self._store.load(self.platform, self.tenant_id)
                if found is None:
                    raise _not_connected(self.platform, self.tenant_id)
                self._adopt(found)
            assert self._current is not None
            return self._current

    def _adopt(self, stored: StoredToken) -> None:
        self._current = stored
        register_secret(stored.token.access_token.get_secret_value())
        if stored.token.refresh_token is not None:
            register_secret(stored.token.refresh_token.get_secret_value())

    @property
    def generation(self) -> int:
        return self.current.version

    def needs_refresh(self) -> bool:
        return self.current.token.expires_within(self._margin, self._clock())

    def apply(self, request: httpx.Request) -> int:
        stored = self.current
        request.headers[self._header] = (
            f"{self._scheme} {stored.token.access_token.get_secret_value()}"
        )
        return stored.version

    def refresh(self, send: Transport, *, stale_generation: int) -> bool:
        minted = False

        def call_endpoint(current: TokenSet) -> TokenSet:
            nonlocal minted
            minted = True
            return self._call_token_endpoint(send, current)

        stored = self._store.rotate(
            self.platform,
            self.tenant_id,
            seen_version=stale_generation,
            refresh=call_endpoint,
        )
        with self._lock:
            self._adopt(stored)
        return minted

    def refresh_request(self, current: TokenSet) -> PlatformRequest:
        """The token-endpoint request that spends ``current``'s refresh token."""
        if current.refresh_token is None:
            raise ConfigurationError(
                f"tenant {self.tenant_id!r} has no refresh token; reconnect it",
                platform=self.platform,
            )
        form = {
            "grant_type": "refresh_token",
            "refresh_token": current.refresh_token.get_secret_value(),
        }
        return _token_endpoint_request(
            self.token_url,
            form,
            client_id=self.client_id,
            client_secret=self._client_secret,
            client_auth=self._client_auth,
            purpose="refresh token",
        )

    def parse_token_response(self, response: PlatformResponse, current: TokenSet) -> TokenSet:
        """The new grant from a token-endpoint response, or the error it stands for."""
        payload = _token_payload(
            response,
            platform=self.platform,
            fatal_codes=_GRANT_ERRORS,
            what=f"token refresh for tenant {self.tenant_id!r}",
            remedy="reconnect the tenant",
        )
        known = {"access_token", "refresh_token", "expires_in", "token_type", "scope"}
        expires_in = payload.get("expires_in")
        now = self._clock()
        return TokenSet(
            access_token=SecretStr(str(payload["access_token"])),
            # Platforms that do not rotate omit refresh_token: keep the one we have.
            refresh_token=(
                SecretStr(str(payload["refresh_token"]))
                if payload.get("refresh_token")
                else current.refresh_token
            ),
            expires_at=(
                datetime.fromtimestamp(now.timestamp() + float(expires_in), UTC)
                if expires_in is not None
                else None
            ),
            token_type=str(payload.get("token_type") or "Bearer"),
            scope=payload.get("scope"),
            extras={k: v for k, v in payload.items() if k not in known},
        )

    def _call_token_endpoint(self, send: Transport, current: TokenSet) -> TokenSet:
        response = send(self.refresh_request(current))
        return self.parse_token_response(response, current)


# ------------------------------------------------------------- client credentials


#: Token-endpoint errors that no retry cures: the app registration is wrong.
_CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_scope",
                            "unsupported_grant_type", "invalid_request"})


class ClientCredentialsAuth(Authenticator):
    """Bearer tokens from the OAuth 2 client credentials grant (RFC 6749 §4.4), as
    Microsoft Entra ID issues them for Business Central service-to-service apps.

    There is no refresh token and no grant to persist: the token is requested with
    ``grant_type=client_credentials`` (and ``scope``), cached in this process until
    ``refresh_margin`` seconds before it expires, and requested again then, or when the
    API answers 401 (the executor refreshes once per request, passing the generation
    that failed; a thread that lost the race adopts the winner's token). A token
    endpoint that refuses the client (``invalid_client``, ``invalid_scope``, …) is a
    :class:`ConfigurationError`: the tenant is paused until the app is fixed.
    """

    can_refresh = True

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        scope: str | None = None,
        platform: str = "",
        tenant_id: str = "",
        client_auth: Literal["basic", "body"] = "body",
        header: str = "Authorization",
        scheme: str = "Bearer",
        refresh_margin: float = 120.0,
        default_lifetime: float = 3600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self.platform = platform
        self.tenant_id = tenant_id
        self._client_secret = client_secret
        self._client_auth = client_auth
        self._header = header
        self._scheme = scheme
        self._margin = refresh_margin
        self._default_lifetime = default_lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._token: SecretStr | None = None
        self._expires_at: datetime | None = None
        self._generation = 0
        register_secret(client_secret.get_secret_value())

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def _expiring(self) -> bool:
        if self._token is None or self._expires_at is None:
            return True
        return self._expires_at.timestamp() - self._margin <= self._clock().timestamp()

    def needs_refresh(self) -> bool:
        with self._lock:
            return self._expiring()

    def apply(self, request: httpx.Request) -> int:
        with self._lock:
            token, generation = self._token, self._generation
        if token is not None:
            request.headers[self._header] = f"{self._scheme} {token.get_secret_value()}"
        return generation

    def refresh(self, send: Transport, *, stale_generation: int) -> None:
        with self._lock:
            if self._generation != stale_generation and not self._expiring():
                return  # another thread fetched a fresh token meanwhile
            response = send(self.token_request())
            token, expires_at = self.parse_token_response(response)
            register_secret(token.get_secret_value())
            self._token, self._expires_at = token, expires_at
            self._generation += 1

    def token_request(self) -> PlatformRequest:
        """The token-endpoint request for a new access token."""
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        return _token_endpoint_request(
            self.token_url,
            form,
            client_id=self.client_id,
            client_secret=self._client_secret,
            client_auth=self._client_auth,
            purpose="client credentials token",
        )

    def parse_token_response(self, response: PlatformResponse) -> tuple[SecretStr, datetime]:
        """The access token and its expiry, or the error the response stands for."""
        whose = f"tenant {self.tenant_id!r}" if self.tenant_id else f"client {self.client_id!r}"
        payload = _token_payload(
            response,
            platform=self.platform,
            fatal_codes=_CLIENT_ERRORS,
            what=f"client credentials token for {whose}",
            remedy="check the app registration (client id, secret, scope, permissions)",
        )
        lifetime = payload.get("expires_in")
        seconds = float(lifetime) if lifetime is not None else self._default_lifetime
        expires_at = datetime.fromtimestamp(self._clock().timestamp() + seconds, UTC)
        return SecretStr(str(payload["access_token"])), expires_at


# ------------------------------------------------------------------------ session


class SessionAuth(Authenticator):
    """A session obtained by a login request and re-obtained after a 401.

    ``login`` builds the login request, ``parse_session`` extracts the session id from
    its response; the id is sent as ``header`` (with ``prefix``) or as cookie
    ``cookie``. In cookie mode every cookie the login set goes back with each request,
    as a browser's jar would (Acumatica's ``.ASPXAUTH`` authenticates, its
    ``ASP.NET_SessionId`` carries the server-side session). ``logout`` builds the
    request that ends the session: :meth:`close` sends it when the sink stops, because
    platforms count open API sessions against a licence limit (Acumatica: until an
    idle timeout of about 20 minutes). Sessions are per process, so a plain lock
    suffices.
    """

    can_refresh = True

    def __init__(
        self,
        *,
        login: Callable[[], PlatformRequest],
        parse_session: Callable[[PlatformResponse], str],
        header: str | None = None,
        prefix: str = "",
        cookie: str | None = None,
        logout: Callable[[], PlatformRequest] | None = None,
        platform: str = "",
    ) -> None:
        if (header is None) == (cookie is None):
            raise ValueError("give exactly one of header / cookie")
        self._logout = logout
        self._jar: dict[str, str] = {}
        self._login = login
        self._parse = parse_session
        self._header = header
        self._prefix = prefix
        self._cookie = cookie
        self._platform = platform
        self._lock = threading.Lock()
        self._session: SecretStr | None = None
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def needs_refresh(self) -> bool:
        return self._session is None

    def apply(self, request: httpx.Request) -> int:
        with self._lock:
            session, generation = self._session, self._generation
        if session is not None:
            value = session.get_secret_value()
            if self._header is not None:
                request.headers[self._header] = f"{self._prefix}{value}"
            else:
                request.headers["Cookie"] = self._cookie_header(value)
        return generation

    def _cookie_header(self, session: str) -> str:
        jar = {**self._jar, self._cookie or "": session}
        return "; ".join(f"{name}={value}" for name, value in jar.items())

    def close(self, send: Transport) -> None:
        """Log out (best effort: the sink is stopping; a failure is logged)."""
        if self._logout is None:
            return
        with self._lock:
            session, self._session = self._session, None
            jar, self._jar = self._jar, {}
            self._generation += 1
        if session is None:
            return
        request = self._logout()
        value = session.get_secret_value()
        headers = dict(request.headers)
        if self._header is not None:
            headers[self._header] = f"{self._prefix}{value}"
        else:
            headers["Cookie"] = "; ".join(
                f"{name}={v}" for name, v in {**jar, self._cookie or "": value}.items())
        try:
            response = send(replace(request, headers=headers))
        except SinkError as exc:
            log.warning("%s: logout failed (%s); the session lapses on its own",
                        self._platform, exc)
            return
        if not response.ok:
            log.warning("%s: logout answered HTTP %s; the session lapses on its own",
                        self._platform, response.status)

    def refresh(self, send: Transport, *, stale_generation: int) -> None:
        with self._lock:
            if self._generation != stale_generation:
                return  # another thread logged in meanwhile
            response = send(self._login())
            if not response.ok:
                error = classify_http(
                    response.status, response.headers, response.body, platform=self._platform
                )
                if error is not None and error.retryable:
                    raise error
                raise ConfigurationError(
                    f"login failed with HTTP {response.status}", platform=self._platform
                )
            session = self._parse(response)
            register_secret(session)
            self._session = SecretStr(session)
            if self._cookie is not None:
                self._jar = {name: value for name, value in response_cookies(response).items()
                             if name != self._cookie}
                for value in self._jar.values():
                    register_secret(value)
            self._generation += 1
