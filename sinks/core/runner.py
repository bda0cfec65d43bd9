"""The sink loop: consume ledger entries, write them to a platform, book them, move on.

For each batch polled from ``ledger.entries`` (read_committed, auto-commit off), the
records are split into lanes by Kafka key (tenant:customer); lanes run concurrently on
a small thread pool, each lane strictly in offset order, so a customer's documents keep
their order while independent customers overlap their API round-trips. The external
ids the batch may need are read in one query before the lanes start. Per record:

1. decode; a record that cannot be decoded is dead-lettered with the reason;
2. skip tenants this deployment does not serve (their offsets still advance);
3. park records of a paused tenant (kept in order in PostgreSQL; the partition moves on);
4. skip events the sync log already holds as terminal (a replay is harmless);
5. run the platform's sans-I/O flow through the tenant's transport;
6. classify failures: permanent → dead-letter topic + sync log; configuration →
   pause the tenant and park the record; retryable (after the transport's own
   retries) → rewind that partition to the record and try again after a pause;
7. when every lane is done, commit the batch's external ids, sync log and offsets in
   ONE PostgreSQL transaction (a partition's offset stops at its first record that
   was not finished: records of other lanes after it were written and are booked, so
   re-reading them skips them as terminal — the same path as a crash replay);
8. commit the same offsets to Kafka, for lag monitoring only.

On partition assignment the consumer seeks to the offsets stored in PostgreSQL, so
Kafka's committed offsets are never trusted for correctness.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from schemas.models import DeadLetter
from sinks.core.contract import FlowRunner, Platform, SinkContext, Transport, WriteResult
from sinks.core.crash import CrashPoints
from sinks.core.errors import ConfigurationError, PermanentError, RetryableError, SinkError
from sinks.core.metrics import SinkRuntimeMetrics
from sinks.core.references import map_key, own_key, referenced_keys
from sinks.core.store import ExternalIdUpdate, OffsetClaim, Outcome, SinkStore, digest

log = logging.getLogger(__name__)

Decoder = Callable[["Record"], Any]


@dataclass(frozen=True)
class Record:
    """The parts of a Kafka message the sink uses (also rebuilt from parked rows)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, msg: Message) -> Record:
        raw_headers: list[Any] = list(msg.headers() or [])
        headers = tuple(
            (str(k), v if isinstance(v, bytes) else str(v or "").encode())
            for k, v in raw_headers
        )
        return cls(msg.topic() or "", msg.partition() or 0, msg.offset() or 0, msg.key(),
                   msg.value(), headers)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return None
DeadLetterWriter = Callable[[DeadLetter], None]


@dataclass
class BatchState:
    outcomes: list[Outcome] = field(default_factory=list)
    parked: list[tuple[str, str | None, str, int, int, bytes | None, bytes | None]] = field(
        default_factory=list
    )
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    # ids written earlier in this batch, not yet committed: "tenant" -> key -> update
    pending_ids: dict[str, dict[str, ExternalIdUpdate]] = field(default_factory=dict)
    newly_paused: dict[str, str] = field(default_factory=dict)
    #: External ids read for the whole batch before it started, "tenant" -> key ->
    #: update; ``None`` (a parked record's replay) reads them per record instead.
    known: dict[str, dict[str, ExternalIdUpdate]] | None = None
    #: Per (topic, partition): the first offset not finished (failed or over budget).
    blocked: dict[tuple[str, int], int] = field(default_factory=dict)
    finished: int = 0
    retry_needed: bool = False
    #: Documents (tenant, aggregate type, id) written in this batch; used when the
    #: platform ``guards_edits`` to end a lane before a second write of one of them.
    documents: set[tuple[str, str, str]] = field(default_factory=set)


Lane = list[tuple[Record, Any]]


def _tenant_of(lane: Lane) -> bytes:
    """The tenant part of a lane's Kafka key (tenant:customer)."""
    return (lane[0][0].key or b"").split(b":", 1)[0]


class SinkRunner:
    def __init__(
        self,
        *,
        platform: Platform,
        topic: str,
        consumer_conf: Mapping[str, Any],
        store: SinkStore,
        tenants: Mapping[str, Any],
        transport_for: Callable[[str], Transport],
        decode: Decoder,
        dead_letter: DeadLetterWriter,
        flush_dead_letters: Callable[[], None] = lambda: None,
        batch_size: int = 200,
        poll_timeout_s: float = 0.5,
        retry_backoff_s: float = 2.0,
        batch_time_budget_s: float = 60.0,
        crash: CrashPoints | None = None,
        metrics: SinkRuntimeMetrics | None = None,
        concurrency: int = 8,
        lanes_per_tenant: int | None = None,
    ) -> None:
        self.platform = platform
        self.name = platform.spec.name
        self.topic = topic
        self.store = store
        self.tenants = tenants
        self.transport_for = transport_for
        self.decode = decode
        self.dead_letter = dead_letter
        self.flush_dead_letters = flush_dead_letters
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.retry_backoff_s = retry_backoff_s
        self.batch_time_budget_s = batch_time_budget_s
        self.crash = crash or CrashPoints(None)
        self.metrics = metrics or SinkRuntimeMetrics.default()
        self.claim = OffsetClaim()
        self.paused = store.blocked_tenants()
        self.stop_event = threading.Event()
        conf = {
            **consumer_conf,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
        self.consumer = Consumer(conf)
        self.processed = 0
        # Lanes share the batch state, the store's connection and the executor cache.
        self._lock = threading.Lock()
        self._transport_lock = threading.Lock()
        self.concurrency = max(1, concurrency)
        # A tenant's lanes beyond what its rate limit lets run at once only wait for
        # its budget; worse, every one of them has started a record, and a started
        # record is finished before the batch's time budget can end the batch. 64 lanes
        # of one Xero tenant (60 calls/min, ~4 calls per document) held a batch past
        # Kafka's max.poll.interval.ms. Capped, a batch ends at most a few records past
        # its budget. None: no cap (a sandbox with its limits lifted).
        self.lanes_per_tenant = lanes_per_tenant
        self._pool = (ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"sink-{self.name}")
                      if self.concurrency > 1 else None)

    # -- assignment ----------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self.store.stored_offsets(self.topic, [p.partition for p in partitions])
        for tp in partitions:
            offset = stored.get(tp.partition)
            tp.offset = offset if offset is not None else OFFSET_BEGINNING
            self.claim.expected[(tp.topic, tp.partition)] = offset
        log.info("%s: assigned %s", self.name,
                 {tp.partition: tp.offset for tp in partitions})
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.claim.expected.pop((tp.topic, tp.partition), None)
        consumer.unassign()

    # -- main loop -------------------------------------------------------------
    def run(self, *, max_idle_s: float | None = None, until: Callable[[], bool] | None = None
            ) -> None:
        """Process until stopped, ``until()`` is true, or nothing came for ``max_idle_s``."""
        self.consumer.subscribe([self.topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke)
        last_record = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if until is not None and until():
                    break
                messages = self._poll()
                records = [Record.of(m) for m in messages if self._usable(m)]
                if records:
                    last_record = time.monotonic()
                    self.process_batch(records)
                elif max_idle_s is not None and time.monotonic() - last_record > max_idle_s:
                    break
        finally:
            self.consumer.close()
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def stop(self) -> None:
        self.stop_event.set()

    def _poll(self) -> list[Message]:
        """The next batch: wait up to ``poll_timeout_s`` for the first record, then take
        whatever else is already fetched, up to ``batch_size``, without waiting.

        ``consume(n, timeout)`` would hold a record that arrived alone until ``n`` came
        or the timeout passed: on a quiet stream every document paid the whole timeout.
        Batches still fill under load: what arrives while a batch is written is there,
        fetched, when the next one is taken."""
        first = self.consumer.poll(self.poll_timeout_s)
        if first is None:
            return []
        if self.batch_size == 1:
            return [first]
        return [first, *self.consumer.consume(self.batch_size - 1, 0)]

    def _usable(self, msg: Message) -> bool:
        error = msg.error()
        if error is None:
            return True
        if error.code() == KafkaError._PARTITION_EOF:
            return False
        if error.fatal():
            raise RuntimeError(f"{self.name}: fatal Kafka error: {error}")
        log.warning("%s: consumer error: %s", self.name, error)
        return False

    def process_batch(self, records: list[Record]) -> None:
        # Re-read every batch: ``ledgerstream resume`` runs in another process, and a
        # tenant it un-paused is still blocked until its parked records are replayed.
        stage = self.metrics.batch_stage
        planning = time.monotonic()
        self.paused = self.store.blocked_tenants()
        self.metrics.paused_tenants.labels(self.name).set(len(self.paused))
        batch = BatchState()
        decoded = [(msg, self._decode(msg)) for msg in records]
        entries = [e for _, e in decoded if not isinstance(e, Exception)]
        # Undecodable records too: a partition re-read after another lane's failure (or
        # a crash) must not dead-letter them a second time.
        done = self.store.terminal_events(
            [(str(e.event.tenant_id), str(e.event.event_id)) for e in entries]
            + [self._raw_identity(msg) for msg, e in decoded
               if isinstance(e, Exception) and not isinstance(e, RetryableError)])
        batch.known = self._prefetch(entries)
        started = time.monotonic()
        stage.labels(self.name, "plan").observe(started - planning)
        lanes = self._lanes(decoded)
        if self._pool is None or len(lanes) == 1:
            for lane in lanes:
                self._run_lane(lane, batch, done, started)
        else:
            # list() re-raises a lane's unexpected exception here, in the loop's thread.
            gates = self._tenant_gates(lanes)
            list(self._pool.map(lambda lane: self._run_gated(lane, batch, done, started,
                                                             gates), lanes))
        committing = time.monotonic()
        stage.labels(self.name, "lanes").observe(committing - started)
        self._settle_offsets(records, batch)
        self._commit(batch)
        stage.labels(self.name, "commit").observe(time.monotonic() - committing)
        if batch.retry_needed:
            self.stop_event.wait(self.retry_backoff_s)

    @staticmethod
    def _lanes(decoded: Iterable[tuple[Record, Any]]) -> list[Lane]:
        """Records grouped by (topic, partition, key), each group in offset order.

        The key is tenant:customer (ARCHITECTURE §1), the unit whose order matters: a
        payment after the invoice it pays. Different keys have no dependencies between
        them (a customer's documents only reference that customer's documents).

        The lanes are returned with tenants taken in turn (each tenant's first lane,
        then each one's second, ...): the pool starts lanes in this order, and lanes of
        one tenant share its rate budget, so a tenant with many lanes in the batch would
        otherwise fill every thread with lanes asleep on that budget while the other
        tenants' lanes, whose budgets are free, queue behind them."""
        lanes: dict[tuple[str, int, bytes | None], Lane] = {}
        for msg, entry in decoded:
            lanes.setdefault((msg.topic, msg.partition, msg.key), []).append((msg, entry))
        by_tenant: dict[bytes, list[Lane]] = {}
        for lane in lanes.values():
            by_tenant.setdefault(_tenant_of(lane), []).append(lane)
        turns = [tenant_lanes[::-1] for tenant_lanes in by_tenant.values()]
        out: list[Lane] = []
        while turns:
            for tenant_lanes in turns:
                out.append(tenant_lanes.pop())
            turns = [tenant_lanes for tenant_lanes in turns if tenant_lanes]
        return out

    def _tenant_gates(self, lanes: list[Lane]) -> dict[bytes, threading.Semaphore]:
        """One semaphore per tenant that has more lanes in the batch than it may run."""
        cap = self.lanes_per_tenant
        if cap is None:
            return {}
        counts: dict[bytes, int] = {}
        for lane in lanes:
            tenant = _tenant_of(lane)
            counts[tenant] = counts.get(tenant, 0) + 1
        return {tenant: threading.Semaphore(cap) for tenant, n in counts.items() if n > cap}

    def _run_gated(self, lane: Lane, batch: BatchState, done: set[tuple[str, str]],
                   started: float, gates: Mapping[bytes, threading.Semaphore]) -> None:
        # the pool takes tenants in turn: few other lanes queue behind a gate's wait
        gate: AbstractContextManager[Any] = gates.get(_tenant_of(lane)) or nullcontext()
        with gate:
            self._run_lane(lane, batch, done, started)

    def _run_lane(self, lane: Lane, batch: BatchState, done: set[tuple[str, str]],
                  started: float) -> None:
        for msg, entry in lane:
            tp = (msg.topic, msg.partition)
            if batch.finished and time.monotonic() - started > self.batch_time_budget_s:
                # A throttled platform (Xero: 60 calls/min) can take longer than Kafka's
                # max.poll.interval.ms for one poll's records; stop here, commit what is
                # done and re-read the rest, instead of being evicted from the group.
                self._block(tp, msg.offset, batch)
                return
            document = self._document(entry)
            if document is not None:
                with self._lock:
                    again = document in batch.documents
                    batch.documents.add(document)
                if again:
                    # commit the first write's bookkeeping before the second is sent
                    self._block(tp, msg.offset, batch)
                    return
            try:
                if isinstance(entry, RetryableError):
                    raise entry  # e.g. the registry is unreachable: not the record's fault
                self._handle(msg, entry, batch, done)
            except RetryableError as exc:
                log.warning("%s: %s[%d]@%d will be retried: %s", self.name, tp[0], tp[1],
                            msg.offset, exc)
                self.metrics.retries_exhausted.labels(self.name).inc()
                self._block(tp, msg.offset, batch)
                batch.retry_needed = True
                return  # the rest of this lane waits for this record, in order
            with self._lock:
                batch.finished += 1
            self.crash.reached("mid_batch")

    def _document(self, entry: Any) -> tuple[str, str, str] | None:
        """The document an entry writes, when the platform guards edits (else None)."""
        if not self.platform.spec.guards_edits or isinstance(entry, Exception):
            return None
        event = entry.event
        return (str(event.tenant_id), str(event.aggregate_type), str(event.aggregate_id))

    def _block(self, tp: tuple[str, int], offset: int, batch: BatchState) -> None:
        with self._lock:
            batch.blocked[tp] = min(offset, batch.blocked.get(tp, offset))

    def _settle_offsets(self, records: list[Record], batch: BatchState) -> None:
        """Each partition's next offset: past its last record, or at its first record
        not finished (where the consumer is rewound to re-read from)."""
        first: dict[tuple[str, int], int] = {}
        last: dict[tuple[str, int], int] = {}
        for msg in records:
            tp = (msg.topic, msg.partition)
            first[tp] = min(msg.offset, first.get(tp, msg.offset))
            last[tp] = max(msg.offset, last.get(tp, msg.offset))
        for tp in first:
            blocked = batch.blocked.get(tp)
            if blocked is None:
                batch.offsets[tp] = last[tp] + 1
                continue
            self.consumer.seek(TopicPartition(tp[0], tp[1], blocked))
            if blocked > first[tp]:
                batch.offsets[tp] = blocked

    def _prefetch(self, entries: list[Any]) -> dict[str, dict[str, ExternalIdUpdate]]:
        """The external ids every served entry of the batch may need, in one query."""
        wanted: dict[str, list[tuple[str, str]]] = {}
        for entry in entries:
            tenant_id = str(entry.event.tenant_id)
            if tenant_id in self.tenants:
                wanted.setdefault(tenant_id, []).extend(referenced_keys(entry))
        return self.store.external_ids_for_tenants(wanted)

    def _decode(self, msg: Record) -> Any:
        try:
            return self.decode(msg)
        except Exception as exc:  # undecodable bytes, unknown schema id, bad payload
            return exc

    # -- one record ---------------------------------------------------------------
    def _handle(self, msg: Record, entry: Any, batch: BatchState,
                done: set[tuple[str, str]]) -> None:
        if isinstance(entry, Exception):
            if self._raw_identity(msg) in done:
                self.metrics.records.labels(self.name, "replay_skipped").inc()
                return
            self._dead_letter_raw(msg, batch, f"cannot decode ledger entry: {entry}",
                                  type(entry).__name__, stage="decode")
            return
        event = entry.event
        tenant_id, event_id = str(event.tenant_id), str(event.event_id)
        if tenant_id not in self.tenants:
            self.metrics.records.labels(self.name, "other_tenant").inc()
            return
        if tenant_id in self.paused or tenant_id in batch.newly_paused:
            batch.parked.append((tenant_id, event_id, msg.topic, msg.partition,
                                 msg.offset, msg.key, msg.value))
            self.metrics.records.labels(self.name, "parked").inc()
            return
        if (tenant_id, event_id) in done:
            self.metrics.records.labels(self.name, "replay_skipped").inc()
            return
        outcome = self.apply(entry, tenant_id, msg, batch)
        if outcome is not None:
            batch.outcomes.append(outcome)
            done.add((tenant_id, event_id))

    def apply(self, entry: Any, tenant_id: str, msg: Record, batch: BatchState
              ) -> Outcome | None:
        """Write one entry; ``None`` means the tenant was paused and the record parked."""
        event = entry.event
        base = Outcome(
            tenant_id=tenant_id, event_id=str(event.event_id), status="", topic=msg.topic,
            partition=msg.partition, offset=msg.offset, aggregate_type=str(event.aggregate_type),
            aggregate_id=str(event.aggregate_id), aggregate_version=int(event.aggregate_version),
        )
        context = self._context(entry, tenant_id, batch)
        with self._transport_lock:
            transport = self.transport_for(tenant_id)
        runner = FlowRunner(self.platform, transport)
        started = time.monotonic()
        try:
            result = runner.write(entry, context)
            written_at = datetime.now(UTC)
        except ConfigurationError as exc:
            reason = str(exc)
            log.error("%s: pausing tenant %s: %s", self.name, tenant_id, reason)
            with self._lock:
                self.store.set_paused(tenant_id, True, reason)
                batch.newly_paused[tenant_id] = reason
                self.paused[tenant_id] = reason
                self.metrics.paused_tenants.labels(self.name).set(len(self.paused))
            batch.parked.append((tenant_id, str(event.event_id), msg.topic, msg.partition,
                                 msg.offset, msg.key, msg.value))
            return None
        except RetryableError:
            raise
        except (PermanentError, SinkError, Exception) as exc:
            reason = str(exc) if isinstance(exc, SinkError) else f"internal error: {exc!r}"
            self._send_dead_letter(msg, entry, reason, type(exc).__name__, stage="write")
            self.metrics.records.labels(self.name, "dead_lettered").inc()
            return replace(base, status="dead_lettered", error=reason[:2000],
                           request_digest=_last_request_digest(runner),
                           written_at=datetime.now(UTC))
        finally:
            self.metrics.write_latency.labels(self.name).observe(time.monotonic() - started)
        self.crash.reached("after_api_call")
        updates = self._updates(entry, result)
        with self._lock:
            pending = batch.pending_ids.setdefault(tenant_id, {})
            for update in updates:
                pending[map_key(update.kind, update.crm_id)] = update
        status = "already_applied" if result.already_applied else "applied"
        self.metrics.records.labels(self.name, status).inc()
        return replace(base, status=status, external_id=result.external_id, updates=updates,
                       written_at=written_at,
                       request_digest=_last_request_digest(runner),
                       response_digest=digest(_serialised(result.raw)) if result.raw else None)

    def _context(self, entry: Any, tenant_id: str, batch: BatchState) -> SinkContext:
        keys = referenced_keys(entry)
        wanted = [map_key(*key) for key in keys]
        if batch.known is None:
            known = self.store.external_ids(tenant_id, keys)
        else:
            prefetched = batch.known.get(tenant_id, {})
            known = {k: prefetched[k] for k in wanted if k in prefetched}
        with self._lock:  # written earlier in this batch: newer than the stored ids
            pending = batch.pending_ids.get(tenant_id, {})
            known.update({k: pending[k] for k in wanted if k in pending})
        return SinkContext(
            tenant_id=tenant_id,
            event_id=str(entry.event.event_id),
            tenant=self.tenants.get(tenant_id),
            external_ids={k: v.external_id for k, v in known.items()},
            versions={k: v.version for k, v in known.items() if v.version is not None},
        )

    @staticmethod
    def _updates(entry: Any, result: WriteResult) -> tuple[ExternalIdUpdate, ...]:
        kind, crm_id = own_key(entry)
        updates = [ExternalIdUpdate(kind, crm_id, result.external_id, result.version,
                                    result.document_number)]
        for key, external_id in (result.related or {}).items():
            other_kind, _, other_id = key.partition(":")
            updates.append(ExternalIdUpdate(other_kind, other_id, external_id))
        return tuple(updates)

    # -- dead letters ---------------------------------------------------------------
    def _dead_letter_raw(self, msg: Record, batch: BatchState, reason: str, error_class: str,
                         stage: str) -> None:
        self._send_dead_letter(msg, None, reason, error_class, stage)
        tenant, event_id = self._raw_identity(msg)
        self.metrics.records.labels(self.name, "dead_lettered").inc()
        batch.outcomes.append(Outcome(tenant_id=tenant, event_id=event_id,
                                      status="dead_lettered", topic=msg.topic,
                                      partition=msg.partition, offset=msg.offset,
                                      error=reason[:2000]))

    @staticmethod
    def _raw_identity(msg: Record) -> tuple[str, str]:
        """(tenant, event id) of an undecodable record's sync-log row: from its headers,
        else its position."""
        return (msg.header("tenant_id") or "?",
                msg.header("event_id") or f"{msg.topic}/{msg.partition}/{msg.offset}")

    def _send_dead_letter(self, msg: Record, entry: Any, reason: str, error_class: str,
                          stage: str) -> None:
        event = getattr(entry, "event", None)
        letter = DeadLetter(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            error_class=error_class,
            reason=reason[:4000],
            stage=f"sink.{self.name}.{stage}",
            failed_at=datetime.now(UTC),
            event_id=str(event.event_id) if event is not None else None,
            tenant_id=str(event.tenant_id) if event is not None else None,
        )
        log.warning("%s: dead-lettered %s: %s", self.name, letter.event_id or letter.offset,
                    reason)
        self.dead_letter(letter)

    # -- commit --------------------------------------------------------------------
    def _commit(self, batch: BatchState) -> None:
        if not (batch.offsets or batch.outcomes or batch.parked):
            return
        # Dead letters must be durable before the offset moves past their records.
        self.flush_dead_letters()
        # Lanes park concurrently; a resumed tenant replays its parked records in
        # insertion order, which must be offset order.
        batch.parked.sort(key=lambda row: (row[2], row[3], row[4]))
        batch.outcomes.sort(key=lambda o: (o.topic, o.partition, o.offset))
        self.store.commit_batch(batch.outcomes, batch.offsets, self.claim, batch.parked)
        self.processed += len(batch.outcomes)
        self.crash.reached("after_db_commit")
        if batch.offsets:
            self.consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in batch.offsets.items()],
                asynchronous=True,
            )

    # -- resume ------------------------------------------------------------------------
    def resume_tenant(self, tenant_id: str) -> int:
        """Un-pause a tenant and replay its parked records in order; returns how many."""
        self.store.set_paused(tenant_id, False, None)
        self.paused.pop(tenant_id, None)
        replayed = 0
        # Until none is left: a running sink keeps parking the tenant's new records
        # while parked ones exist (``SinkStore.blocked_tenants``), after the ones read.
        while records := self.store.parked(tenant_id):
            for record in records:
                batch = BatchState()
                msg = Record(record.topic, record.partition, record.offset, record.key,
                             record.value)
                done = self.store.terminal_events([(tenant_id, record.event_id or "")])
                self._handle(msg, self._decode(msg), batch, done)
                if batch.newly_paused:
                    return replayed  # still misconfigured: the rest stays parked
                self.store.commit_batch(batch.outcomes, {}, self.claim)
                self.store.release_parked([record.seq])
                replayed += 1
        return replayed


def _serialised(value: Any) -> bytes:
    """A deterministic byte form of a request or response body, for its digest: JSON
    by orjson (a tenth of ``repr``'s CPU on a document body), ``repr`` for what orjson
    cannot write."""
    try:
        return orjson.dumps(value, default=repr)
    except TypeError:  # orjson.JSONEncodeError: non-string keys, huge integers
        return repr(value).encode()


def _last_request_digest(runner: FlowRunner) -> str | None:
    if not runner.sent:
        return None
    last = runner.sent[-1]
    return digest(b" ".join((last.method.encode(), last.path.encode(), _serialised(last.json),
                             last.content or b"")))


def dlq_writer(producer: Producer, topic: str, serialize: Callable[[DeadLetter, str], bytes | None]
               ) -> tuple[DeadLetterWriter, Callable[[], None]]:
    """A dead-letter writer and its flush, over an idempotent producer."""

    def write(letter: DeadLetter) -> None:
        producer.produce(topic, value=serialize(letter, topic),
                         key=(letter.tenant_id or "").encode() or None)

    def flush() -> None:
        remaining = producer.flush(30)
        if remaining:
            raise RuntimeError(f"{remaining} dead letters to {topic} not acknowledged")

    return write, flush
