"""The faust layer: topics, tables, agents and the transactional output path.

Kept thin on purpose — every decision is in :mod:`.engine`; this module fetches table
rows, calls it, writes rows back and produces what it returns.

Layout (one worker or many; all keyed ``tenant:customer`` except tax rates):

* one agent over ``crm.financial-events`` + ``crm.customers`` + ``<app>-ticks``
  (co-partitioned, 12 partitions): one ordered loop per partition, so a customer's
  arrival, its parked events and its documents never race;
* tables ``ledgers``, ``customers``, ``pending`` (RocksDB, changelogged, partitioned
  like the sources) and ``tax-rates`` (a GlobalTable: ``crm.tax-rates`` has 1
  partition, every worker needs every rate), filled by a second agent.

**Exactly once, and where faust falls short** (details in :mod:`.eos`): faust
routes table changelogs through the per-input-partition transactional producer, but
a plain ``topic.send()`` to a topic the app does not consume goes out on the
*non-transactional* producer (faust-streaming #177; ``TransactionManager.send`` finds
no partition metadata for the output topic and falls back to ``transactional_id=None``).
So this module sends ``ledger.*`` records itself, through the transactional producer
of the input partition being processed: output, changelog and offsets then commit or
abort together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import faust
from confluent_kafka.schema_registry import SchemaRegistryClient
from faust.streams import current_event
from faust.types import EventT, Message
from prometheus_client import Counter

from schemas import serde
from schemas.models import (
    AggregateType,
    CustomerBalance,
    DeadLetter,
    FinancialEvent,
    LedgerEntry,
)
from schemas.topics import EVENT_PARTITIONS, balance_key, parse_message_key, tax_rate_key
from stream_processors.balances import CustomerLedger, Verdict
from stream_processors.codec import ConfluentAvroCodec
from stream_processors.engine import (
    CustomerRow,
    Park,
    TaxBook,
    Unprocessable,
    apply_customer_event,
    customer_entry,
    process_financial_event,
)
from stream_processors.eos import drain_buffer, install_commit_flush, set_commit_guard
from stream_processors.metrics import ProcessorMetrics
from stream_processors.pending import (
    ParkedEvent,
    dump_index,
    dump_queue,
    index_key,
    load_index,
    load_queue,
)
from stream_processors.rowcache import ParsedRows
from stream_processors.settings import ProcessorSettings
from stream_processors.staging import StagedTable, use_event
from stream_processors.watchdog import StallWatchdog

log = logging.getLogger(__name__)
STAGE = "processor"
TABLES = ("ledgers", "customers", "pending")
GLOBAL_TABLE = "tax-rates"


def _encode_customer_row(row: CustomerRow | None) -> bytes:
    assert row is not None, "customer rows are versioned tombstones, never removed"
    return row.to_bytes()


def _as_stored(raw: bytes | None) -> bytes | None:
    """The pending table's rows are used as stored (JSON parsed where needed)."""
    return raw


def _encode_stored(raw: bytes | None) -> bytes:
    assert raw is not None, "pending rows are removed with delete(), never set to None"
    return raw


def ticks_topic(app_id: str) -> str:
    """The internal topic that wakes each partition up to retry parked events."""
    return f"{app_id}-ticks"


class LedgerProcessor:
    """Builds and owns the faust app of one processor instance."""

    def __init__(
        self,
        settings: ProcessorSettings,
        *,
        registry: SchemaRegistryClient | None = None,
        metrics: ProcessorMetrics | None = None,
        partitions: int = EVENT_PARTITIONS,
    ) -> None:
        self.settings = settings
        self.names = settings.topics
        self.metrics = metrics or ProcessorMetrics()
        self.eos = settings.processing_guarantee == "exactly_once"
        self._processing = asyncio.Lock()
        if self.eos:
            install_commit_flush()
            set_commit_guard(self._processing)
        self.registry = registry or serde.registry_client(settings.schema_registry_url)
        n = self.names
        reg, auto = self.registry, settings.auto_register_schemas
        self.decoders: dict[str, ConfluentAvroCodec[FinancialEvent]] = {
            t: ConfluentAvroCodec(t, FinancialEvent, reg, auto_register=auto)
            for t in (n.crm_financial_events, n.crm_customers, n.crm_tax_rates)
        }
        self.entries_codec = ConfluentAvroCodec(n.ledger_entries, LedgerEntry, reg,
                                                auto_register=auto)
        self.balances_codec = ConfluentAvroCodec(n.ledger_balances, CustomerBalance, reg,
                                                 auto_register=auto)
        self.dlq_codec = ConfluentAvroCodec(n.ledger_dlq, DeadLetter, reg, auto_register=auto)
        app_id = settings.resolved_app_id
        self.ticks = ticks_topic(app_id)
        self.partitions = partitions
        self._pending_keys: dict[int, int] = {}
        self._tids: dict[tuple[str, int], str] = {}
        self._children: dict[tuple[int, str], Any] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._balances_out: dict[bytes, tuple[Message, CustomerBalance]] = {}
        self._tax_rows = ParsedRows(TaxBook.from_bytes)
        # events decoded when they were parked, by (topic, partition, offset), so a
        # drain does not decode and validate them a second time
        self._parked_events: ParsedRows[FinancialEvent] = ParsedRows(
            self._decode_financial, max_entries=2_000)
        self.app = faust.App(
            app_id,
            broker=";".join(f"kafka://{h}" for h in settings.kafka_bootstrap_servers.split(",")),
            processing_guarantee=settings.processing_guarantee,
            store="rocksdb://",
            datadir=str(settings.data_dir / app_id),
            web_enabled=False,
            broker_commit_interval=settings.commit_interval_seconds,
            producer_linger=settings.producer_linger_ms / 1000.0,
            broker_max_poll_records=settings.max_poll_records,
            # faust pauses a partition whose stream buffer is "under pressure" and
            # relies on a pressure-drop callback to resume it; a buffer far above the
            # poll size keeps that path cold. (A partition whose commits stalled for
            # good was first blamed on it; the cause found later is the queue clearing
            # at the end of a recovery, eos.py point 6, and the watchdog catches any
            # other stall.)
            stream_buffer_maxsize=max(100_000, settings.max_poll_records * 50),
            topic_disable_leader=True,
            topic_allow_declare=True,
            topic_partitions=partitions,
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
            key_serializer="raw",
            value_serializer="raw",
            producer_acks=-1,
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=max(1.0, settings.session_timeout_seconds / 10),
        )
        self._build()

    def _decode_financial(self, raw: bytes | None) -> FinancialEvent:
        return self.decoders[self.names.crm_financial_events].decode(raw)

    # ------------------------------------------------------------------ wiring

    def _table(self, name: str) -> Any:
        return self.app.Table(name, partitions=self.partitions, key_type=bytes,
                              value_type=bytes)

    def _build(self) -> None:
        app, n = self.app, self.names
        self.ledgers = self._table("ledgers")
        self.customers = self._table("customers")
        self.pending = self._table("pending")
        # reads and writes of the three tables go through these (see .staging)
        self.ledger_store = StagedTable(self.ledgers, CustomerLedger.from_bytes,
                                        CustomerLedger.to_bytes)
        self.customer_store = StagedTable(self.customers, CustomerRow.from_bytes,
                                          _encode_customer_row)
        self.pending_store = StagedTable(self.pending, _as_stored, _encode_stored,
                                         cache=False)
        self.tax_rates = app.GlobalTable(GLOBAL_TABLE, partitions=1, key_type=bytes,
                                         value_type=bytes)
        source = app.topic(n.crm_financial_events, n.crm_customers, self.ticks,
                           key_serializer="raw", value_serializer="raw")
        tax_source = app.topic(n.crm_tax_rates, key_serializer="raw", value_serializer="raw")

        async def ledger_agent(stream: Any) -> None:
            batches = stream.take_events(self.settings.batch_max_events,
                                         within=self.settings.batch_wait_seconds)
            async for events in batches:
                async with self._processing:
                    await self.on_batch(events)
                    await self._settle()

        async def tax_rate_agent(stream: Any) -> None:
            async for event in stream.events():
                async with self._processing:
                    await self.on_tax_rate(event.message)
                    await self._settle()

        async def send_ticks() -> None:
            await self.send_ticks()

        self._native = {
            t: app.topic(t, key_serializer="raw", value_serializer="raw")
            for t in (n.ledger_entries, n.ledger_balances, n.ledger_dlq)
        }
        app.agent(source, name="ledger")(ledger_agent)
        app.agent(tax_source, name="tax-rates")(tax_rate_agent)
        app.timer(self.settings.tick_interval_seconds)(send_ticks)

        self.watchdog = StallWatchdog(
            app, (n.crm_financial_events, n.crm_customers, self.ticks, n.crm_tax_rates))

        async def watch_inputs() -> None:
            await self.watchdog.check()

        app.timer(5.0)(watch_inputs)

    # ------------------------------------------------------------------ output

    async def _settle(self) -> None:
        """Hand this batch's buffered changelog records to the producer: under
        exactly_once before a commit may run (see :mod:`.eos`, point 3); under
        at_least_once too, in one go rather than record by record from faust's
        background task."""
        await drain_buffer(self.app.producer.buffer)  # type: ignore[arg-type]

    def _transactional_id(self, msg: Message) -> str | None:
        """The transactional producer faust keeps for this input partition (EOS v1:
        ``<app id>-<topic group>-<partition>``), so our records share its transaction.
        Cached: the topic groups are fixed once the app is built."""
        if not self.eos:
            return None
        tp = (msg.topic, msg.partition)
        found = self._tids.get(tp)
        if found is None:
            group = self.app.assignor.group_for_topic(msg.topic)
            found = self._tids[tp] = f"{self.app.conf.id}-{group}-{msg.partition}"
        return found

    def _counter(self, metric: Counter, label: str) -> Any:
        """A labelled child of ``metric``, looked up once (``labels()`` takes a lock
        and builds a key on every call; this runs several times per event)."""
        found = self._children.get((id(metric), label))
        if found is None:
            found = self._children[(id(metric), label)] = metric.labels(label)
        return found

    async def emit(self, msg: Message, topic: str, key: bytes, value: bytes) -> None:
        if self.settings.faust_native_output:
            await self._native[topic].send(key=key, value=value)
            self._counter(self.metrics.events_out, topic).inc()
            return
        fut = await self.app.producer.send(
            topic, key, value, None, None, None, transactional_id=self._transactional_id(msg)
        )
        self._counter(self.metrics.events_out, topic).inc()
        if isinstance(fut, asyncio.Future):
            fut.add_done_callback(self._check_delivery)

    def _check_delivery(self, fut: asyncio.Future[Any]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:
            log.error("delivery failed, crashing so nothing is committed past it: %r", exc)
            task = asyncio.ensure_future(self.app.crash(exc))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def emit_entry(self, msg: Message, key: bytes, entry: LedgerEntry) -> None:
        for d in entry.discrepancies:
            self.metrics.discrepancy(d.field)
        await self.emit(msg, self.names.ledger_entries, key, self.entries_codec.encode(entry))

    async def emit_balances(self, msg: Message, balances: tuple[CustomerBalance, ...]) -> None:
        """Hold each balance until the batch ends: ``ledger.balances`` is compacted to
        the newest balance per key, so only a key's last balance of the batch is sent
        (every ``ledger.entries`` record still carries the balance after its event)."""
        for b in balances:
            key = balance_key(b.tenant_id, b.customer_id, b.currency).encode()
            self._balances_out[key] = (msg, b)

    async def flush_batch(self) -> None:
        """Send the batch's held balances and write its staged table rows (still
        inside the batch's transaction: the caller then drains the producer buffer)."""
        held, self._balances_out = self._balances_out, {}
        for key, (msg, balance) in held.items():
            await self.emit(msg, self.names.ledger_balances, key,
                            self.balances_codec.encode(balance))
        for store in (self.ledger_store, self.customer_store, self.pending_store):
            self.metrics.table_writes.inc(store.flush())

    async def dead_letter(
        self,
        msg: Message,
        error_class: str,
        reason: str,
        *,
        origin: ParkedEvent | None = None,
        event: FinancialEvent | None = None,
    ) -> None:
        """Send the original bytes and coordinates to ``ledger.dlq``; the stream goes on."""
        letter = DeadLetter(
            topic=origin.topic if origin else msg.topic,
            partition=origin.partition if origin else msg.partition,
            offset=origin.offset if origin else msg.offset,
            key=origin.key if origin else msg.key,
            value=origin.value if origin else msg.value,
            error_class=error_class, reason=reason[:2000], stage=STAGE,
            failed_at=datetime.now(UTC),
            event_id=event.event_id if event else (origin.event_id if origin else None),
            tenant_id=event.tenant_id if event else None,
        )
        self.metrics.dead_letters.labels(error_class).inc()
        log.warning("dead letter %s at %s[%s]@%s: %s", error_class, letter.topic,
                    letter.partition, letter.offset, reason)
        await self.emit(msg, self.names.ledger_dlq, letter.key or b"",
                        self.dlq_codec.encode(letter))

    # ------------------------------------------------------------------ ticks

    async def send_ticks(self) -> None:
        """Outside any transaction on purpose: a tick in an open transaction would hold
        the partition's last-stable-offset back until it commits."""
        now = str(time.time()).encode()
        for partition in range(self.partitions):
            await self.app.producer.send(self.ticks, b"tick", now, partition, None, None)

    # ------------------------------------------------------------------ input

    def _writer(self) -> EventT:
        """The event being processed (set by :func:`.staging.use_event`): table rows
        are routed by its partition."""
        event = current_event()
        assert event is not None, "table write outside a batch"
        return event

    async def on_batch(self, events: list[EventT]) -> None:
        """Process a batch in arrival order (per-partition order is kept), then send
        and write what the batch left behind (:meth:`flush_batch`).

        Why batches: faust's per-event path (stream iteration, acks, one awaited send
        per record) cost more CPU than the business step; iterating faust's
        ``take_events`` and holding compacted outputs and table rows until the batch
        ends cut it (``bench/RESULTS.md``). The events are acked after the batch, so
        a commit never covers an event whose outputs are not yet in the transaction."""
        for event in events:
            use_event(event)
            await self.on_message(event)
        await self.flush_batch()
        self.metrics.batch_size.observe(len(events))

    async def on_message(self, event: EventT) -> None:
        msg = event.message
        self._counter(self.metrics.events_in, msg.topic).inc()
        if msg.topic == self.ticks:
            await self.on_tick(msg)
            return
        if msg.value is None:
            return  # a compaction tombstone on crm.customers: nothing to apply
        try:
            ev = self.decoders[msg.topic].decode(msg.value)
            tenant, customer_id = parse_message_key(msg.key or b"")
            if ev.tenant_id != tenant:
                raise Unprocessable(f"key tenant {tenant!r} != event tenant {ev.tenant_id!r}")
        except Exception as exc:
            await self.dead_letter(msg, type(exc).__name__, str(exc))
            return
        key = msg.key or b""
        if ev.aggregate_type is AggregateType.CUSTOMER:
            await self.on_customer(msg, ev, key, customer_id)
            return
        queue = load_queue(self.pending_store.get(key))
        if queue:
            if all(p.event_id != ev.event_id for p in queue):
                queue.append(self._parked(msg, ev, "behind a parked event", "Parked"))
                self._save_queue(msg, key, queue)
            if self._may_drain(key, queue[0]):
                await self.drain(msg, key, time.time())
            return
        outcome = await self.on_financial(msg, ev, key, customer_id)
        if isinstance(outcome, Park):
            self.metrics.parked.labels(outcome.error_class).inc()
            parked = self._parked(msg, ev, outcome.reason, outcome.error_class)
            self._save_queue(msg, key, [parked])

    async def on_financial(
        self, msg: Message, ev: FinancialEvent, key: bytes, customer_id: str
    ) -> Park | None:
        ledger = self.ledger_store.get(key)
        tenant = ev.tenant_id

        def tax_book(code: str) -> TaxBook | None:
            tkey = tax_rate_key(tenant, code).encode()
            raw = self.tax_rates.get(tkey)
            return self._tax_rows.get(tkey, raw) if raw else None

        try:
            outcome = process_financial_event(
                ev, customer_id=customer_id,
                customer=self.customer_store.get(key),
                ledger=ledger, tax_book=tax_book,
                policy=self.settings.tax_policy(tenant), processed_at=datetime.now(UTC),
            )
        except Unprocessable as exc:
            await self.dead_letter(msg, Unprocessable.error_class, str(exc), event=ev)
            return None
        if isinstance(outcome, Park):
            return outcome
        if outcome.verdict is not Verdict.APPLIED:
            self.metrics.ignored.labels(outcome.verdict.value).inc()
            if outcome.verdict is Verdict.STALE:
                log.info("stale %s v%s of %s ignored", ev.event_type, ev.aggregate_version,
                         ev.aggregate_id)
        if outcome.ledger is not ledger:
            self.ledger_store.set(key, outcome.ledger, self._writer())
        if outcome.entry is not None:
            await self.emit_entry(msg, key, outcome.entry)
        await self.emit_balances(msg, outcome.balances)
        return None

    async def on_customer(
        self, msg: Message, ev: FinancialEvent, key: bytes, customer_id: str
    ) -> None:
        if ev.aggregate_id != customer_id:
            await self.dead_letter(msg, Unprocessable.error_class,
                                   f"customer {ev.aggregate_id!r} under key {key!r}", event=ev)
            return
        row = self.customer_store.get(key)
        try:
            new_row, verdict = apply_customer_event(row, ev)
        except Unprocessable as exc:
            await self.dead_letter(msg, Unprocessable.error_class, str(exc), event=ev)
            return
        if verdict is not Verdict.APPLIED:
            self.metrics.ignored.labels(verdict.value).inc()
            return
        assert new_row is not None
        self.customer_store.set(key, new_row, self._writer())
        ledger = self.ledger_store.get(key)
        entry = customer_entry(ev, customer_id=customer_id, row=new_row, ledger=ledger,
                               processed_at=datetime.now(UTC))
        await self.emit_entry(msg, key, entry)
        if self.pending_store.get(key):
            await self.drain(msg, key, time.time())

    async def on_tax_rate(self, msg: Message) -> None:
        self._counter(self.metrics.events_in, msg.topic).inc()
        if msg.value is None:
            return
        try:
            ev = self.decoders[msg.topic].decode(msg.value)
            if ev.aggregate_type is not AggregateType.TAX_RATE:
                raise Unprocessable(f"{ev.aggregate_type} event on the tax-rates topic")
            key = tax_rate_key(ev.tenant_id, ev.aggregate_id).encode()
        except Exception as exc:
            await self.dead_letter(msg, type(exc).__name__, str(exc))
            return
        book, verdict = TaxBook.from_bytes(self.tax_rates.get(key)).apply(ev)
        if verdict is Verdict.APPLIED:
            self.tax_rates[key] = book.to_bytes()
        else:
            self.metrics.ignored.labels(verdict.value).inc()

    # ------------------------------------------------------------------ parking

    def _parked(self, msg: Message, ev: FinancialEvent, reason: str, cls: str) -> ParkedEvent:
        self._parked_events.put((msg.topic, msg.partition, msg.offset), msg.value, ev)
        return ParkedEvent(msg.topic, msg.partition, msg.offset, msg.key or b"",
                           msg.value or b"", ev.event_id, time.time(), reason, cls)

    def _may_drain(self, key: bytes, head: ParkedEvent) -> bool:
        """Whether retrying a key's queue can succeed now. A queue waiting for its
        customer cannot move until that customer arrives (:meth:`on_customer` drains
        it then; ticks still drain it for the grace period): retrying it for every
        event of the key decoded and re-parked the head each time — O(n) work per
        event while a customer was late, which dominated catch-up after a restart."""
        if head.error_class != "UnknownCustomer":
            return True
        row = self.customer_store.get(key)
        return row is not None and row.customer is not None

    def _decode_parked(self, parked: ParkedEvent) -> FinancialEvent:
        """The event a parked record holds: the one decoded when it was parked if it is
        still cached for exactly these bytes, else decoded (and validated) again."""
        decoder = self.decoders[parked.topic]
        return self._parked_events.get(
            (parked.topic, parked.partition, parked.offset), parked.value,
            parse=decoder.decode)

    def _save_queue(self, msg: Message, key: bytes, queue: list[ParkedEvent]) -> None:
        """Write a key's queue and keep the partition index in step."""
        idx_key = index_key(msg.partition)
        index = load_index(self.pending_store.get(idx_key))
        name = key.decode()
        if queue:
            self.pending_store.set(key, dump_queue(queue), self._writer())
            if name not in index:
                index.add(name)
                self.pending_store.set(idx_key, dump_index(index), self._writer())
        else:
            self.pending_store.delete(key, self._writer())
            if name in index:
                index.discard(name)
                self.pending_store.set(idx_key, dump_index(index), self._writer())

    async def drain(self, msg: Message, key: bytes, now: float) -> None:
        """Retry a key's parked events in order; dead-letter the expired ones."""
        queue = load_queue(self.pending_store.get(key))
        grace = self.settings.grace_seconds
        if queue and not queue[0].expired(now, grace) and not self._may_drain(key, queue[0]):
            return  # its head would park again (a tick retried every such queue)
        remaining: list[ParkedEvent] = []
        for parked in queue:
            if remaining:
                remaining.append(parked)
                continue
            ev = self._decode_parked(parked)
            _, customer_id = parse_message_key(parked.key)
            outcome = await self.on_financial(msg, ev, key, customer_id)
            if not isinstance(outcome, Park) or parked.expired(now, grace):
                self._parked_events.discard((parked.topic, parked.partition, parked.offset))
            if isinstance(outcome, Park):
                if parked.expired(now, grace):
                    await self.dead_letter(
                        msg, outcome.error_class,
                        f"{outcome.reason} (parked {now - parked.parked_at:.0f}s)",
                        origin=parked, event=ev)
                else:
                    remaining.append(ParkedEvent(
                        parked.topic, parked.partition, parked.offset, parked.key,
                        parked.value, parked.event_id, parked.parked_at, outcome.reason,
                        outcome.error_class))
        if remaining != queue:
            self._save_queue(msg, key, remaining)

    async def on_tick(self, msg: Message) -> None:
        try:
            now = float(msg.value or b"0")
        except ValueError:
            return
        index = load_index(self.pending_store.get(index_key(msg.partition)))
        self._pending_keys[msg.partition] = len(index)
        self.metrics.pending.set(sum(self._pending_keys.values()))
        for name in sorted(index):
            await self.drain(msg, name.encode(), now)
