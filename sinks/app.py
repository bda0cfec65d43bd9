"""Assembling one sink process from its settings: `ledgerstream sink --platform <name>`.

Everything stateful is built here once — consumer, bookkeeping store, dead-letter
producer, token store, rate limiter, one executor per tenant — and handed to the
:class:`SinkRunner`, which holds the loop. Several replicas of the same platform's
sink may run at once: Kafka splits the partitions between them, the PostgreSQL rate
budget is shared, and the offset fence keeps a zombie from committing.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext
from psycopg_pool import ConnectionPool

from ledgerstream.observability import Readiness, postgres_check, serve_observability
from ledgerstream.observability.kafka import lag_stats_conf
from schemas.serde import dead_letter_serializer, registry_client
from schemas.topics import Topics
from sinks.core.avro_reader import LedgerEntryReader
from sinks.core.contract import Platform, RateLimitPolicy, Transport
from sinks.core.crash import CrashPoints
from sinks.core.decoding import ledger_entry_decoder
from sinks.core.errors import ConfigurationError
from sinks.core.mapping import TenantConfig, load_mapping_file
from sinks.core.metrics import SinkRuntimeMetrics
from sinks.core.runner import SinkRunner, dlq_writer
from sinks.core.settings import SinkSettings
from sinks.core.store import SinkStore
from sinks.transport.auth import PostgresTokenStore, TokenCipher, TokenStore
from sinks.transport.coalesce import Coalescer
from sinks.transport.connection import build_executor, parse_connection
from sinks.transport.db import apply_schema
from sinks.transport.ratelimit import PostgresRateLimiter
from sinks.transport.redact import install_redaction
from sinks.transport.settings import TransportSettings

log = logging.getLogger(__name__)


def load_tenants(settings: SinkSettings) -> dict[str, TenantConfig]:
    if settings.tenants_file is None:
        raise ConfigurationError(
            "no tenants file: set LEDGERSTREAM_SINK_TENANTS_FILE or --tenants",
            platform=settings.platform)
    mapping = load_mapping_file(settings.tenants_file)
    return {tid: cfg for tid, cfg in mapping.for_platform(settings.platform).items()
            if cfg.enabled}


def token_store(database_url: str, transport: TransportSettings) -> TokenStore | None:
    if transport.token_encryption_key is None:
        return None
    keys = [transport.token_encryption_key, *transport.token_encryption_old_keys]
    return PostgresTokenStore(database_url, TokenCipher(keys))


class TenantTransports:
    """Each tenant's transport, built on first use (lanes ask concurrently, hence the
    lock); :meth:`close` lets each give back what it holds (a login session)."""

    def __init__(self, build: Callable[[str], Transport]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self.executors: dict[str, Transport] = {}

    def __call__(self, tenant_id: str) -> Transport:
        with self._lock:
            executor = self.executors.get(tenant_id)
            if executor is None:
                executor = self.executors[tenant_id] = self._build(tenant_id)
            return executor

    def close(self) -> None:
        with self._lock:
            executors, self.executors = list(self.executors.values()), {}
        for executor in executors:
            close = getattr(executor, "close", None)
            if close is not None:
                close()


def build_runner(
    settings: SinkSettings,
    *,
    platform: Platform | None = None,
    tenants: Mapping[str, TenantConfig] | None = None,
    http_transport: httpx.BaseTransport | None = None,
    rate_limit: RateLimitPolicy | None = None,
) -> SinkRunner:
    """The runner with everything it needs. ``rate_limit`` replaces the platform's
    documented limits, for a sandbox whose limits were lifted (load benchmarks)."""
    from sinks.platforms.registry import get_platform

    platform = platform or get_platform(settings.platform)
    name = platform.spec.name
    tenants = dict(tenants if tenants is not None else load_tenants(settings))
    topics = Topics(prefix=settings.topic_prefix, suffix=settings.topic_suffix)
    transport_settings = TransportSettings()

    store = SinkStore(settings.database_url, name, topics.sink_group(name))
    store.ensure_schema()
    apply_schema(settings.database_url)
    tokens = token_store(settings.database_url, transport_settings)
    # The shared rate budget is consulted before every request: pooled connections,
    # not a new PostgreSQL connection (~10 ms) per call.
    budget_pool = ConnectionPool(settings.database_url, min_size=1,
                                 max_size=settings.concurrency + 1, open=True,
                                 name=f"sink-{name}-rate-budget")
    policy = rate_limit or platform.spec.rate_limit
    limiter = PostgresRateLimiter(budget_pool, {name: policy})

    def build(tenant_id: str) -> Transport:
        connection = parse_connection(tenant_id, name, tenants[tenant_id].connection)
        executor: Transport = build_executor(
            platform=platform, tenant_id=tenant_id, connection=connection, limiter=limiter,
            tokens=tokens, settings=transport_settings, transport=http_transport)
        codec = platform.batch_codec() if settings.coalesce else None
        return (Coalescer(executor, codec, linger_s=settings.coalesce_linger_s)
                if codec is not None else executor)

    transport_for = TenantTransports(build)

    registry = registry_client(settings.schema_registry_url)
    dlq_topic = topics.sink_dlq(name)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "enable.idempotence": True, "acks": "all"})
    serialize = dead_letter_serializer(registry)
    write, flush = dlq_writer(
        producer, dlq_topic,
        lambda letter, topic: serialize(letter, SerializationContext(topic, MessageField.VALUE)),
    )
    return SinkRunner(
        platform=platform,
        topic=topics.ledger_entries,
        consumer_conf={"bootstrap.servers": settings.kafka_bootstrap_servers,
                       "group.id": topics.sink_group(name),
                       "client.id": f"ledgerstream-sink-{name}",
                       "session.timeout.ms": settings.session_timeout_ms,
                       # a fetch waits at most this long for data (librdkafka: 500 ms),
                       # which a quiet tenant's document would otherwise wait out
                       "fetch.wait.max.ms": settings.fetch_wait_max_ms,
                       "max.partition.fetch.bytes": settings.max_partition_fetch_bytes,
                       **lag_stats_conf(SinkRuntimeMetrics.default().lag, topics.ledger_entries,
                                        {"platform": name})},
        store=store,
        tenants=tenants,
        transport_for=transport_for,
        decode=ledger_entry_decoder(LedgerEntryReader(
            registry, checked=settings.check_ledger_entries)),
        dead_letter=write,
        flush_dead_letters=flush,
        batch_size=settings.batch_size,
        poll_timeout_s=settings.poll_timeout_s,
        retry_backoff_s=settings.retry_backoff_s,
        batch_time_budget_s=settings.batch_time_budget_s,
        crash=CrashPoints(settings.crash_at),
        concurrency=settings.concurrency,
        lanes_per_tenant=lanes_per_tenant(platform, policy, coalesce=settings.coalesce),
    )


def lanes_per_tenant(platform: Platform, policy: RateLimitPolicy, *, coalesce: bool
                     ) -> int | None:
    """How many of a tenant's lanes may run at once: the requests its platform lets
    it have in flight, or, coalescing, a full batch's worth of single requests (one
    batch is one request in flight). None where the policy sets no concurrency."""
    if policy.concurrency is None:
        return None
    codec = platform.batch_codec() if coalesce else None
    return max(policy.concurrency, codec.max_items if codec is not None else 0)


def sink_readiness(runner: SinkRunner, database_url: str) -> Readiness:
    """Ready: the consumer holds at least one partition and PostgreSQL answers."""
    def assigned() -> bool | str:
        if runner.stop_event.is_set():
            return "stopping"
        return True if runner.claim.expected else "no partitions assigned"

    return Readiness({"kafka_assignment": assigned, "postgres": postgres_check(database_url)},
                     ttl_s=2.0)


def close_transports(runner: SinkRunner) -> None:
    """Log out of the tenants' platform sessions (best effort, once the runner stopped):
    an open API session counts against the platform licence until it times out."""
    if isinstance(runner.transport_for, TenantTransports):
        runner.transport_for.close()


def tune_gc(settings: SinkSettings) -> None:
    """A throughput setting for the sink process (not a library's business, so the
    service entry point and the benchmark call it, not the runner): fewer young
    collections, and the start-up heap (modules, schemas, compiled plans) moved out of
    the collector's sight so the full collections that remain do not walk it."""
    if settings.gc_gen0_threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(settings.gc_gen0_threshold, older, oldest)
    gc.freeze()


def run_sink(settings: SinkSettings, *, max_idle_s: float | None = None, **kw: Any) -> SinkRunner:
    """Run until SIGTERM/SIGINT (or ``max_idle_s`` without records); then log out of
    the platform sessions it opened."""
    install_redaction()
    runner = build_runner(settings, **kw)
    serve_observability(f"sink-{runner.name}", settings.metrics_port,
                        host=settings.metrics_host,
                        readiness=sink_readiness(runner, settings.database_url))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    tune_gc(settings)
    log.info("sink %s: %d tenants, reading %s", runner.name, len(runner.tenants), runner.topic)
    try:
        runner.run(max_idle_s=max_idle_s)
    finally:
        close_transports(runner)
    return runner
