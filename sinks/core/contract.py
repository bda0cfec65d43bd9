"""The sans-I/O platform contract.

A platform module declares what its platform is (:class:`PlatformSpec`) and turns a
canonical ledger entry into requests without doing any I/O itself, the way httpx's
``Auth.auth_flow`` does: :meth:`Platform.plan` returns a generator that *yields* a
:class:`PlatformRequest`, *receives* the :class:`PlatformResponse` through
``send()``, and finally *returns* a :class:`WriteResult`. Multi-step writes (find or
create the customer, fetch a SyncToken then post, release a draft) are ordinary
Python control flow inside that generator. Whoever drives the generator decides how
requests travel: :class:`FlowRunner` with a real transport in production, a plain
function in tests.

Keeping platforms pure means the same module is exercised by unit tests, the contract
suite, the sandbox simulators and the production runner, and that all plumbing (auth,
retries, rate limits) lives once in ``sinks.transport``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar

import orjson
from pydantic import BaseModel

from sinks.core.errors import AlreadyAppliedError, ConfigurationError, SinkError, classify_http

if TYPE_CHECKING:
    from sinks.core.mapping import TenantConfig, TenantMapping

__all__ = [
    "Flow",
    "FlowRunner",
    "LedgerEntry",
    "Platform",
    "PlatformRequest",
    "PlatformResponse",
    "PlatformSpec",
    "RateLimitPolicy",
    "RateWindow",
    "SinkContext",
    "Transport",
    "WireProtocol",
    "WriteResult",
    "idempotency_key",
    "single_request",
    "steps_of",
]

#: The canonical input of a sink: an enriched ledger entry as read from
#: ``ledger.entries``. The runner passes the pydantic models defined in ``schemas``;
#: platform modules import those models for their own annotations. The contract keeps
#: it as ``Any`` so that this layer does not depend on the schema package's layout.
LedgerEntry: TypeAlias = Any

#: Namespace for :func:`idempotency_key`; fixed forever, changing it would make every
#: replay a new document.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f0c2a4e-8d1b-5c7e-9a3f-2b4d6e8f0a1c")


def idempotency_key(platform: str, tenant_id: str, event_id: str, step: str = "") -> str:
    """``uuid5(platform, tenant, event_id[, step])`` as a 36-char string (ARCHITECTURE §2).

    Deterministic, so a replay of the same event sends the same key; ``step`` tells
    apart the several writes of one multi-step flow (e.g. "customer", "invoice").
    36 characters fits every documented limit (QuickBooks requestid ≤ 50, Xero ≤ 128).
    """
    return uuid5_text(IDEMPOTENCY_NAMESPACE, "\x1f".join((platform, tenant_id, event_id, step)))


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` without building the ``UUID`` object, whose
    pure-Python constructor cost more than the SHA-1: a sink derives two or three
    keys per document (one per request, one per QuickBooks batch)."""
    raw = bytearray(hashlib.sha1(namespace.bytes + name.encode("utf-8"),
                                 usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class WireProtocol(enum.StrEnum):
    """How a platform is spoken to; selects the transport helpers it needs."""

    REST_JSON = "rest-json"
    REST_XML = "rest-xml"
    SOAP = "soap"
    GRAPHQL = "graphql"
    JSON_RPC = "json-rpc"
    XML_RPC = "xml-rpc"
    FILE_DROP = "file-drop"


@dataclass(frozen=True)
class RateWindow:
    """At most ``limit`` requests per ``seconds`` (a token bucket of that size)."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit <= 0 or self.seconds <= 0:
            raise ValueError(f"rate window must be positive, got {self.limit}/{self.seconds}s")

    @property
    def key(self) -> str:
        """Stable name for storage (e.g. ``"60/60"``)."""
        return f"{self.limit}/{self.seconds:g}"


@dataclass(frozen=True)
class RateLimitPolicy:
    """A platform's documented limits for one tenant (realm, organisation, company).

    Every window must have a token before a request goes out; ``concurrency`` caps
    requests in flight. Example, Xero: ``RateLimitPolicy((RateWindow(60, 60),
    RateWindow(5000, 86400)), concurrency=5)``.
    """

    windows: tuple[RateWindow, ...] = ()
    concurrency: int | None = None
    #: Wait this long after a 429 that carried no Retry-After.
    default_retry_after: float = 60.0


@dataclass(frozen=True)
class PlatformSpec:
    """What a platform is and can do; the README's support table is generated from it."""

    name: str
    display_name: str
    protocol: WireProtocol
    supports_idempotency_key: bool = False
    supports_upsert: bool = False
    supports_void: bool = False
    max_batch_size: int = 1
    multi_currency: bool = False
    partial_payments: bool = True
    rate_limit: RateLimitPolicy = field(default_factory=RateLimitPolicy)
    #: Maximum lengths of names the platform truncates or rejects, e.g.
    #: ``{"customer.display_name": 100, "invoice.doc_number": 21}``.
    max_name_lengths: Mapping[str, int] = field(default_factory=dict)
    #: The pydantic model of the tenant's platform settings (realm id, org id, ...).
    settings_model: type[BaseModel] | None = None
    #: Updates are guarded by the version we stored (``updated_at``, a modified
    #: timestamp) and refused when the document changed since — a bookkeeper's edit
    #: wins. The runner then writes at most one change per document per bookkeeping
    #: transaction: after a crash between two unrecorded writes of one document, the
    #: replay of the first would otherwise meet our own second write and take it for a
    #: bookkeeper's edit.
    guards_edits: bool = False

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        object.__setattr__(self, "max_name_lengths", MappingProxyType(dict(self.max_name_lengths)))

    def truncate(self, field_name: str, value: str) -> str:
        """``value`` cut to the platform's documented maximum for ``field_name``."""
        limit = self.max_name_lengths.get(field_name)
        return value if limit is None else value[:limit]


def _freeze(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class PlatformRequest:
    """One request a platform wants sent, free of any transport object.

    ``path`` is relative to the tenant's base URL unless it is absolute (token
    endpoints). Exactly one of ``json``/``content`` may be given.

    ``idempotency_key`` is a promise, not a label: set it only when the *platform*
    dedupes by it (the module puts it where the API expects it — a header, a query
    parameter, a body field), because the transport treats a keyed POST as safe to
    send again after a lost response. A platform without a native key must leave it
    ``None`` and find-before-create in its flow instead; a keyed POST to such a
    platform is re-sent and duplicates the document (crash injection caught exactly
    that in Business Central and Zoho Books). ``purpose`` names the
    operation ("create invoice") and labels metrics, so keep its vocabulary small.
    ``accept_statuses`` lists error statuses the flow handles itself (e.g. 404 from a
    lookup) instead of having them classified as errors.
    """

    method: str
    path: str
    purpose: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    idempotency_key: str | None = None
    accept_statuses: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.json is not None and self.content is not None:
            raise ValueError("a PlatformRequest carries json or content, not both")
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "query", _freeze(self.query))
        object.__setattr__(self, "headers", _freeze(self.headers))
        object.__setattr__(self, "accept_statuses", frozenset(self.accept_statuses))

    def with_headers(self, extra: Mapping[str, str]) -> PlatformRequest:
        return replace(self, headers={**self.headers, **extra})


#: Digits enough to be an integer orjson cannot hold (2**63 has 19).
_LONG_DIGITS = re.compile(rb"\d{19}")


@dataclass(frozen=True)
class PlatformResponse:
    """A platform's reply: status, headers (keys lower-cased) and raw body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "headers", MappingProxyType({k.lower(): v for k, v in self.headers.items()})
        )

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed. orjson (a sink parses two or three answers per document,
        unpacked batch items included) where it gives what ``json.loads`` gives; the
        standard library for a body with a run of 19+ digits (orjson reads an integer
        beyond 64 bits as a float, losing digits), for what orjson refuses (NaN), and
        for the error of a body that is not JSON, so callers see the same
        ``json.JSONDecodeError`` either way."""
        if not self.body:
            return None
        if _LONG_DIGITS.search(self.body) is not None:
            return json.loads(self.body)
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return json.loads(self.body)

    @classmethod
    def from_json(
        cls, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> PlatformResponse:
        """A JSON answer built here: tests, simulators, and the batch codecs' unpacked
        items. Written by orjson (compact; NaN, which JSON does not have, becomes
        null), or by ``json.dumps`` for what orjson refuses (integers beyond 64 bits,
        keys that are not strings)."""
        try:
            body = orjson.dumps(payload)
        except TypeError:
            body = json.dumps(payload).encode()
        return cls(status, {"content-type": "application/json", **(headers or {})}, body)


@dataclass(frozen=True)
class WriteResult:
    """What a successful write left on the platform; stored in the external-id map.

    ``version`` is the optimistic-concurrency token where the platform has one
    (QuickBooks SyncToken, MYOB RowVersion); ``already_applied`` is true when the
    platform reported the document as a duplicate of an earlier attempt.
    """

    external_id: str
    version: str | None = None
    document_number: str | None = None
    raw: Any = None
    already_applied: bool = False
    #: Other documents the flow created or found on the way (e.g. the customer of an
    #: invoice), keyed ``"<kind>:<crm id>"`` like ``SinkContext.external_ids``; the
    #: runner stores them in the external-id map in the same transaction.
    related: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SinkContext:
    """Everything besides the entry that a plan may depend on.

    ``external_ids`` holds ids already known from the external-id map, keyed the way
    the platform module chooses (e.g. ``"customer:42"``, ``"invoice:INV-1"``).
    """

    tenant_id: str
    event_id: str
    tenant: TenantConfig | None = None
    external_ids: Mapping[str, str] = field(default_factory=dict)
    settings: BaseModel | None = None
    #: Optimistic-concurrency tokens (QuickBooks SyncToken, ETag, RowVersion) of the
    #: documents in ``external_ids``, under the same keys, as stored after the last write.
    versions: Mapping[str, str] = field(default_factory=dict)

    def key_for(self, platform: str, step: str = "") -> str:
        return idempotency_key(platform, self.tenant_id, self.event_id, step)


T = TypeVar("T")
SettingsT = TypeVar("SettingsT", bound=BaseModel)

#: A write flow: yields requests, receives responses, returns a result.
Flow: TypeAlias = Generator[PlatformRequest, PlatformResponse, T]

#: Sends one request and returns the platform's response (the transport executor's
#: ``send``, or a fake in tests). It may raise :class:`SinkError`.
Transport: TypeAlias = Callable[[PlatformRequest], PlatformResponse]


def single_request(request: PlatformRequest, parse: Callable[[PlatformResponse], T]) -> Flow[T]:
    """The flow of a one-request write: send ``request``, ``parse`` its response."""
    response = yield request
    return parse(response)


class Platform(ABC):
    """Base class of every platform module: a spec plus pure functions.

    Subclasses set :attr:`spec`, implement :meth:`plan`, and override
    :meth:`classify_error` (calling ``super()``) to recognise vendor error codes, and
    :meth:`find_by_reference` when the platform has no idempotency key.
    """

    spec: ClassVar[PlatformSpec]

    @abstractmethod
    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        """The flow that writes ``entry``. Raise :class:`UnsupportedEventError` for
        events the platform cannot express, :class:`ConfigurationError` (via the
        mapping lookups) for unmapped values."""

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        """The error a response stands for, or ``None`` if it is a success.

        The default is the generic HTTP classification. Override to read vendor codes
        (including errors reported inside 200 responses, as SOAP faults or Xero's
        ``summarizeErrors=false`` do) and fall back to ``super().classify_error``.
        """
        return classify_http(
            response.status, response.headers, response.body, platform=self.spec.name
        )

    def find_by_reference(
        self, reference: str, context: SinkContext
    ) -> Flow[WriteResult | None] | None:
        """A flow that looks up a document by our reference, or ``None`` if the
        platform cannot (or need not, having idempotency keys) search."""
        return None

    def batch_codec(self) -> Any | None:
        """How a tenant's concurrent requests travel as one platform batch (a
        ``sinks.transport.coalesce.BatchCodec``), or ``None``: no batch endpoint."""
        return None

    # ------------------------------------------------------------------ tenant lookups

    @classmethod
    def tenant_config(cls, context: SinkContext) -> TenantConfig:
        """The context's tenant configuration; a :class:`ConfigurationError` if absent."""
        if context.tenant is None:
            raise ConfigurationError(f"tenant {context.tenant_id!r} has no configuration",
                                     platform=cls.spec.name)
        return context.tenant

    @classmethod
    def tenant_settings(cls, context: SinkContext, model: type[SettingsT]) -> SettingsT:
        """The tenant's platform settings as ``model`` (``context.settings`` if it is
        one already)."""
        if isinstance(context.settings, model):
            return context.settings
        return cls.tenant_config(context).platform_settings(model)

    @classmethod
    def tenant_mapping(cls, context: SinkContext) -> TenantMapping:
        """The tenant's mapping; a :class:`ConfigurationError` if there is no tenant."""
        if context.tenant is None:
            raise ConfigurationError(f"tenant {context.tenant_id!r} has no mapping",
                                     platform=cls.spec.name)
        return context.tenant.mapping


class FlowRunner:
    """Drives flows against a :data:`Transport`; the in-memory core of the runner.

    Each response is classified by the platform unless the request listed its status
    in ``accept_statuses``; an error is raised out of :meth:`run` (and the generator
    is closed). An :class:`AlreadyAppliedError` from :meth:`write` becomes a
    successful :class:`WriteResult` with ``already_applied=True``.
    """

    #: Guard against a flow that never returns.
    max_steps = 50

    def __init__(self, platform: Platform, transport: Transport) -> None:
        self.platform = platform
        self.transport = transport
        self.sent: list[PlatformRequest] = []

    def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to its result; only the flow's own ``StopIteration`` ends it."""
        try:
            try:
                request = next(flow)
            except StopIteration as done:
                return done.value
            for _ in range(self.max_steps):
                self.sent.append(request)
                response = self.transport(request)
                if response.status not in request.accept_statuses:
                    error = self.platform.classify_error(response)
                    if error is not None:
                        raise error
                try:
                    request = flow.send(response)
                except StopIteration as done:
                    return done.value
            raise RuntimeError(
                f"{self.platform.spec.name}: flow exceeded {self.max_steps} requests"
            )
        finally:
            flow.close()

    def write(self, entry: LedgerEntry, context: SinkContext) -> WriteResult:
        try:
            return self.run(self.platform.plan(entry, context))
        except AlreadyAppliedError as dup:
            return WriteResult(external_id=dup.external_id, already_applied=True, raw=None)

    def find(self, reference: str, context: SinkContext) -> WriteResult | None:
        flow = self.platform.find_by_reference(reference, context)
        return None if flow is None else self.run(flow)


def steps_of(requests: Iterable[PlatformRequest]) -> list[str]:
    """``"METHOD path"`` of each request; handy in tests and logs."""
    return [f"{r.method} {r.path}" for r in requests]
