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
        customer = ev.customer_id
        assert customer is not None, "DELETE events need an explicit key"
        return self.names.crm_financial_events, message_key(ev.tenant_id, customer)

    def encode(self, topic: str, ev: FinancialEvent) -> bytes:
        enc = self.encoders.get(topic)
        if enc is None:
            enc = self.encoders[topic] = ConfluentAvroCodec(topic, FinancialEvent,
                                                            self.registry)
        return enc.encode(ev)

    def send(self, ev: FinancialEvent, *, key: str | None = None) -> None:
        topic, default_key = self.topic_and_key(ev)
        self.send_raw(topic, (key or default_key).encode(), self.encode(topic, ev))

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

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@contextmanager
def worker(tmp: Path, bootstrap: str, registry_url: str, suffix: str, *,
           guarantee: str = "exactly_once", grace: float = 300.0, tick: float = 1.0,
           extra: list[str] | None = None) -> Iterator[Worker]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "SCHEMA_REGISTRY_URL": registry_url, "PYTHONUNBUFFERED": "1"}
    args = ["--topic-suffix", suffix, "--data-dir", str(tmp / "data"),
            "--processing-guarantee", guarantee, "--grace-seconds", str(grace),
            "--tick-interval-seconds", str(tick), "--commit-interval-seconds", "0.5",
            *(extra or [])]
    w = Worker(env, args, tmp / "worker.log")
    w.start()
    try:
        yield w
    finally:
        if w.alive:
            w.stop()
