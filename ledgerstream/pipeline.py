"""The whole pipeline for one run id, with real processes: the demo and the e2e tests.

:class:`Pipeline` creates an isolated world for a run — topics with the run's suffix
(``schemas.topics.Topics``), a fresh PostgreSQL database holding the CRM schema and
the sinks' bookkeeping, one served sandbox per platform with its tenants provisioned
and their OAuth2 grants encrypted in the database — then starts the outbox relay, the
stream processor and one sink per platform as subprocesses (``python -m ...``, so a
crash test can SIGKILL them), runs the simulator against the CRM database, waits
until every sink's sync log accounts for every ledger entry of its tenants, and
compares every sandbox's ledger with what the CRM holds (``reconcile``).

Everything it measures ends up in a :class:`PipelineResult`: documents per
platform, duplicates, missing documents, dead letters with their reasons, end-to-end
latency (event ``occurred_at`` → the sink's sync-log row) and the per-tenant totals.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import psycopg
import yaml
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import SecretStr

from deploy.localstack.stack import Endpoints
from producers.outbox import AvroEncoder
from producers.simulator import SimulationConfig, SimulationResult, simulate_day
from producers.sql import apply_crm_schema
from producers.topics_admin import ensure_topics
from schemas.models import DeadLetter, FinancialEvent, LedgerEntry
from schemas.serde import dead_letter_deserializer, ledger_entry_deserializer, registry_client
from schemas.topics import Topics
from sinks.core.references import KIND_BY_AGGREGATE
from sinks.core.store import SinkStore
from sinks.platforms.common.money import from_wire
from sinks.platforms.common.reconcile import Difference, expected_ledger, reconcile
from sinks.platforms.limitations import cascade_key, documented_limitation
from sinks.sandbox.profiles import PROFILES, ServedSandbox, start_sandbox
from sinks.transport.auth import PostgresTokenStore, TokenCipher, generate_token_key
from sinks.transport.db import apply_schema as apply_transport_schema

__all__ = [
    "DEFAULT_PLATFORMS",
    "DeadLetterInfo",
    "Pipeline",
    "PipelineConfig",
    "PipelineError",
    "PipelineResult",
    "PlatformResult",
    "Progress",
    "TenantResult",
]

log = logging.getLogger("ledgerstream.pipeline")

#: The demo's default: platforms that can represent every kind of record the CRM
#: simulator writes (tips, refunds of credit, voids after payment...), so their books
#: must agree with the CRM to the cent. Every other platform (``PROFILES``) can join a
#: run with ``--platform``; its documented limitations then show up as dead letters
#: with reasons (see docs/platforms/).
DEFAULT_PLATFORMS: tuple[str, ...] = ("quickbooks-online", "xero", "zoho-books")
TERMINAL = ("applied", "already_applied", "dead_lettered")
ZERO = Decimal("0.00")


def quantile_of(values: list[float], quantile: float) -> float | None:
    """The ``quantile`` (0-1) of ``values`` (inclusive method), None when empty."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    return cuts[max(0, min(98, round(quantile * 100) - 1))]


class PipelineError(RuntimeError):
    """The pipeline could not be run (a process died, a timeout), as opposed to the
    books disagreeing, which is a result."""


@dataclass(frozen=True)
class PipelineConfig:
    endpoints: Endpoints
    tenants: int = 4
    jobs_per_tenant: int = 10
    customers_per_tenant: int = 6
    seed: int = 42
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    run_id: str | None = None
    #: Seconds to wait for the sinks to account for every ledger entry.
    timeout_s: float = 420.0
    #: Lift the sandboxes' per-tenant rate limits (the sinks keep the platforms' own).
    relaxed_sandbox_limits: bool = False
    #: Extra environment per platform's sink (``LEDGERSTREAM_SINK_CRASH_AT`` ...).
    sink_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: Restart a sink that died (SIGKILL from crash injection) up to this many times.
    max_sink_restarts: int = 0
    #: Keep a sink's ``LEDGERSTREAM_SINK_CRASH_AT`` for this many starts only (``None``:
    #: always). A crash point counts every record on the shared topic, so without a cap
    #: the number of kills grows with the run and each costs a group rebalance.
    crash_starts: int | None = None
    #: Faults armed on a platform's sandbox before the run (``Sandbox.apply_fault`` specs).
    sandbox_faults: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    workdir: Path | None = None
    keep_database: bool = False
    #: Processor commit interval (latency of ledger.* vs throughput).
    processor_commit_interval_s: float = 0.5
    #: The simulated CRM writes each outbox row's event as Confluent-framed Avro too
    #: (``payload_avro``, as a CRM using the outbox library with an encoder does): the
    #: relay's fast path. ``False``: JSON rows only, which the relay validates and encodes
    #: (the path of rows written by the database triggers or foreign code).
    avro_rows: bool = True
    #: Repair jobs per shop on particular platforms, overriding ``jobs_per_tenant`` (a
    #: platform that allows 60 requests a minute takes minutes over a full day).
    jobs_by_platform: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Progress:
    """A snapshot for live displays, passed to the ``progress`` callback."""

    phase: str
    elapsed_s: float = 0.0
    produced: int = 0
    outbox_pending: int = 0
    entries: int = 0
    processor_dead_letters: int = 0
    written: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def lag(self, platform: str) -> int:
        return max(0, self.expected.get(platform, 0) - self.written.get(platform, 0))


@dataclass(frozen=True)
class DeadLetterInfo:
    topic: str
    stage: str
    error_class: str
    reason: str
    tenant_id: str | None
    event_id: str | None


@dataclass
class TenantResult:
    tenant_id: str
    platform: str
    differences: list[Difference]
    crm_invoices: int
    crm_invoice_total: Decimal
    crm_outstanding: Decimal
    platform_invoices: int
    platform_invoice_total: Decimal
    platform_outstanding: Decimal
    duplicates: int

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def missing(self) -> int:
        return sum(1 for d in self.differences if d.what == "missing")


@dataclass
class PlatformResult:
    platform: str
    tenants: list[str]
    entries: int
    sync_log: dict[str, int]
    documents: int
    payments: int
    duplicates: int
    missing: int
    restarts: int


@dataclass
class PipelineResult:
    run_id: str
    duration_s: float
    events_produced: int
    ledger_entries: int
    platforms: dict[str, PlatformResult]
    tenants: dict[str, TenantResult]
    dead_letters: list[DeadLetterInfo]
    latencies_ms: list[float]
    unprocessed_events: int = 0
    errors: list[str] = field(default_factory=list)
    #: Event ``occurred_at`` → its ledger entry's Kafka timestamp (relay + processor).
    processor_latencies_ms: list[float] = field(default_factory=list)
    #: ``kind:crm_id`` of documents with a dead-lettered event (per tenant).
    dead_lettered_keys: dict[str, set[str]] = field(default_factory=dict)
    #: tenant → the platform its books are kept on.
    assignment: dict[str, str] = field(default_factory=dict)
    #: ``latencies_ms`` split by platform: each sink paces its writes to its platform's
    #: rate limit (60 a minute for Xero, Odoo, Reckon One), which the overall figure hides.
    latencies_by_platform: dict[str, list[float]] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return sum(p.duplicates for p in self.platforms.values())

    @property
    def missing(self) -> int:
        return sum(t.missing for t in self.tenants.values())

    @property
    def unexplained_missing(self) -> list[Difference]:
        """Documents missing on a platform although none of their events was
        dead-lettered: what a lost write (not a rejected one) looks like."""
        return [d for t in self.tenants.values() for d in t.differences
                if d.what == "missing"
                and d.key not in self.dead_lettered_keys.get(t.tenant_id, set())]

    def latency_ms(self, quantile: float, *, processor_only: bool = False,
                   platform: str | None = None) -> float | None:
        """End-to-end (``occurred_at`` → the platform answered the write, as the sink
        sync log records it; of one ``platform``'s writes, or all) or, with
        ``processor_only``, up to the ledger entry in Kafka."""
        if processor_only:
            data = self.processor_latencies_ms
        elif platform is not None:
            data = self.latencies_by_platform.get(platform, [])
        else:
            data = self.latencies_ms
        return quantile_of(data, quantile)

    @property
    def dead_letter_reasons(self) -> Counter[str]:
        return Counter(f"{d.stage}: {d.reason[:160]}" for d in self.dead_letters)

    def limitation_of(self, letter: DeadLetterInfo) -> str | None:
        """Which documented platform limitation a dead letter is (the scenario name of
        :mod:`sinks.platforms.limitations`; ``"cascade"`` for a write that needed a
        document whose own event was dead-lettered), or None: an unexpected one."""
        tenant = str(letter.tenant_id)
        scenario = documented_limitation(self.assignment.get(tenant, ""),
                                         letter.error_class, letter.reason)
        if scenario is not None:
            return scenario
        key = cascade_key(letter.error_class, letter.reason)
        if key is not None and key in self.dead_lettered_keys.get(tenant, set()):
            return "cascade"
        return None

    @property
    def unexpected_dead_letters(self) -> list[DeadLetterInfo]:
        return [d for d in self.dead_letters if self.limitation_of(d) is None]

    def limitations(self, tenant_id: str) -> list[str]:
        """The documented limitations that dead-lettered some of this tenant's records
        (its books then lack those records: an operator enters them by hand)."""
        found = {self.limitation_of(d) for d in self.dead_letters
                 if str(d.tenant_id) == tenant_id}
        return sorted(s for s in found if s is not None and s != "cascade")

    def books_ok(self, tenant: TenantResult) -> bool:
        """The tenant's books agree with the CRM, or every difference can come from a
        documented limitation: a tenant with such a dead letter is not compared record
        by record (a missing payment also moves invoice and customer balances), but a
        duplicate or an unexpected dead letter still fails the run."""
        return tenant.ok or bool(self.limitations(tenant.tenant_id))

    @property
    def ok(self) -> bool:
        """Nothing doubled, nothing lost, nothing unprocessed, no dead letter that is not
        a documented platform limitation, and every tenant's books agree (or differ only
        where such a limitation dead-lettered a record)."""
        return (not self.errors and self.duplicates == 0 and not self.unexplained_missing
                and self.unprocessed_events == 0 and not self.unexpected_dead_letters
                and all(self.books_ok(t) for t in self.tenants.values()))


# --------------------------------------------------------------------------- processes


class Service:
    """One subprocess with its log file; stop = SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path
                 ) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, dict(env), log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            out.write(f"\n=== start #{self.starts + 1} {datetime.now().isoformat()}\n".encode())
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout_s: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- kafka reader


class _TopicReader:
    """Reads ledger.entries and every DLQ (read_committed) in a background thread."""

    def __init__(self, bootstrap: str, registry_url: str, topics: Topics,
                 platforms: Iterable[str]) -> None:
        self.topics = topics
        registry = registry_client(registry_url)
        self._entry = ledger_entry_deserializer(registry)
        self._letter = dead_letter_deserializer(registry)
        self.dlq_topics = [topics.crm_dlq, topics.ledger_dlq,
                           *(topics.sink_dlq(p) for p in platforms)]
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"ledgerstream.pipeline.{uuid.uuid4()}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "isolation.level": "read_committed",
        })
        self.consumer.subscribe([topics.ledger_entries, *self.dlq_topics])
        self.lock = threading.Lock()
        #: (tenant, event_id) -> occurred_at
        self.entries: dict[tuple[str, str], datetime] = {}
        self.dead_letters: list[DeadLetterInfo] = []
        #: occurred_at -> the ledger entry's Kafka timestamp (the processor's share)
        self.processed_ms: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pipeline-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for msg in self.consumer.consume(500, 0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            self.errors.append(str(err))
                        continue
                    self._take(msg.topic() or "", msg.value(), msg.timestamp()[1])
        finally:
            self.consumer.close()

    def _take(self, topic: str, value: bytes | None, timestamp_ms: int) -> None:
        if value is None:
            return
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            if topic == self.topics.ledger_entries:
                entry = cast(LedgerEntry, self._entry(value, ctx))
                event = entry.event
                with self.lock:
                    self.entries[(str(event.tenant_id), str(event.event_id))] = (
                        event.occurred_at)
                    if timestamp_ms > 0:
                        self.processed_ms.append(
                            timestamp_ms - event.occurred_at.timestamp() * 1000)
            else:
                letter = cast(DeadLetter, self._letter(value, ctx))
                with self.lock:
                    self.dead_letters.append(DeadLetterInfo(
                        topic, str(letter.stage), str(letter.error_class), str(letter.reason),
                        letter.tenant_id, letter.event_id))
        except Exception as exc:  # an undecodable record is itself a finding
            with self.lock:
                self.errors.append(f"{topic}: cannot decode a record: {exc!r}")

    def snapshot(self) -> tuple[dict[tuple[str, str], datetime], list[DeadLetterInfo]]:
        with self.lock:
            return dict(self.entries), list(self.dead_letters)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


# --------------------------------------------------------------------------- pipeline


def _dsn_with_db(dsn: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


class Pipeline:
    """One run: ``with Pipeline(cfg) as p: result = p.run()``; or call the steps."""

    def __init__(self, config: PipelineConfig,
                 progress: Callable[[Progress], None] | None = None) -> None:
        unknown = [p for p in config.platforms if p not in PROFILES]
        if unknown:
            raise PipelineError(f"no sandbox profile for {unknown}; have {sorted(PROFILES)}")
        if not config.platforms:
            raise PipelineError("no platforms chosen")
        self.config = config
        self.progress = progress or (lambda _p: None)
        self.run_id = config.run_id or uuid.uuid4().hex[:10]
        self.topics = Topics(suffix=f"run{self.run_id}")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if config.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"ledgerstream-{self.run_id}-")
            self.workdir = Path(self._tmp.name)
        else:
            self.workdir = config.workdir
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.dbname = f"ls_run_{self.run_id}"
        self.dsn = _dsn_with_db(config.endpoints.database_url, self.dbname)
        self.token_key = generate_token_key()
        self.sandboxes: dict[str, ServedSandbox] = {}
        #: CRM tenant id -> platform
        self.assignment: dict[str, str] = {}
        self.services: dict[str, Service] = {}
        self.reader: _TopicReader | None = None
        self.simulation: SimulationResult | None = None
        self.started_at = time.monotonic()
        self._db_created = False
        self._stopped = False
        self.state = Progress("created")

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _report(self, phase: str | None = None) -> None:
        if phase:
            self.state.phase = phase
        self.state.elapsed_s = time.monotonic() - self.started_at
        self.progress(self.state)

    def prepare(self) -> None:
        """Topics, database, sandboxes, tenants and their grants, the tenants file."""
        cfg = self.config
        self._report("creating topics and database")
        ensure_topics(cfg.endpoints.kafka_bootstrap, self.topics.specs(cfg.platforms))
        with psycopg.connect(cfg.endpoints.database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        self._db_created = True
        apply_crm_schema(self.dsn)
        apply_transport_schema(self.dsn)
        for platform in cfg.platforms:
            SinkStore(self.dsn, platform, self.topics.sink_group(platform)).ensure_schema()
        tokens = PostgresTokenStore(self.dsn, TokenCipher([SecretStr(self.token_key)]))
        self._report("serving sandboxes")
        for platform in cfg.platforms:
            served = start_sandbox(platform, relaxed_limits=cfg.relaxed_sandbox_limits)
            self.sandboxes[platform] = served
        entries: dict[str, Any] = {}
        for n in range(cfg.tenants):
            tenant_id = f"t{n + 1:03d}"
            platform = cfg.platforms[n % len(cfg.platforms)]
            self.assignment[tenant_id] = platform
            entries[tenant_id] = self.sandboxes[platform].add_tenant(
                tenant_id, tokens).yaml_entry()
        for platform, faults in cfg.sandbox_faults.items():
            for spec in faults:
                self.sandboxes[platform].arm_fault(spec)
        self.tenants_file = self.workdir / "tenants.yaml"
        self.tenants_file.write_text(yaml.safe_dump({"tenants": entries}, allow_unicode=True),
                                     encoding="utf-8")
        self.reader = _TopicReader(cfg.endpoints.kafka_bootstrap,
                                   cfg.endpoints.schema_registry_url, self.topics,
                                   cfg.platforms)

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("LEDGERSTREAM_")}
        env.update({
            "KAFKA_BOOTSTRAP_SERVERS": self.config.endpoints.kafka_bootstrap,
            "SCHEMA_REGISTRY_URL": self.config.endpoints.schema_registry_url,
            "DATABASE_URL": self.dsn,
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra or {})
        return env

    def start_services(self) -> None:
        """Relay, processor and one sink per platform, as subprocesses."""
        suffix = self.topics.suffix
        py = sys.executable
        self._report("starting relay, processor and sinks")
        specs: list[tuple[str, list[str], dict[str, str]]] = [
            ("relay", [py, "-m", "producers.relay"], {
                "LEDGERSTREAM_RELAY_TOPIC_SUFFIX": suffix,
                "LEDGERSTREAM_RELAY_IDLE_WAIT_S": "0.5"}),
            ("processor", [py, "-m", "stream_processors"], {
                "LEDGERSTREAM_PROCESSOR_TOPIC_SUFFIX": suffix,
                "LEDGERSTREAM_PROCESSOR_DATA_DIR": str(self.workdir / "processor"),
                "LEDGERSTREAM_PROCESSOR_COMMIT_INTERVAL_SECONDS":
                    str(self.config.processor_commit_interval_s),
                "LEDGERSTREAM_PROCESSOR_LOG_LEVEL": "warn"}),
        ]
        for platform in self.config.platforms:
            env = {
                "LEDGERSTREAM_SINK_PLATFORM": platform,
                "LEDGERSTREAM_SINK_TOPIC_SUFFIX": suffix,
                "LEDGERSTREAM_SINK_TENANTS_FILE": str(self.tenants_file),
                "LEDGERSTREAM_SINK_RETRY_BACKOFF_S": "0.5",
                "LEDGERSTREAM_TRANSPORT_TOKEN_ENCRYPTION_KEY": self.token_key,
            }
            env.update(self.config.sink_env.get(platform, {}))
            specs.append((f"sink:{platform}",
                          [py, "-m", "ledgerstream.cli", "sink", "--platform", platform], env))
        for name, argv, extra in specs:
            service = Service(name, argv, self._env(extra),
                              self.workdir / f"{name.replace(':', '-')}.log")
            service.start()
            self.services[name] = service

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until the processor and every sink have joined their consumer groups, so the
        measured latency is the pipeline's, not the processes' start-up."""
        admin = AdminClient({"bootstrap.servers": self.config.endpoints.kafka_bootstrap})
        groups = [self.topics.processor_app_id,
                  *(self.topics.sink_group(p) for p in self.config.platforms)]
        self._report("waiting for the processor and sinks to join")
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_services()
            ready = 0
            for future in admin.describe_consumer_groups(groups).values():
                with contextlib.suppress(Exception):
                    described = future.result(timeout=10)
                    if described.members and all(m.assignment.topic_partitions
                                                 for m in described.members):
                        ready += 1
            if ready == len(groups):
                return
            if time.monotonic() > deadline:
                raise PipelineError(f"processor/sinks not in their groups after {timeout_s}s")
            time.sleep(0.5)

    def simulate(self) -> SimulationResult:
        cfg = self.config
        self._report("simulating the repair shops' day")
        encoder = (AvroEncoder(cfg.endpoints.schema_registry_url, self.topics)
                   if cfg.avro_rows else None)
        self.simulation = simulate_day(self.dsn, SimulationConfig(
            tenants=cfg.tenants, customers_per_tenant=cfg.customers_per_tenant,
            jobs_per_tenant=cfg.jobs_per_tenant, seed=cfg.seed,
            jobs_by_tenant={tenant: cfg.jobs_by_platform[platform]
                            for tenant, platform in self.assignment.items()
                            if platform in cfg.jobs_by_platform}), avro_encoder=encoder)
        self.state.produced = len(self.simulation.events)
        return self.simulation

    # -- waiting -------------------------------------------------------------------------

    def _terminal(self, conn: psycopg.Connection[Any]) -> dict[str, set[tuple[str, str]]]:
        rows = conn.execute(
            "SELECT platform, tenant_id, event_id FROM sink_sync_log WHERE status = ANY(%s)",
            (list(TERMINAL),)).fetchall()
        out: dict[str, set[tuple[str, str]]] = {p: set() for p in self.config.platforms}
        for platform, tenant, event in rows:
            out.setdefault(str(platform), set()).add((str(tenant), str(event)))
        return out

    def _dead_lettered(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        rows = conn.execute("SELECT platform, count(*) FROM sink_sync_log "
                            "WHERE status = 'dead_lettered' GROUP BY platform").fetchall()
        return {str(p): int(n) for p, n in rows}

    def _check_services(self) -> None:
        for name, service in self.services.items():
            code = service.returncode
            if code is None:
                continue
            platform = name.removeprefix("sink:")
            if (name.startswith("sink:") and code == -signal.SIGKILL
                    and service.starts <= self.config.max_sink_restarts):
                log.info("%s was killed (crash injection); restarting", name)
                self.state.restarts[platform] = service.starts
                if (self.config.crash_starts is not None
                        and service.starts >= self.config.crash_starts):
                    service.env.pop("LEDGERSTREAM_SINK_CRASH_AT", None)
                service.start()
                continue
            raise PipelineError(f"{name} exited with code {code}; log tail:\n"
                                f"{service.log_tail()}")

    def wait_until_synced(self) -> None:
        """Until every sink's sync log holds every ledger entry of its tenants."""
        assert self.reader is not None and self.simulation is not None
        deadline = time.monotonic() + self.config.timeout_s
        expected_ids = {(str(e.tenant_id), str(e.event_id)) for e in self.simulation.events
                        if str(e.aggregate_type) != "TAX_RATE"}
        self._report("streaming")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while True:
                self._check_services()
                entries, letters = self.reader.snapshot()
                row = conn.execute(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
                terminal = self._terminal(conn)
                lettered = {(str(d.tenant_id), str(d.event_id)) for d in letters
                            if d.topic in (self.topics.ledger_dlq, self.topics.crm_dlq)}
                self.state.outbox_pending = int(row[0]) if row else 0
                self.state.entries = len(entries)
                self.state.processor_dead_letters = len(lettered)
                per_platform = {p: {k for k in entries if self.assignment.get(k[0]) == p}
                                for p in self.config.platforms}
                self.state.expected = {p: len(ids) for p, ids in per_platform.items()}
                self.state.written = {p: len(per_platform[p] & terminal.get(p, set()))
                                      for p in self.config.platforms}
                self._report()
                processed = expected_ids <= (set(entries) | lettered)
                synced = all(ids <= terminal.get(p, set()) for p, ids in per_platform.items())
                dead = self._dead_lettered(conn)
                letters_read = all(
                    sum(1 for d in letters if d.topic == self.topics.sink_dlq(p)) >= n
                    for p, n in dead.items())
                if processed and synced and letters_read and self.state.outbox_pending == 0:
                    return
                if time.monotonic() > deadline:
                    missing = len(expected_ids - set(entries) - lettered)
                    raise PipelineError(
                        f"timed out after {self.config.timeout_s:.0f}s: {missing} events not "
                        f"processed, outbox {self.state.outbox_pending}, written "
                        f"{self.state.written} of {self.state.expected}")
                time.sleep(0.5)

    # -- verification ------------------------------------------------------------------

    def verify(self) -> PipelineResult:
        """Compare every sandbox with the CRM and collect the numbers."""
        assert self.reader is not None and self.simulation is not None
        self._report("reconciling")
        entries, letters = self.reader.snapshot()
        by_tenant: dict[str, list[FinancialEvent]] = {}
        for event in self.simulation.events:
            by_tenant.setdefault(str(event.tenant_id), []).append(event)
        tenants: dict[str, TenantResult] = {}
        platforms: dict[str, PlatformResult] = {}
        latencies: list[float] = []
        by_platform: dict[str, list[float]] = {}
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            id_rows = conn.execute(
                "SELECT platform, tenant_id, kind, crm_id, external_id FROM sink_external_ids"
            ).fetchall()
            log_rows = conn.execute(
                "SELECT platform, tenant_id, event_id, status, "
                "coalesce(written_at, created_at) FROM sink_sync_log"
            ).fetchall()
            crm_rows = conn.execute(
                "SELECT tenant_id, count(*), coalesce(sum(total), 0) FROM invoices "
                "WHERE deleted_at IS NULL AND status NOT IN ('DRAFT', 'VOID') "
                "GROUP BY tenant_id").fetchall()
            dead_rows = conn.execute(
                "SELECT tenant_id, aggregate_type, aggregate_id FROM sink_sync_log "
                "WHERE status = 'dead_lettered'").fetchall()
        ids: dict[tuple[str, str], dict[str, str]] = {}
        for platform, tenant, kind, crm_id, external in id_rows:
            ids.setdefault((str(platform), str(tenant)), {})[f"{kind}:{crm_id}"] = str(external)
        status_counts: dict[str, Counter[str]] = {p: Counter() for p in self.config.platforms}
        dead_keys: dict[str, set[str]] = {}
        for tenant, agg_type, agg_id in dead_rows:
            kind = KIND_BY_AGGREGATE.get(str(agg_type).rsplit(".", 1)[-1], str(agg_type).lower())
            dead_keys.setdefault(str(tenant), set()).add(f"{kind}:{agg_id}")
        # written_at: when the platform answered (created_at is the batch's commit)
        for platform, tenant, event_id, status, created_at in log_rows:
            status_counts.setdefault(str(platform), Counter())[str(status)] += 1
            occurred = entries.get((str(tenant), str(event_id)))
            if occurred is not None and status in ("applied", "already_applied"):
                latency = (created_at - occurred).total_seconds() * 1000
                latencies.append(latency)
                by_platform.setdefault(str(platform), []).append(latency)
        crm_db = {str(t): (int(n), Decimal(total).quantize(Decimal("0.01")))
                  for t, n, total in crm_rows}
        for tenant_id, platform in sorted(self.assignment.items()):
            report = self.sandboxes[platform].ledger_report(tenant_id)
            expected = expected_ledger(by_tenant.get(tenant_id, []))
            diffs = reconcile(expected, report, ids.get((platform, tenant_id), {}))
            live_invoices = [i for i in expected.invoices.values()
                             if not i.voided and not i.draft]
            # the events are the CRM's own account of its tables: check them against it
            in_events = (len(live_invoices), sum((i.total for i in live_invoices), ZERO))
            in_tables = crm_db.get(tenant_id, (0, ZERO))
            if in_events != in_tables:
                diffs.append(Difference("CRM tables vs its events", f"tenant:{tenant_id}",
                                        f"{in_tables[0]} invoices {in_tables[1]}",
                                        f"events say {in_events[0]} invoices {in_events[1]}"))
            docs = [d for d in report.get("documents", []) if d["kind"] == "invoice"
                    and d["status"] not in ("VOIDED", "DELETED", "Voided", "Deleted", "DRAFT",
                                            "SUBMITTED", "Draft")]
            platform_outstanding = sum(
                (from_wire(c["balance"]) for c in report.get("customers", [])), ZERO)
            tenants[tenant_id] = TenantResult(
                tenant_id=tenant_id, platform=platform, differences=diffs,
                crm_invoices=len(live_invoices),
                crm_invoice_total=sum((i.total for i in live_invoices), ZERO),
                crm_outstanding=sum(expected.customers.values(), ZERO),
                platform_invoices=len(docs),
                platform_invoice_total=sum((from_wire(d["total"]) for d in docs), ZERO),
                platform_outstanding=platform_outstanding,
                duplicates=int((report.get("duplicates") or {}).get("count", 0)))
        for platform in self.config.platforms:
            mine = [t for t, p in self.assignment.items() if p == platform]
            reports = [self.sandboxes[platform].ledger_report(t) for t in mine]
            service = self.services.get(f"sink:{platform}")
            platforms[platform] = PlatformResult(
                platform=platform, tenants=mine,
                entries=sum(1 for k in entries if k[0] in mine),
                sync_log=dict(status_counts.get(platform, Counter())),
                documents=sum(len(r.get("documents", [])) for r in reports),
                payments=sum(len(r.get("payments", [])) for r in reports),
                duplicates=sum(tenants[t].duplicates for t in mine),
                missing=sum(tenants[t].missing for t in mine),
                restarts=max(0, (service.starts - 1) if service else 0))
        expected_ids = {(str(e.tenant_id), str(e.event_id)) for e in self.simulation.events
                        if str(e.aggregate_type) != "TAX_RATE"}
        lettered = {(str(d.tenant_id), str(d.event_id)) for d in letters}
        return PipelineResult(
            run_id=self.run_id, duration_s=time.monotonic() - self.started_at,
            events_produced=len(self.simulation.events), ledger_entries=len(entries),
            platforms=platforms, tenants=tenants, dead_letters=letters,
            latencies_ms=latencies,
            unprocessed_events=len(expected_ids - set(entries) - lettered),
            errors=list(self.reader.errors), dead_lettered_keys=dead_keys,
            processor_latencies_ms=list(self.reader.processed_ms),
            assignment=dict(self.assignment), latencies_by_platform=by_platform)

    # -- all of it -----------------------------------------------------------------------

    def run(self) -> PipelineResult:
        """prepare → start → simulate → wait → verify → stop."""
        try:
            self.prepare()
            self.start_services()
            self.wait_ready()
            self.simulate()
            self.wait_until_synced()
            result = self.verify()
        finally:
            self.stop()
        self._report("done")
        return result

    def _delete_topics(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.config.endpoints.kafka_bootstrap})
        mark = f".{self.topics.suffix}"
        names = [t for t in admin.list_topics(timeout=10).topics
                 if t.endswith(mark) or t.startswith(self.topics.processor_app_id)]
        if names:
            for future in admin.delete_topics(names, operation_timeout=30).values():
                with contextlib.suppress(Exception):
                    future.result(timeout=30)

    def stop(self) -> None:
        """Stop the processes (sinks first), the reader and the sandboxes."""
        if self._stopped:
            return
        self._stopped = True
        self._report("stopping")
        for name in sorted(self.services, key=lambda n: not n.startswith("sink:")):
            with contextlib.suppress(Exception):
                self.services[name].stop()
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        for served in self.sandboxes.values():
            with contextlib.suppress(Exception):
                served.stop()

    def close(self) -> None:
        """Stop, then drop the run's database and topics (unless ``keep_database``)."""
        self.stop()
        if not self.config.keep_database:
            with contextlib.suppress(Exception):
                self._delete_topics()
        if self._db_created and not self.config.keep_database:
            with contextlib.suppress(Exception), psycopg.connect(
                    self.config.endpoints.database_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
            self._db_created = False
        if self._tmp is not None and not self.config.keep_database:
            self._tmp.cleanup()
            self._tmp = None
