"""Platform-independent machinery shared by every platform sandbox.

A sandbox is a local, stateful stand-in for an accounting platform's API. The
sinks are tested against it because the real platforms cannot be reached from
CI, so the sandbox must reproduce the behaviour a sink has to survive: OAuth2
token expiry and refresh-token rotation, rate limits, transient failures and —
the key one for exactly-once delivery — a write that commits while the client
never sees the response.

Everything here is deterministic given an injected :class:`Clock`; the only
real-time effect is the optional injected latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

# --------------------------------------------------------------------------- money


def money(value: Any) -> Decimal:
    """Round to cents the way both platforms present amounts (half-up)."""
    return Decimal(str(value if value is not None else 0)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )


def num(value: Decimal) -> float:
    """JSON number for an amount: both APIs send amounts as JSON numbers."""
    return float(value)


# --------------------------------------------------------------------------- clock


class Clock(Protocol):
    """Source of "now"; injected so rate windows and expiries are testable."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to, for deterministic tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


# --------------------------------------------------------------------------- faults

FaultKind = Literal["rate_limit", "server_error", "latency", "drop_after_write"]


class ConnectionDropped(Exception):
    """Raised by an app after a committed write to simulate a lost response.

    The in-process transports turn it into ``httpx.RemoteProtocolError``; under
    uvicorn it becomes a bare 500 because an ASGI app cannot close the socket.
    """


@dataclass
class Fault:
    """One armed fault; ``remaining=None`` means it never runs out."""

    kind: FaultKind
    remaining: int | None = 1
    tenant: str | None = None
    status: int = 500
    seconds: float = 0.0
    mode: Literal["disconnect", "500"] = "disconnect"


class FaultInjector:
    """Queue of armed faults consumed by the request pipeline.

    Faults are consumed first-armed-first-used, optionally restricted to a
    tenant, so a test can say "the next 2 writes for tenant A are rate limited".
    """

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def arm(self, kind: FaultKind, count: int | None = 1, tenant: str | None = None, *,
            status: int = 500, seconds: float = 0.0,
            mode: Literal["disconnect", "500"] = "disconnect") -> Fault:
        fault = Fault(kind, count, tenant, status, seconds, mode)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, kind: FaultKind, tenant: str | None) -> Fault | None:
        """Consume one occurrence of ``kind`` applicable to ``tenant``."""
        with self._lock:
            for fault in self._faults:
                if fault.kind != kind or (fault.tenant and fault.tenant != tenant):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


# --------------------------------------------------------------------------- rate limits


@dataclass(frozen=True)
class Window:
    """A rolling window: at most ``limit`` requests per ``seconds``."""

    name: str
    seconds: int
    limit: int


@dataclass(frozen=True)
class Throttle:
    """Why a request was refused and when the window frees up."""

    problem: str
    retry_after: int | None


class RateLimiter:
    """Rolling-window and concurrency limits per key (realm / tenant).

    Refused requests are not counted, matching the platforms' "calls made"
    accounting; the concurrency slot must be released by the caller.
    """

    def __init__(self, clock: Clock, windows: Iterable[Window], max_concurrent: int) -> None:
        self.clock = clock
        self.windows = tuple(windows)
        self.max_concurrent = max_concurrent
        self._hits: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
        self._active: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> Throttle | None:
        now = self.clock.now()
        with self._lock:
            if self._active[key] >= self.max_concurrent:
                return Throttle("concurrent", None)
            for window in self.windows:
                hits = self._prune(key, window, now)
                if len(hits) >= window.limit:
                    wait = hits[0] + timedelta(seconds=window.seconds) - now
                    return Throttle(window.name, max(1, int(wait.total_seconds() + 0.999)))
            for window in self.windows:
                self._hits[(key, window.name)].append(now)
            self._active[key] += 1
        return None

    def release(self, key: str) -> None:
        with self._lock:
            self._active[key] = max(0, self._active[key] - 1)

    def remaining(self, key: str) -> dict[str, int]:
        now = self.clock.now()
        with self._lock:
            return {w.name: w.limit - len(self._prune(key, w, now)) for w in self.windows}

    def _prune(self, key: str, window: Window, now: datetime) -> deque[datetime]:
        hits = self._hits[(key, window.name)]
        horizon = now - timedelta(seconds=window.seconds)
        while hits and hits[0] <= horizon:
            hits.popleft()
        return hits


# --------------------------------------------------------------------------- OAuth2


@dataclass(frozen=True)
class TokenPair:
    """What a token endpoint hands out."""

    access_token: str
    refresh_token: str
    expires_in: int
    tenants: frozenset[str] | None


@dataclass
class _Access:
    expires: datetime
    tenants: frozenset[str] | None


@dataclass
class _Grant:
    tenants: frozenset[str] | None
    current: str
    previous: dict[str, datetime] = field(default_factory=dict)  # old token -> grace end
    revoked: bool = False


class TokenAuthority:
    """OAuth2 access tokens plus rotating refresh tokens.

    Each refresh issues a new refresh token and invalidates the old one, so a
    sink that refreshes concurrently from two workers (or replays an old token
    after a crash) gets ``invalid_grant`` — exactly what the transport's
    rotation lock must prevent. ``reuse_grace_seconds`` models Xero's short
    grace period for the previous token; 0 means strict rotation.
    """

    def __init__(self, clock: Clock, prefix: str, access_lifetime: int,
                 reuse_grace_seconds: int = 0) -> None:
        self.clock = clock
        self.prefix = prefix
        self.access_lifetime = access_lifetime
        self.reuse_grace_seconds = reuse_grace_seconds
        self._access: dict[str, _Access] = {}
        self._grants: list[_Grant] = []
        self._counter = 0
        self._lock = threading.Lock()

    def _mint(self, kind: str) -> str:
        self._counter += 1
        digest = hashlib.sha256(f"{self.prefix}:{kind}:{self._counter}".encode()).hexdigest()
        return f"{self.prefix}-{kind}-{self._counter}-{digest[:16]}"

    def _new_access(self, tenants: frozenset[str] | None) -> str:
        token = self._mint("at")
        self._access[token] = _Access(
            self.clock.now() + timedelta(seconds=self.access_lifetime), tenants)
        return token

    def issue(self, tenants: Iterable[str] | None = None) -> TokenPair:
        """Start a new grant (what the authorization-code exchange would give)."""
        scope = frozenset(tenants) if tenants is not None else None
        with self._lock:
            grant = _Grant(scope, self._mint("rt"))
            self._grants.append(grant)
            return TokenPair(self._new_access(scope), grant.current, self.access_lifetime, scope)

    def refresh(self, refresh_token: str) -> TokenPair | None:
        """Rotate; ``None`` means ``invalid_grant``."""
        now = self.clock.now()
        with self._lock:
            for grant in self._grants:
                if grant.revoked:
                    continue
                grace_end = grant.previous.get(refresh_token)
                if refresh_token == grant.current or (grace_end and now < grace_end):
                    grant.previous[grant.current] = now + timedelta(
                        seconds=self.reuse_grace_seconds)
                    grant.current = self._mint("rt")
                    return TokenPair(self._new_access(grant.tenants), grant.current,
                                     self.access_lifetime, grant.tenants)
        return None

    def check(self, access_token: str, tenant: str | None) -> Literal["ok", "expired", "invalid",
                                                                       "forbidden"]:
        with self._lock:
            access = self._access.get(access_token)
        if access is None:
            return "invalid"
        if self.clock.now() >= access.expires:
            return "expired"
        if tenant is not None and access.tenants is not None and tenant not in access.tenants:
            return "forbidden"
        return "ok"

    def expire_access_tokens(self) -> None:
        """Fault: every outstanding access token is expired from now on."""
        now = self.clock.now()
        with self._lock:
            for access in self._access.values():
                access.expires = min(access.expires, now)

    def revoke_grants(self, tenant: str | None = None) -> None:
        """Fault: the user disconnected the app (from one company when ``tenant`` is
        given); refresh now gives invalid_grant and the access tokens stop working."""
        with self._lock:
            for grant in self._grants:
                if tenant is None or grant.tenants is None or tenant in grant.tenants:
                    grant.revoked = True
            self._access = {token: access for token, access in self._access.items()
                            if tenant is not None and access.tenants is not None
                            and tenant not in access.tenants}


# --------------------------------------------------------------------------- idempotency


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for replay under an idempotency key."""

    fingerprint: str
    status: int
    body: bytes
    headers: dict[str, str]
    stored_at: datetime


class IdempotencyStore:
    """Responses by (tenant, key) within a window, with a request fingerprint.

    The fingerprint lets a platform distinguish "retry of the same request"
    from "the same key reused for a different request".
    """

    def __init__(self, clock: Clock, window_seconds: int) -> None:
        self.clock = clock
        self.window = timedelta(seconds=window_seconds)
        self._items: dict[tuple[str, str], StoredResponse] = {}
        self._lock = threading.Lock()

    @staticmethod
    def fingerprint(*parts: str | bytes) -> str:
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part.encode() if isinstance(part, str) else part)
            digest.update(b"\x00")
        return digest.hexdigest()

    def get(self, tenant: str, key: str) -> StoredResponse | None:
        with self._lock:
            item = self._items.get((tenant, key))
            if item and self.clock.now() - item.stored_at > self.window:
                del self._items[(tenant, key)]
                return None
            return item

    def put(self, tenant: str, key: str, fingerprint: str, response: Response) -> None:
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        with self._lock:
            self._items[(tenant, key)] = StoredResponse(
                fingerprint, response.status_code, bytes(response.body), headers,
                self.clock.now())


def replay(stored: StoredResponse) -> Response:
    return Response(stored.body, status_code=stored.status, headers=stored.headers)


# --------------------------------------------------------------------------- ids


class IdSequence:
    """Per-tenant, per-entity counters, so ids are stable across test runs."""

    def __init__(self) -> None:
        self._next: dict[tuple[str, str], int] = defaultdict(int)

    def next(self, tenant: str, entity: str) -> int:
        self._next[(tenant, entity)] += 1
        return self._next[(tenant, entity)]


# --------------------------------------------------------------------------- ledger report


@dataclass(frozen=True)
class DocumentSummary:
    """A sales document (invoice or credit note) in platform-neutral terms."""

    kind: Literal["invoice", "credit_note"]
    id: str
    number: str | None
    reference: str | None
    customer_id: str
    status: str
    total: Decimal
    balance: Decimal
    date: str | None
    created_seq: int = 0


@dataclass(frozen=True)
class PaymentSummary:
    id: str
    customer_id: str
    amount: Decimal
    unapplied: Decimal
    status: str
    date: str | None
    reference: str | None
    created_seq: int = 0


@dataclass(frozen=True)
class Application:
    """Money moved from a payment or credit note onto an invoice."""

    source_kind: Literal["payment", "credit_note"]
    source_id: str
    target_id: str
    amount: Decimal


@dataclass(frozen=True)
class CustomerSummary:
    id: str
    name: str
    active: bool


_CLOSED = {"VOIDED", "DELETED", "Voided", "Deleted"}


def _duplicates(documents: list[DocumentSummary],
                payments: list[PaymentSummary]) -> dict[str, Any]:
    groups: dict[tuple[str, str, str], list[tuple[int, str]]] = defaultdict(list)
    for doc in documents:
        if doc.number:
            groups[(doc.kind, "number", doc.number)].append((doc.created_seq, doc.id))
        if doc.reference:
            groups[(doc.kind, "reference", doc.reference)].append((doc.created_seq, doc.id))
    for pay in payments:
        if pay.reference:
            groups[("payment", "reference", pay.reference)].append((pay.created_seq, pay.id))
    extra: set[tuple[str, str]] = set()
    listed = []
    for (kind, field_name, key), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        ordered = [doc_id for _, doc_id in sorted(members)]
        extra.update((kind, doc_id) for doc_id in ordered[1:])
        listed.append({"kind": kind, "field": field_name, "key": key, "ids": ordered})
    return {"count": len(extra), "groups": listed}


def build_report(platform: str, tenant: str, documents: list[DocumentSummary],
                 payments: list[PaymentSummary], applications: list[Application],
                 customers: list[CustomerSummary]) -> dict[str, Any]:
    """The sandbox ledger in neutral terms, for comparison with the CRM.

    Per-customer balance = open invoice balances - unused credit - unapplied
    payments, i.e. what the customer owes according to the platform.
    Duplicates counts every document beyond the first sharing a number or a
    reference — the end-to-end tests assert it is zero.
    """
    balances: dict[str, Decimal] = defaultdict(Decimal)
    totals: dict[str, dict[str, Any]] = {}
    for doc in documents:
        bucket = totals.setdefault(doc.kind, {"count": 0, "total": Decimal(0),
                                              "balance": Decimal(0)})
        bucket["count"] += 1
        if doc.status in _CLOSED:
            continue
        bucket["total"] += doc.total
        bucket["balance"] += doc.balance
        balances[doc.customer_id] += doc.balance if doc.kind == "invoice" else -doc.balance
    pay_total = Decimal(0)
    for pay in payments:
        if pay.status in _CLOSED:
            continue
        pay_total += pay.amount
        balances[pay.customer_id] -= pay.unapplied
    return {
        "platform": platform,
        "tenant": tenant,
        "documents": [
            {"kind": d.kind, "id": d.id, "number": d.number, "reference": d.reference,
             "customer_id": d.customer_id, "status": d.status, "total": str(d.total),
             "balance": str(d.balance), "date": d.date} for d in documents],
        "payments": [
            {"id": p.id, "customer_id": p.customer_id, "amount": str(p.amount),
             "unapplied": str(p.unapplied), "status": p.status, "date": p.date,
             "reference": p.reference} for p in payments],
        "applications": [
            {"source_kind": a.source_kind, "source_id": a.source_id, "target_id": a.target_id,
             "amount": str(a.amount)} for a in applications],
        "customers": [
            {"id": c.id, "name": c.name, "active": c.active,
             "balance": str(balances.get(c.id, Decimal(0)).quantize(Decimal("0.01")))}
            for c in customers],
        "totals": {
            **{kind: {"count": v["count"], "total": str(v["total"]), "balance": str(v["balance"])}
               for kind, v in totals.items()},
            "payments": {"count": len(payments), "total": str(pay_total)},
        },
        "duplicates": _duplicates(documents, payments),
    }


# --------------------------------------------------------------------------- transports


class SyncASGITransport(httpx.BaseTransport):
    """Drive an ASGI app from a synchronous ``httpx.Client``.

    httpx's ``ASGITransport`` is async only; this runs it on a private event
    loop thread so sync sinks can use the sandbox in-process, and concurrent
    requests from several threads really overlap (for concurrency limits).
    A :class:`ConnectionDropped` from the app surfaces as the same
    ``httpx.RemoteProtocolError`` a real dropped connection gives.
    """

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            inner_request = httpx.Request(request.method, request.url,
                                          headers=request.headers, content=body)
            response = await self._inner.handle_async_request(inner_request)
            content = await response.aread()
            return response.status_code, response.headers.raw, content

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        try:
            status, headers, content = future.result()
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request) from exc
        return httpx.Response(status, headers=headers, content=content, request=request)

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


class AsyncSandboxTransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` that maps :class:`ConnectionDropped` like a real drop."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request) from exc


# --------------------------------------------------------------------------- serving


@dataclass
class ServerHandle:
    """A running uvicorn server in a background thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(app: Any, port: int = 0) -> ServerHandle:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a daemon thread (for the demo).

    ``port=0`` picks a free port. Returns once the server accepts connections.
    """
    chosen = port or _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=chosen, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name=f"sandbox:{chosen}")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"sandbox server on port {chosen} did not start")
        time.sleep(0.01)
    return ServerHandle(f"http://127.0.0.1:{chosen}", server, thread)


# --------------------------------------------------------------------------- base sandbox

Handler = Callable[[], Response]


class Sandbox(ABC):
    """Base class: admin API, auth/limits/faults pipeline, clients and serving.

    Subclasses provide the platform routes, the platform's error shapes and the
    ledger report. All platform state is mutated under ``self.lock`` by
    synchronous handlers, so each request is atomic, as a platform's own
    transaction would be.
    """

    platform: str = "sandbox"
    token_path: str = "/oauth2/token"

    def __init__(self, *, clock: Clock | None, windows: Iterable[Window], max_concurrent: int,
                 access_lifetime: int, idempotency_window: int,
                 refresh_grace_seconds: int = 0) -> None:
        self.clock: Clock = clock or SystemClock()
        self.faults = FaultInjector()
        self.limiter = RateLimiter(self.clock, windows, max_concurrent)
        self.tokens = TokenAuthority(self.clock, self.platform, access_lifetime,
                                     refresh_grace_seconds)
        self.idempotency = IdempotencyStore(self.clock, idempotency_window)
        self.ids = IdSequence()
        self.lock = threading.RLock()
        self.app = Starlette(routes=[*self._admin_routes(), *self.routes()])

    # ---- platform hooks

    @abstractmethod
    def routes(self) -> list[BaseRoute]: ...

    @abstractmethod
    def ledger_report(self, tenant: str) -> dict[str, Any]: ...

    @abstractmethod
    def lock_period(self, tenant: str, through: date | None) -> None:
        """Close the books on and before ``through`` (``None`` reopens)."""

    @abstractmethod
    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        """Archive / make inactive a customer behind the sink's back."""

    @abstractmethod
    def auth_error(self, outcome: str) -> Response: ...

    @abstractmethod
    def throttled(self, tenant: str, throttle: Throttle) -> Response: ...

    @abstractmethod
    def server_error(self, status: int) -> Response: ...

    @abstractmethod
    def token_response(self, pair: TokenPair) -> dict[str, Any]: ...

    def decorate(self, tenant: str, response: Response) -> Response:
        """Add per-response headers (e.g. rate-limit counters); default none."""
        return response

    # ---- python admin API

    def issue_tokens(self, *tenants: str) -> TokenPair:
        """A fresh grant for ``tenants`` (all tenants when none given)."""
        return self.tokens.issue(tenants or None)

    def client(self, access_token: str | None = None, **kwargs: Any) -> httpx.Client:
        """A synchronous in-process client; pass the token to set the header."""
        headers = dict(kwargs.pop("headers", {}))
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        return httpx.Client(transport=SyncASGITransport(self.app),
                            base_url="http://sandbox.local", headers=headers, **kwargs)

    def async_client(self, access_token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = dict(kwargs.pop("headers", {}))
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        return httpx.AsyncClient(transport=AsyncSandboxTransport(self.app),
                                 base_url="http://sandbox.local", headers=headers, **kwargs)

    def serve(self, port: int = 0) -> ServerHandle:
        return serve(self.app, port)

    # ---- pipeline

    async def guarded(self, request: Request, tenant: str, handler: Handler, *,
                      write: bool) -> Response:
        """Run one API call through auth, limits and faults like the platform would."""
        outcome = self.tokens.check(_bearer(request), tenant)
        if outcome != "ok":
            return self.auth_error(outcome)
        throttle = self.limiter.acquire(tenant)
        if throttle is not None:
            return self.decorate(tenant, self.throttled(tenant, throttle))
        try:
            storm = self.faults.take("rate_limit", tenant)
            if storm is not None:
                # the platform's own Retry-After for its window; a fault may shorten it
                wait = int(storm.seconds) if storm.seconds else 60
                return self.decorate(tenant, self.throttled(tenant, Throttle("minute", wait)))
            latency = self.faults.take("latency", tenant)
            if latency and latency.seconds:
                await asyncio.sleep(latency.seconds)
            failure = self.faults.take("server_error", tenant)
            if failure:
                return self.server_error(failure.status)
            with self.lock:
                response = handler()
            if write and response.status_code < 300:
                drop = self.faults.take("drop_after_write", tenant)
                if drop is not None:
                    if drop.mode == "500":
                        return self.server_error(500)
                    raise ConnectionDropped(f"{self.platform}: response to a committed write lost")
            return self.decorate(tenant, response)
        finally:
            self.limiter.release(tenant)

    # ---- admin routes

    def _admin_routes(self) -> list[BaseRoute]:
        return [
            Route("/__sandbox/faults", self._admin_faults, methods=["POST", "GET", "DELETE"]),
            Route("/__sandbox/ledger/{tenant}", self._admin_ledger, methods=["GET"]),
            Route("/__sandbox/tokens", self._admin_tokens, methods=["POST"]),
            Route("/__sandbox/clock", self._admin_clock, methods=["POST"]),
            Route(self.token_path, self._token_endpoint, methods=["POST"]),
        ]

    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return JSONResponse({"cleared": True})
        if request.method == "GET":
            return JSONResponse({"faults": [f.__dict__ for f in self.faults.pending()]})
        spec = await request.json()
        try:
            self.apply_fault(spec)
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"armed": spec})

    def apply_fault(self, spec: dict[str, Any]) -> None:
        """Arm a fault described as JSON (the admin API's body).

        kinds: rate_limit, server_error, latency, drop_after_write (with count,
        tenant, status, seconds, mode); expire_tokens; revoke_grant;
        lock_period (tenant, date or null); deactivate_customer (tenant,
        customer_id); clear.
        """
        kind = spec["kind"]
        tenant = spec.get("tenant")
        if kind in ("rate_limit", "server_error", "latency", "drop_after_write"):
            self.faults.arm(kind, spec.get("count", 1), tenant, status=int(spec.get("status", 500)),
                            seconds=float(spec.get("seconds", 0)),
                            mode=spec.get("mode", "disconnect"))
        elif kind == "expire_tokens":
            self.tokens.expire_access_tokens()
        elif kind == "revoke_grant":
            self.tokens.revoke_grants(tenant)
        elif kind == "lock_period":
            raw = spec.get("date")
            self.lock_period(spec["tenant"], date.fromisoformat(raw) if raw else None)
        elif kind == "deactivate_customer":
            with self.lock:
                self.deactivate_customer(spec["tenant"], str(spec["customer_id"]))
        elif kind == "clear":
            self.faults.clear()
        else:
            raise ValueError(f"unknown fault kind {kind!r}")

    async def _admin_ledger(self, request: Request) -> Response:
        with self.lock:
            return JSONResponse(self.ledger_report(request.path_params["tenant"]))

    async def _admin_tokens(self, request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        pair = self.tokens.issue(body.get("tenants"))
        return JSONResponse(self.token_response(pair))

    async def _admin_clock(self, request: Request) -> Response:
        body = await request.json()
        if not isinstance(self.clock, ManualClock):
            return JSONResponse({"error": "clock is not a ManualClock"}, status_code=400)
        now = self.clock.advance(float(body.get("advance_seconds", 0)))
        return JSONResponse({"now": now.isoformat()})

    async def _token_endpoint(self, request: Request) -> Response:
        # parsed by hand: starlette's form parser needs python-multipart
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        pair = self.tokens.refresh(str(form.get("refresh_token", "")))
        if pair is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(self.token_response(pair))


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


async def read_json(request: Request) -> Any:
    """Parse a JSON body; ``None`` for an empty or malformed one."""
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None

