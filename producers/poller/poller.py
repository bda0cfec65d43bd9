"""The status poller: for CRMs without an outbox, turn document changes into the same
envelopes the relay publishes (``source=POLLER``).

Each cycle, per stream, it lists rows after ``watermark - overlap`` by (updated_at, id)
keyset pages. The overlap re-reads the recent past on purpose: a transaction that stamped
``updated_at`` before another but committed after it is still seen, as long as it
committed within ``overlap_s`` (set it above your longest CRM transaction). Snapshots make
the re-reads silent. Events are published and acknowledged before the snapshots and
watermarks that account for them are committed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ledgerstream.observability import Readiness, fresh, serve_observability
from producers import metrics
from producers.kafka import dead_letter
from producers.poller.diff import plan, snapshot_key
from producers.poller.source import STREAMS, Item, PollSource, Position, position
from producers.poller.state import EPOCH, PollerState
from producers.publisher import Outgoing, Publisher
from producers.settings import ProducerSettings, _std
from producers.topics_admin import ensure_topics
from schemas.models import AggregateType, DeadLetter

log = logging.getLogger("ledgerstream.poller")


class PollerSettings(ProducerSettings):
    """``LEDGERSTREAM_POLLER_*`` (plus the standard endpoint variables)."""

    model_config = SettingsConfigDict(env_prefix="LEDGERSTREAM_POLLER_", extra="ignore",
                                      populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        validation_alias=_std("KAFKA_BOOTSTRAP_SERVERS", "LEDGERSTREAM_POLLER_"))
    schema_registry_url: str = Field(
        validation_alias=_std("SCHEMA_REGISTRY_URL", "LEDGERSTREAM_POLLER_"))
    database_url: str = Field(validation_alias=_std("DATABASE_URL", "LEDGERSTREAM_POLLER_"),
                              description="ledgerstream's database: watermarks, snapshots")
    source: Literal["sql", "http"] = "sql"
    source_name: str = Field(default="", description="state namespace; default: the kind")
    source_database_url: str | None = Field(default=None,
                                            description="sql: the CRM database to poll")
    http_base_url: str | None = None
    http_token: SecretStr | None = None
    http_tenant_id: str | None = None
    interval_s: float = Field(default=5.0, gt=0)
    overlap_s: float = Field(default=30.0, ge=0)
    page_size: int = Field(default=500, ge=1)


class EventSink(Protocol):
    """Where planned events go (a :class:`Publisher`; tests may pass a recorder)."""

    def publish(self, items: Sequence[Outgoing]) -> None: ...

    def publish_dead_letter(self, letter: DeadLetter, key: str | None) -> None: ...


class Poller:
    def __init__(self, source: PollSource, state: PollerState, publisher: EventSink, *,
                 overlap: timedelta = timedelta(seconds=30), page_size: int = 500,
                 streams: Sequence[AggregateType] = STREAMS) -> None:
        self.source = source
        self.state = state
        self.publisher = publisher
        self.overlap = overlap
        self.page_size = page_size
        self.streams = tuple(streams)
        self.stop = threading.Event()
        #: monotonic time of the last cycle that did not fail (readiness)
        self.last_success: float | None = None

    def _start(self, stream: AggregateType) -> Position:
        mark = self.state.watermark(stream)
        if mark == EPOCH:
            return EPOCH
        return Position(mark.updated_at - self.overlap, "")

    def poll_once(self) -> int:
        """One pass over every stream; returns the number of events emitted."""
        started = time.perf_counter()
        cursors = {s: self._start(s) for s in self.streams}
        emitted = 0
        while cursors and not self.stop.is_set():
            pages: dict[AggregateType, Sequence[Item]] = {
                s: self.source.fetch(s, after, self.page_size) for s, after in cursors.items()}
            merged = sorted((i for page in pages.values() for i in page),
                            key=lambda i: i.updated_at)
            emitted += self._process(merged)
            cursors = {s: position(page[-1]) for s, page in pages.items()
                       if len(page) >= self.page_size}
        for stream in self.streams:
            mark = self.state.watermark(stream)
            if mark != EPOCH:
                metrics.POLLER_LAG.labels(stream.value).set(
                    (datetime.now(UTC) - mark.updated_at).total_seconds())
        metrics.POLLER_CYCLE.observe(time.perf_counter() - started)
        return emitted

    def _process(self, items: list[Item]) -> int:
        if not items:
            return 0
        known = self.state.snapshots(snapshot_key(i) for i in items)
        todo = plan(items, known, self.source.name)
        for bad in todo.invalid:
            log.error("dead-lettering %s: %s", bad.aggregate_id, bad.reason)
            metrics.POLLER_DEAD_LETTERS.labels("SchemaMismatch").inc()
            self.publisher.publish_dead_letter(dead_letter(
                topic=self.source.name, error=bad.reason, error_class="SchemaMismatch",
                stage="poller", key=None, value=bad.raw, event_id=None,
                tenant_id=bad.tenant_id), key=None)
        self.publisher.publish(todo.outgoing)
        marks: dict[AggregateType, Position] = {}
        for item in items:
            pos = position(item)
            if item.aggregate_type not in marks or marks[item.aggregate_type] < pos:
                marks[item.aggregate_type] = pos
        self.state.save(todo.snapshots, marks)
        for out in todo.outgoing:
            metrics.POLLER_EVENTS.labels(out.event.aggregate_type.value,
                                         out.event.event_type).inc()
        return len(todo.outgoing)

    def run(self, interval_s: float) -> None:
        while not self.stop.is_set():
            try:
                n = self.poll_once()
                self.last_success = time.monotonic()
                if n:
                    log.info("emitted %d events", n)
            except Exception:  # keep polling; the next cycle re-reads from the watermark
                log.exception("poll cycle failed")
            self.stop.wait(interval_s)


def build_source(settings: PollerSettings) -> PollSource:
    from producers.poller.source import HttpPollSource, SqlPollSource
    name = settings.source_name or settings.source
    if settings.source == "sql":
        if not settings.source_database_url:
            raise ValueError("source=sql needs LEDGERSTREAM_POLLER_SOURCE_DATABASE_URL")
        return SqlPollSource(settings.source_database_url, name=name)
    if not (settings.http_base_url and settings.http_tenant_id):
        raise ValueError("source=http needs LEDGERSTREAM_POLLER_HTTP_BASE_URL and "
                         "LEDGERSTREAM_POLLER_HTTP_TENANT_ID")
    headers = ({"Authorization": f"Bearer {settings.http_token.get_secret_value()}"}
               if settings.http_token else {})
    client = httpx.Client(base_url=settings.http_base_url, headers=headers, timeout=30)
    return HttpPollSource(client, settings.http_tenant_id, name=name)


def run_poller(settings: PollerSettings) -> None:
    """Poll until SIGTERM/SIGINT (the current cycle completes first)."""
    from producers.sql import apply_state_schema
    readiness = Readiness({"poller": lambda: "starting"})
    serve_observability("poller", settings.metrics_port, host=settings.metrics_host,
                        readiness=readiness)
    if settings.create_topics:
        ensure_topics(settings.kafka_bootstrap_servers, settings.topics)
    apply_state_schema(settings.database_url)
    source = build_source(settings)
    publisher = Publisher(settings.kafka_bootstrap_servers, settings.schema_registry_url,
                          settings.topics, linger_ms=settings.linger_ms,
                          client_id=f"ledgerstream-poller-{settings.instance_id}")
    poller = Poller(
        source, PollerState(settings.database_url, source.name), publisher,
        overlap=timedelta(seconds=settings.overlap_s), page_size=settings.page_size)
    max_age_s = max(60.0, 3 * settings.interval_s)
    readiness.add("poller", fresh(lambda: poller.last_success, max_age_s, "successful poll"))
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: poller.stop.set())
    try:
        poller.run(settings.interval_s)
    finally:
        publisher.close()
        poller.state.close()
