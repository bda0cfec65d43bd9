"""The outbox relay: outbox rows -> Kafka, in order per key, at least once, never blocked
by a bad row. See :mod:`producers.relay.claim` for the concurrency model."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import psycopg
from confluent_kafka import KafkaError, KafkaException, Message
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ledgerstream.observability import Readiness, fresh, serve_observability
from producers import metrics
from producers.kafka import PERMANENT_DELIVERY_ERRORS, dead_letter, make_producer
from producers.relay.claim import (
    BUCKETS,
    claim_buckets,
    finish,
    has_avro_column,
    move_to_dead_letter,
    oldest_pending,
    read_rows,
)
from producers.relay.rows import BadRowError, Encoded, OutboxRow, RowEncoder
from producers.serde import Serde
from producers.settings import ProducerSettings, _std
from producers.topics_admin import ensure_topics

log = logging.getLogger("ledgerstream.relay")


class RelaySettings(ProducerSettings):
    """``LEDGERSTREAM_RELAY_*`` (plus the standard endpoint variables)."""

    model_config = SettingsConfigDict(env_prefix="LEDGERSTREAM_RELAY_", extra="ignore",
                                      populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        validation_alias=_std("KAFKA_BOOTSTRAP_SERVERS", "LEDGERSTREAM_RELAY_"))
    schema_registry_url: str = Field(
        validation_alias=_std("SCHEMA_REGISTRY_URL", "LEDGERSTREAM_RELAY_"))
    database_url: str = Field(
        validation_alias=_std("DATABASE_URL", "LEDGERSTREAM_RELAY_"),
        description="the CRM database holding the outbox table")
    batch_size: int = Field(default=5000, ge=1, description="rows per transaction")
    buckets_per_claim: int = Field(
        default=BUCKETS // 2, ge=1, le=BUCKETS,
        description="buckets one batch locks; fewer lets more relays share the work")
    idle_wait_s: float = Field(default=1.0, gt=0,
                               description="sleep when idle (a NOTIFY wakes it earlier)")
    on_publish: Literal["delete", "mark"] = "delete"
    validation: Literal["schema", "contract"] = Field(
        default="schema", description="schema: envelope + Avro schema (fast); contract: "
                                      "the full pydantic models too (see RowEncoder)")
    delivery_timeout_s: float = 120.0
    compression: Literal["lz4", "none", "zstd", "snappy", "gzip"] = Field(
        default="lz4", description="producer compression.type (see bench/RESULTS.md for "
                                   "the CPU it costs the relay and the broker)")
    exit_when_idle: bool = Field(default=False,
                                 description="stop once the outbox is empty (bench, backfill)")
    fault_pause_before_commit_s: float = Field(
        default=0.0, ge=0,
        description="crash-injection tests only: sleep after the delivery reports, before "
                    "the rows are deleted and committed")


@dataclass
class BatchResult:
    published: int = 0
    dead: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    aborted: bool = False


class _Reports:
    """The delivery callback of a whole batch: counts reports and keeps only failures.

    One callable for every record instead of a closure per record: librdkafka calls back
    ~30,000 times a second, and a per-record closure plus a report dict cost as much CPU
    as the produce call itself.
    """

    __slots__ = ("count", "failed")

    def __init__(self) -> None:
        self.count = 0
        self.failed: list[tuple[KafkaError, Message]] = []

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        self.count += 1
        if err is not None:
            self.failed.append((err, msg))

    def failed_rows(self, sent: list[tuple[str, Encoded]]) -> dict[str, KafkaError] | None:
        """Row id -> error of every failed record, or None if one cannot be named.

        Delivery reports carry no headers, so a record is named by its value: the Avro
        bytes hold the event id, so no two rows of a batch share them."""
        if not self.failed:
            return {}
        by_value = {enc.value: row_id for row_id, enc in sent}
        out: dict[str, KafkaError] = {}
        for err, msg in self.failed:
            row_id = by_value.get(msg.value())  # type: ignore[arg-type]
            if row_id is None:
                return None
            out[row_id] = err
        return out


class BatchAbortedError(RuntimeError):
    """A delivery failed for a reason that is not the record's fault: roll back, retry."""


class Relay:
    """One relay instance; several may run against the same outbox."""

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.producer = make_producer(settings.kafka_bootstrap_servers,
                                      linger_ms=settings.linger_ms,
                                      client_id=f"ledgerstream-relay-{settings.instance_id}",
                                      **{"compression.type": settings.compression})
        self.serde = Serde(settings.schema_registry_url)
        self.encoder = RowEncoder(self.serde, self.topics, settings.validation)
        self.conn = psycopg.connect(settings.database_url)
        self.avro_column = has_avro_column(self.conn)
        self.stop = threading.Event()
        self._last_lag_check = 0.0
        self.published_total = 0
        self.dead_total = 0
        #: monotonic time of the last batch that did not roll back (readiness)
        self.last_success = time.monotonic()

    def close(self) -> None:
        self.producer.flush(10)
        self.conn.close()

    # -- one batch ------------------------------------------------------------------

    def step(self) -> BatchResult:
        """Claim, publish, await every delivery report, then delete/mark and commit."""
        started = time.perf_counter()
        result = BatchResult()
        try:
            with self.conn.transaction():
                buckets = claim_buckets(self.conn, self.settings.buckets_per_claim)
                if not buckets:
                    return result
                rows = read_rows(self.conn, buckets, self.settings.batch_size,
                                 avro=self.avro_column)
                if not rows:
                    return result
                published, dead = self._publish(rows)
                if self.settings.fault_pause_before_commit_s:
                    log.warning("fault injection: %d rows delivered, pausing %.1fs before "
                                "commit", len(published), self.settings.fault_pause_before_commit_s)
                    time.sleep(self.settings.fault_pause_before_commit_s)
                finish(self.conn, published, mark=self.settings.on_publish == "mark")
                move_to_dead_letter(self.conn, dead, avro=self.avro_column)
                result.published, result.dead = len(published), len(dead)
            self.published_total += result.published
            self.dead_total += result.dead
        except BatchAbortedError as exc:
            metrics.RELAY_ABORTS.inc()
            result.aborted = True
            log.warning("batch rolled back, rows will be re-sent: %s", exc)
            self.stop.wait(1.0)
            return result
        metrics.RELAY_BATCH.observe(time.perf_counter() - started)
        metrics.RELAY_BATCH_ROWS.observe(len(rows))
        return result

    def _publish(self, rows: list[OutboxRow]
                 ) -> tuple[list[str], list[tuple[str, str, str]]]:
        dead: list[tuple[str, str, str]] = []
        sent: list[tuple[str, Encoded]] = []  # in produce order
        refused: list[tuple[str, KafkaError]] = []
        reports = _Reports()
        encode, produce = self.encoder.encode, self._produce

        for row in rows:
            try:
                enc = encode(row)
            except BadRowError as exc:
                dead.append((row.id, exc.error_class, exc.reason))
                continue
            err = produce(enc, reports)
            if err is None:
                sent.append((row.id, enc))
            else:
                refused.append((row.id, err))
        self._flush()
        if reports.count != len(sent):
            raise BatchAbortedError(f"{len(sent) - reports.count} delivery reports missing")
        failed = reports.failed_rows(sent)
        if failed is None:
            raise BatchAbortedError(f"delivery failed: {reports.failed[0][0]}")
        refused_by_broker = [row_id for row_id, err in failed.items()
                             if err.code() in PERMANENT_DELIVERY_ERRORS]
        if len(refused_by_broker) > 1:
            self._resend_alone(refused_by_broker, dict(sent), failed)
        published: list[str] = []
        topics: dict[str, int] = {}
        for row_id, enc in sent:
            err = failed.get(row_id)
            if err is None:
                published.append(row_id)
                topics[enc.topic] = topics.get(enc.topic, 0) + 1
            elif err.code() in PERMANENT_DELIVERY_ERRORS:
                refused.append((row_id, err))
            else:
                raise BatchAbortedError(f"row {row_id}: {err}")
        dead += [(row_id, "BrokerRejected", f"the broker refused the record: {err}")
                 for row_id, err in refused]
        for topic, count in topics.items():
            metrics.RELAY_EVENTS.labels(topic, "published").inc(count)
        self._send_dead_letters(rows, dead)
        return published, dead

    def _resend_alone(self, row_ids: list[str], by_id: dict[str, Encoded],
                      failed: dict[str, KafkaError]) -> None:
        """Re-send records the broker refused, one at a time, and keep only the refusals
        that stand alone.

        librdkafka fails every record of a produce batch the broker refuses (one record
        above the topic's ``max.message.bytes`` takes its batch-mates along), so without
        this the good records of that batch would be dead-lettered too. The re-sent ones
        land after the rest of the batch; a refused record breaks its key's order anyway
        (it leaves for the DLQ), and sinks drop stale ``aggregate_version``s."""
        for row_id in row_ids:
            reports = _Reports()
            err = self._produce(by_id[row_id], reports)
            if err is None:
                self._flush()
                if reports.count != 1:
                    raise BatchAbortedError(f"row {row_id}: no delivery report on re-send")
                err = reports.failed[0][0] if reports.failed else None
            if err is None:
                del failed[row_id]
            else:
                failed[row_id] = err

    def _produce(self, enc: Encoded, reports: _Reports) -> KafkaError | None:
        """Produce one record; a refusal that is the record's fault is returned (the row
        is dead-lettered), anything else aborts the batch."""
        while True:
            try:
                self.producer.produce(enc.topic, enc.value, enc.key, headers=enc.headers,
                                      on_delivery=reports)
                return None
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.code() in PERMANENT_DELIVERY_ERRORS:
                    return err
                raise BatchAbortedError(str(err)) from exc

    def _flush(self) -> None:
        deadline = time.monotonic() + self.settings.delivery_timeout_s
        while self.producer.flush(0.5) > 0:
            if time.monotonic() > deadline:
                raise BatchAbortedError("delivery reports did not arrive in time")

    def _send_dead_letters(self, rows: list[OutboxRow],
                           dead: list[tuple[str, str, str]]) -> None:
        """Publish each dead row to crm.dlq and await the acks before the rows leave."""
        if not dead:
            return
        by_id = {r.id: r for r in rows}
        dlq = self.topics.crm_dlq
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        for row_id, error_class, reason in dead:
            row = by_id[row_id]
            log.error("dead-lettering outbox row %s (%s): %s", row_id, error_class, reason)
            letter = dead_letter(
                topic=self.topics.name(_destination(row)), error=reason, stage="relay",
                error_class=error_class, key=row.message_key.encode(),
                value=(row.payload_avro if row.payload_avro is not None
                       else (row.payload or "").encode()),
                event_id=row.id, tenant_id=row.tenant_id)
            self.producer.produce(dlq, self.serde.dead_letter(dlq, letter),
                                  row.message_key.encode(), on_delivery=on_delivery,
                                  headers=[("event_id", row.id.encode())])
            metrics.RELAY_EVENTS.labels(dlq, "dead_lettered").inc()
        self._flush()
        if errors:
            raise BatchAbortedError(f"dead letters not delivered: {errors[0]}")

    # -- the loop ----------------------------------------------------------------------

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag_check < 1.0:
            return
        self._last_lag_check = now
        with self.conn.transaction():
            oldest = oldest_pending(self.conn)
        metrics.RELAY_LAG.set(0 if oldest is None else
                              max(0.0, (datetime.now(UTC) - oldest).total_seconds()))

    def run(self) -> None:
        """Until :attr:`stop` is set: batches back to back while there is work, otherwise
        wait for a NOTIFY from the outbox trigger (or ``idle_wait_s``)."""
        listener = psycopg.connect(self.settings.database_url, autocommit=True)
        listener.execute("LISTEN ledgerstream_outbox")
        try:
            while not self.stop.is_set():
                result = self.step()
                if not result.aborted:
                    self.last_success = time.monotonic()
                self._update_lag()
                if result.published or result.dead:
                    continue
                if self.settings.exit_when_idle and self._empty():
                    return
                for _ in listener.notifies(timeout=self.settings.idle_wait_s, stop_after=1):
                    pass
        finally:
            listener.close()

    def _empty(self) -> bool:
        with self.conn.transaction():
            return oldest_pending(self.conn) is None


def _destination(row: OutboxRow) -> str:
    from producers.routing import BASE_TOPIC
    from schemas.models import AggregateType
    try:
        return BASE_TOPIC[AggregateType(row.aggregatetype)]
    except ValueError:
        return "crm.financial-events"


def run_relay(settings: RelaySettings) -> None:
    """Run one relay until SIGTERM/SIGINT: the current batch finishes (delivery reports,
    delete, commit), then the process exits; nothing is left half-done."""
    readiness = Readiness({"relay": lambda: "starting"})
    serve_observability("relay", settings.metrics_port, host=settings.metrics_host,
                        readiness=readiness)
    if settings.create_topics:
        ensure_topics(settings.kafka_bootstrap_servers, settings.topics)
    relay = Relay(settings)
    readiness.add("last_batch", fresh(lambda: relay.last_success,
                                      max(60.0, 5 * settings.idle_wait_s), "successful batch"))
    readiness.add("relay", lambda: True)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: relay.stop.set())
    log.info("relay %s started", settings.instance_id)
    try:
        relay.run()
    finally:
        relay.close()
        log.info("relay %s stopped: published=%d dead_lettered=%d", settings.instance_id,
                 relay.published_total, relay.dead_total)
