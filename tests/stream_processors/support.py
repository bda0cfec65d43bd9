"""Helpers for the processor's integration tests and the benchmark: topics, producing
events, reading ``ledger.*`` (read_committed) and running a worker subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import serde
from schemas.models import (
    AggregateType,
    CustomerBalance,
    DeadLetter,
    FinancialEvent,
    LedgerEntry,
)
from schemas.topics import Topics, message_key, tax_rate_key
from stream_processors.codec import ConfluentAvroCodec

ROOT = Path(__file__).resolve().parents[2]


def create_topics(bootstrap: str, names: Topics) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    specs = names.specs()
    futures = admin.create_topics([
        NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
        for s in specs
    ])
    for f in futures.values():
        f.result(timeout=30)


def delete_topics(bootstrap: str, names: Topics, app_id: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    doomed = [s.name for s in names.specs()] + [t for t in existing if t.startswith(app_id)]
    doomed = [t for t in doomed if t in existing]
    if doomed:
        for f in admin.delete_topics(doomed).values():
            with suppress(Exception):
                f.result(timeout=30)


@dataclass
class EventWriter:
    """Produces FinancialEvents to the right crm.* topic with the right key."""

    bootstrap: str
    registry_url: str
    names: Topics
    producer: Producer = field(init=False)
    encoders: dict[str, ConfluentAvroCodec[FinancialEvent]] = field(
        init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.producer = Producer({"bootstrap.servers": self.bootstrap,
                                  "enable.idempotence": True, "linger.ms": 5})
        self.registry = serde.registry_client(self.registry_url)

    def topic_and_key(self, ev: FinancialEvent) -> tuple[str, str]:
        if ev.aggregate_type is AggregateType.TAX_RATE:
            return self.names.crm_tax_rates, tax_rate_key(ev.tenant_id, ev.aggregate_id)
        if ev.aggregate_type is AggregateType.CUSTOMER:
            return self.names.crm_customers, message_key(ev.tenant_id, ev.aggregate_id)
        customer = ev.customer_id  # None for a DELETE: the caller passes the key
        return self.names.crm_financial_events, (
            message_key(ev.tenant_id, customer) if customer else "")

    def encode(self, topic: str, ev: FinancialEvent) -> bytes:
        enc = self.encoders.get(topic)
        if enc is None:
            enc = self.encoders[topic] = ConfluentAvroCodec(topic, FinancialEvent,
                                                            self.registry)
        return enc.encode(ev)

    def send(self, ev: FinancialEvent, *, key: str | None = None) -> None:
        topic, default_key = self.topic_and_key(ev)
        key = key or default_key
        assert key, f"{ev.event_type} needs an explicit key"
        self.send_raw(topic, key.encode(), self.encode(topic, ev))

    def send_raw(self, topic: str, key: bytes, value: bytes | None) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(60) == 0


def read_topic(bootstrap: str, registry_url: str, topic: str, record: Any,
               *, timeout: float = 10.0) -> list[tuple[bytes | None, Any]]:
    """Every committed record of ``topic`` (read_committed), decoded, in partition order."""
    decoder = ConfluentAvroCodec(topic, record, serde.registry_client(registry_url))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        out: list[tuple[bytes | None, Any]] = []
        for p in sorted(meta.partitions):
            tp = TopicPartition(topic, p)
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    if consumer.position([tp])[0].offset >= high:
                        break
                    continue
                if msg.error():
                    continue
                value = msg.value()
                out.append((msg.key(), decoder.decode(value) if value is not None else None))
                if msg.offset() >= high - 1:
                    break
        return out
    finally:
        consumer.close()


def latest_balances(bootstrap: str, registry_url: str, names: Topics
                    ) -> dict[str, CustomerBalance]:
    """``ledger.balances`` as a table: the last value per key."""
    table: dict[str, CustomerBalance] = {}
    for key, value in read_topic(bootstrap, registry_url, names.ledger_balances,
                                 CustomerBalance):
        assert key is not None
        table[key.decode()] = value
    return table


def entries(bootstrap: str, registry_url: str, names: Topics) -> list[LedgerEntry]:
    return [v for _, v in read_topic(bootstrap, registry_url, names.ledger_entries,
                                     LedgerEntry)]


def dead_letters(bootstrap: str, registry_url: str, names: Topics) -> list[DeadLetter]:
    return [v for _, v in read_topic(bootstrap, registry_url, names.ledger_dlq, DeadLetter)]


def committed_lag(bootstrap: str, group: str, topics: Iterable[str]) -> int:
    """Records of ``topics`` not yet committed by consumer group ``group``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        lag = 0
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            tps = [TopicPartition(topic, p) for p in meta.partitions]
            for tp in consumer.committed(tps, timeout=10):
                _, high = consumer.get_watermark_offsets(tp, timeout=10)
                lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


@dataclass
class Worker:
    """A ``python -m stream_processors`` subprocess."""

    env: dict[str, str]
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream_processors", *self.args],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(10)
        return self.proc.returncode

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until this incarnation has restored its tables (faust's signal
        handlers are in place from then on, so SIGTERM means a clean stop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.log_path.read_text(errors="replace").rpartition("===== start")[2]
            if "Restore complete!" in current:
                return
            if not self.alive:
                raise AssertionError("worker died")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready within {timeout}s")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@contextmanager
def worker(tmp: Path, bootstrap: str, registry_url: str, suffix: str, *,
           guarantee: str = "exactly_once", grace: float = 300.0, tick: float = 1.0,
           extra: list[str] | None = None, name: str = "worker") -> Iterator[Worker]:
    """A worker subprocess; ``name`` keeps the state and log of several apart."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "SCHEMA_REGISTRY_URL": registry_url, "PYTHONUNBUFFERED": "1"}
    data = tmp / ("data" if name == "worker" else f"data-{name}")
    args = ["--topic-suffix", suffix, "--data-dir", str(data),
            "--processing-guarantee", guarantee, "--grace-seconds", str(grace),
            "--tick-interval-seconds", str(tick), "--commit-interval-seconds", "0.5",
            "--session-timeout-seconds", "6",
            *(extra or [])]
    w = Worker(env, args, tmp / f"{name}.log")
    w.start()
    try:
        yield w
    finally:
        if w.alive:
            w.stop()


def build_workload(seed: int, customers: int, documents: int) -> list[FinancialEvent]:
    """A realistic, reproducible mix for one tenant: invoices (some edited, voided,
    deleted), partial/full/over-payments, refunds, credit notes of both dispositions,
    plus redelivered duplicates and an older version arriving after a newer one."""
    import random
    from datetime import timedelta
    from decimal import Decimal

    from schemas.examples import (
        T0,
        event_id_for,
        sample_credit_note,
        sample_customer_event,
        sample_invoice,
        sample_payment,
    )
    from schemas.models import (
        Allocation,
        CreditDisposition,
        EventSource,
        InvoiceStatus,
        Op,
        PaymentKind,
    )

    rng = random.Random(seed)
    clock = [T0]

    def ev(kind: AggregateType, doc_id: str, version: int, op: Op, payload: Any,
           verb: str) -> FinancialEvent:
        clock[0] += timedelta(minutes=rng.randint(1, 600))
        return FinancialEvent(
            event_id=event_id_for(seed, kind.value, doc_id, version, op),
            event_type=f"{kind.value.lower()}.{verb}", op=op, tenant_id="t1",
            aggregate_type=kind, aggregate_id=doc_id, aggregate_version=version,
            occurred_at=clock[0], source=EventSource.OUTBOX, payload=payload)

    def money(lo: int, hi: int) -> Decimal:
        return Decimal(rng.randint(lo * 100, hi * 100)) / 100

    out: list[FinancialEvent] = [sample_customer_event("t1", f"c{i}") for i in range(customers)]
    invoices: dict[str, tuple[str, int, Any]] = {}  # id -> (customer, version, payload)
    for n in range(documents):
        customer = f"c{rng.randrange(customers)}"
        mine = [i for i, (c, _, p) in invoices.items() if c == customer and p is not None]
        roll = rng.random()
        if roll < 0.35 or not mine:
            inv_id = f"inv{n}"
            inv = sample_invoice(inv_id, customer).model_copy(update={
                "total": money(20, 900), "issue_date": clock[0].date(),
                "due_date": clock[0].date() + timedelta(days=rng.choice([0, 15, 30]))})
            invoices[inv_id] = (customer, 1, inv)
            out.append(ev(AggregateType.INVOICE, inv_id, 1, Op.CREATE, inv, "created"))
        elif roll < 0.65:
            inv_id = rng.choice(mine)
            total = invoices[inv_id][2].total
            amount = rng.choice([total, money(1, 300), total + money(1, 50)])
            pay = sample_payment(f"pay{n}", customer, invoice_id=inv_id, amount=amount)
            if rng.random() < 0.3:  # part of it stays unallocated
                pay = pay.model_copy(update={"allocations": (
                    Allocation(invoice_id=inv_id, amount=amount / 2),)})
            out.append(ev(AggregateType.PAYMENT, f"pay{n}", 1, Op.CREATE, pay, "received"))
        elif roll < 0.72:
            inv_id = rng.choice(mine)
            refund = sample_payment(f"ref{n}", customer, invoice_id=inv_id,
                                    amount=money(1, 80), kind=PaymentKind.REFUND)
            out.append(ev(AggregateType.PAYMENT, f"ref{n}", 1, Op.CREATE, refund, "refunded"))
        elif roll < 0.80:
            disposition = rng.choice(list(CreditDisposition))
            cn = sample_credit_note(f"cn{n}", customer, invoice_id=rng.choice(mine),
                                    disposition=disposition)
            out.append(ev(AggregateType.CREDIT_NOTE, f"cn{n}", 1, Op.CREATE, cn, "issued"))
        elif roll < 0.90:  # edit (sometimes void), sometimes delivered out of order
            inv_id = rng.choice(mine)
            c, version, inv = invoices[inv_id]
            status = InvoiceStatus.VOID if rng.random() < 0.3 else inv.status
            new = inv.model_copy(update={"total": money(20, 900), "status": status})
            invoices[inv_id] = (c, version + 1, new)
            update = ev(AggregateType.INVOICE, inv_id, version + 1, Op.UPDATE, new, "updated")
            if rng.random() < 0.3:
                older = ev(AggregateType.INVOICE, inv_id, version, Op.UPDATE, inv, "updated")
                out.extend([update, older.model_copy(update={
                    "event_id": event_id_for(seed, "late", inv_id, version)})])
            else:
                out.append(update)
        elif roll < 0.93:
            inv_id = rng.choice(mine)
            c, version, _ = invoices[inv_id]
            invoices[inv_id] = (c, version + 1, None)
            out.append(ev(AggregateType.INVOICE, inv_id, version + 1, Op.DELETE, None,
                          "deleted"))
        else:  # a redelivery of something already sent
            out.append(rng.choice(out[customers:]))
    return out


def key_of(ev: FinancialEvent, customer_of_delete: dict[str, str]) -> str:
    customer = ev.customer_id or customer_of_delete[ev.aggregate_id]
    return message_key(ev.tenant_id, customer)


def send_workload(writer: EventWriter, events: Iterable[FinancialEvent],
                  customer_of: dict[str, str]) -> None:
    for ev in events:
        if ev.payload is not None and ev.customer_id:
            customer_of[ev.aggregate_id] = ev.customer_id
        writer.send(ev, key=None if ev.payload is not None else key_of(ev, customer_of))


def wait_until_consumed(bootstrap: str, group: str, topics: list[str], timeout: float,
                        alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if committed_lag(bootstrap, group, topics) == 0:
            return
        if alive is not None and not alive():
            raise AssertionError("worker died")
        time.sleep(1)
    raise AssertionError(f"{group} did not consume {topics} within {timeout}s")


def wait_for_progress(bootstrap: str, group: str, topics: list[str], timeout: float,
                      alive: Any = None) -> None:
    """Wait until the group commits past where it is now (or has nothing left)."""
    start = committed_lag(bootstrap, group, topics)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lag = committed_lag(bootstrap, group, topics)
        if lag < start or lag == 0:
            return
        if alive is not None and not alive():
            raise AssertionError("worker died")
        time.sleep(0.2)
    raise AssertionError(f"{group} made no progress within {timeout}s")
