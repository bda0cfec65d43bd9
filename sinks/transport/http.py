"""The HTTP executor: sends a platform's :class:`PlatformRequest` for one tenant.

Everything a platform module must not care about happens here, in this order for
each attempt: renew an expiring credential, wait for the tenant's rate budget and a
concurrency slot, stamp the credential, send with explicit timeouts, record metrics,
classify. Then:

* 401 → refresh the credential (the refresh is itself a request sent from here) and
  retry once; a second 401, or a 401 with a credential that cannot be refreshed, is a
  :class:`ConfigurationError`;
* 429 → pause the tenant's budget for ``Retry-After`` and retry after it;
* 5xx, 408, 425, timeouts, connection errors → retry with backoff and full jitter;
* anything else (success or a permanent error) → return the response; the flow
  runner classifies it with the platform's own rules.

Retryable errors that outlast the retry policy are raised, so the runner can leave
the offset where it is.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping

import httpx
import orjson
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    RateLimitedError,
    RetryableError,
    SinkError,
    TransientError,
    classify_exception,
    classify_http,
)
from sinks.transport.auth import Authenticator
from sinks.transport.ratelimit import RateLimiter
from sinks.transport.retry import RetryPolicy, call_with_retry
from sinks.transport.settings import TransportSettings

__all__ = ["DEFAULT_TIMEOUT", "HttpExecutor", "SinkMetrics", "default_metrics", "make_client"]

log = logging.getLogger(__name__)

#: Never wait forever: a hung connection would hold a partition and a token-row lock.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=60.0, pool=5.0)

Classifier = Callable[[PlatformResponse], SinkError | None]


def make_client(
    *,
    base_url: str = "",
    timeout: httpx.Timeout | None = None,
    settings: TransportSettings | None = None,
    transport: httpx.BaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
    limits: httpx.Limits | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` with explicit timeouts and no redirects (a redirected POST
    is never what an accounting API means). ``transport`` is for tests
    (``httpx.MockTransport``) and simulators."""
    if timeout is None and settings is not None:
        timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.write_timeout,
            pool=settings.pool_timeout,
        )
    return httpx.Client(
        base_url=base_url,
        timeout=timeout or DEFAULT_TIMEOUT,
        transport=transport,
        headers=dict(headers or {}),
        limits=limits or httpx.Limits(max_connections=20, max_keepalive_connections=10),
        follow_redirects=False,
    )


class SinkMetrics:
    """The executor's Prometheus metrics, registered on ``registry`` (tests pass a
    fresh ``CollectorRegistry``; production uses the default one via
    :func:`default_metrics`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else REGISTRY
        self.latency = Histogram(
            "ledgerstream_sink_api_latency_seconds",
            "Latency of platform API calls",
            ["platform", "operation", "status"],
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
        )
        self.retries = Counter(
            "ledgerstream_sink_api_retries",
            "Platform API calls retried, by reason",
            ["platform", "operation", "reason"],
            registry=registry,
        )
        self.rate_wait = Histogram(
            "ledgerstream_sink_rate_wait_seconds",
            "Time a request waited for the tenant's concurrency slot and rate budget",
            ["platform"],
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.throttled = Counter(
            "ledgerstream_sink_api_429",
            "HTTP 429 responses from platform APIs",
            ["platform"],
            registry=registry,
        )


_default_metrics: SinkMetrics | None = None


def default_metrics() -> SinkMetrics:
    """The process-wide metrics on the default registry (created once)."""
    global _default_metrics
    if _default_metrics is None:
        _default_metrics = SinkMetrics()
    return _default_metrics


def _retry_reason(error: SinkError) -> str:
    if isinstance(error, RateLimitedError):
        return "rate_limited"
    if error.status is not None:
        return f"http_{error.status}"
    return "transport"


#: Methods whose repetition cannot create a second document (RFC 9110 idempotent).
_REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class _NotRepeatable(Exception):
    """Carries a transient error of a request that must not be re-sent as is."""

    def __init__(self, error: TransientError) -> None:
        super().__init__(str(error))
        self.error = error


#: datetimes, dataclasses and subclasses of str/int/dict/list are not serialised by
#: orjson's own rules (they go to the fallback, which does what ``json.dumps`` does).
_ORJSON_STRICT = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                  | orjson.OPT_PASSTHROUGH_SUBCLASS)


def _json_body(value: object) -> bytes | None:
    """``value`` as compact UTF-8 JSON, as httpx's ``json=`` writes it (small exponents
    aside: ``1e-7``, not ``1e-07``), with orjson (about a tenth of the CPU); ``None``
    for no body, or for what orjson does not
    write as ``json.dumps`` would (integers beyond 64 bits, non-string keys, NaN or
    infinities, which httpx refuses): httpx's own encoder handles those as before."""
    if value is None:
        return None
    try:
        body = orjson.dumps(value, option=_ORJSON_STRICT)
    except TypeError:  # orjson.JSONEncodeError
        return None
    if b"null" in body and _has_non_finite(value):
        return None
    return body


def _has_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


class HttpExecutor:
    """Sends requests for one (platform, tenant); usable as a ``Transport``.

    ``classify`` is the platform's ``classify_error`` (generic HTTP rules by default),
    so vendor-specific throttling or transient codes are retried here too.
    """

    def __init__(
        self,
        *,
        platform: str,
        tenant_id: str,
        client: httpx.Client,
        auth: Authenticator | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        classify: Classifier | None = None,
        metrics: SinkMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_rate_wait: float | None = None,
    ) -> None:
        self.platform = platform
        self.tenant_id = tenant_id
        self.client = client
        self.auth = auth
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.metrics = metrics or default_metrics()
        self._classify = classify or self._classify_generic
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._max_rate_wait = self.retry.max_elapsed if max_rate_wait is None else max_rate_wait

    def _classify_generic(self, response: PlatformResponse) -> SinkError | None:
        return classify_http(
            response.status, response.headers, response.body, platform=self.platform
        )

    def __call__(self, request: PlatformRequest) -> PlatformResponse:
        return self.send(request)

    def close(self) -> None:
        """End the tenant's login session, if its authenticator holds one (the sink is
        stopping). The httpx client stays open: it may be shared."""
        if self.auth is not None:
            self.auth.close(self.send_once)

    # ------------------------------------------------------------------ public

    def send(self, request: PlatformRequest) -> PlatformResponse:
        """Send ``request`` with auth, rate limiting and retries (see module doc)."""

        def on_retry(error: RetryableError, retry_number: int, delay: float) -> None:
            self.metrics.retries.labels(self.platform, request.purpose, _retry_reason(error)).inc()
            log.warning(
                "%s/%s: %s failed (%s); retry %d in %.2fs",
                self.platform,
                self.tenant_id,
                request.purpose,
                error.reason,
                retry_number,
                delay,
            )

        repeatable = request.method in _REPEATABLE_METHODS or request.idempotency_key is not None

        def attempt() -> PlatformResponse:
            try:
                return self._attempt_with_reauth(request)
            except TransientError as exc:
                # A POST without an idempotency key may have been applied even though
                # its response was lost: sending it again could create a second
                # document. Hand it back to the runner, which re-runs the whole flow
                # (and the flow looks the document up by reference before creating).
                if repeatable:
                    raise
                raise _NotRepeatable(exc) from exc

        try:
            return call_with_retry(
                attempt,
                self.retry,
                sleep=self._sleep,
                clock=self._clock,
                rng=self._rng,
                on_retry=on_retry,
            )
        except _NotRepeatable as wrapped:
            raise wrapped.error from wrapped.error.__cause__

    def send_once(self, request: PlatformRequest) -> PlatformResponse:
        """One unauthenticated attempt outside the tenant's rate budget: the token and
        login calls that authenticators make go to other endpoints with their own
        limits. Transport failures raise :class:`TransientError`."""
        return self._exchange(request, authenticate=False)[0]

    # --------------------------------------------------------------- internals

    def _attempt_with_reauth(self, request: PlatformRequest) -> PlatformResponse:
        auth = self.auth
        if auth is not None:
            auth.refresh_if_needed(self.send_once)
        # A refresh may adopt the grant another worker rotated meanwhile instead of
        # minting one, and that grant's access token can itself be dead already
        # (issued long ago, or revoked); only a rejection right after a token we
        # minted ourselves is the tenant's problem. So: at most one refresh that
        # mints, plus at most one that adopts.
        adopted = False
        for round_ in (1, 2, 3):
            response, generation = self._limited_exchange(request)
            error = None if response.status in request.accept_statuses else self._classify(response)
            if isinstance(error, AuthExpiredError):
                if auth is None or not auth.can_refresh:
                    raise ConfigurationError(
                        f"credentials of tenant {self.tenant_id!r} rejected and not "
                        f"refreshable: {error.reason}",
                        platform=self.platform,
                        vendor_code=error.vendor_code,
                        status=error.status,
                    ) from error
                if round_ == 3 or (round_ == 2 and not adopted):
                    raise ConfigurationError(
                        f"credentials of tenant {self.tenant_id!r} rejected right after a "
                        f"refresh: {error.reason}",
                        platform=self.platform,
                        vendor_code=error.vendor_code,
                        status=error.status,
                    ) from error
                self.metrics.retries.labels(self.platform, request.purpose, "auth").inc()
                adopted = auth.refresh(self.send_once, stale_generation=generation) is False
                continue
            if isinstance(error, RateLimitedError):
                self.metrics.throttled.labels(self.platform).inc()
                if self.limiter is not None:
                    wait = error.retry_after
                    if wait is None:
                        wait = self.limiter.policy(self.platform).default_retry_after
                    self.limiter.pause(self.platform, self.tenant_id, wait)
                raise error
            if isinstance(error, RetryableError):
                raise error
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _limited_exchange(self, request: PlatformRequest) -> tuple[PlatformResponse, int]:
        if self.limiter is None:
            return self._exchange(request, authenticate=True)
        queued = time.perf_counter()
        with self.limiter.slot(self.platform, self.tenant_id):
            self.limiter.acquire(self.platform, self.tenant_id, max_wait=self._max_rate_wait)
            self.metrics.rate_wait.labels(self.platform).observe(time.perf_counter() - queued)
            return self._exchange(request, authenticate=True)

    def build(self, request: PlatformRequest) -> httpx.Request:
        """The ``httpx.Request`` for ``request`` (without credentials)."""
        headers = dict(request.headers)
        content = request.content
        body = _json_body(request.json)
        if body is not None:
            content = body
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
        return self.client.build_request(
            request.method,
            request.path,
            params=dict(request.query) or None,
            headers=headers,
            json=request.json if body is None else None,
            content=content,
        )

    def _exchange(
        self,
        request: PlatformRequest,
        *,
        authenticate: bool,
    ) -> tuple[PlatformResponse, int]:
        """Send once; return the response and the credential generation it carried."""
        outgoing = self.build(request)
        generation = 0
        if authenticate and self.auth is not None:
            generation = self.auth.apply(outgoing)
        started = time.perf_counter()
        try:
            raw = self.client.send(outgoing)
        except Exception as exc:
            status = "timeout" if isinstance(exc, httpx.TimeoutException) else "error"
            self.metrics.latency.labels(self.platform, request.purpose, status).observe(
                time.perf_counter() - started
            )
            error = classify_exception(exc, platform=self.platform)
            if error is None:
                raise
            raise error from exc
        self.metrics.latency.labels(self.platform, request.purpose, str(raw.status_code)).observe(
            time.perf_counter() - started
        )
        log.debug(
            "%s/%s: %s %s → %d (%s, idempotency key %s)",
            self.platform,
            self.tenant_id,
            request.method,
            request.path,
            raw.status_code,
            request.purpose,
            request.idempotency_key,
        )
        return PlatformResponse(raw.status_code, dict(raw.headers), raw.content), generation
