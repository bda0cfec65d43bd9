"""Relay throughput: PostgreSQL outbox -> Kafka (Confluent-framed Avro, acks=all,
idempotent), beside a raw confluent-kafka produce of the same messages in the same run.

Run by hand (not in tests), with the three endpoint variables exported:

    .venv/bin/python bench/bench_relay.py --events 100000 [--relays 1 2] [--rows both]

Rows are a realistic mix (the simulator's repair-shop day, replicated over many tenants
so keys spread over every bucket). ``--rows``: JSON rows (the relay validates and encodes
them), Avro rows (``payload_avro``, encoded by the outbox library's AvroEncoder at write
time, whose cost per event is measured and reported), or both, each in its own fresh
database beside a raw produce of the same bytes. Results are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402

from producers.kafka import producer_config  # noqa: E402
from producers.outbox import AvroEncoder  # noqa: E402
from producers.relay import RelaySettings  # noqa: E402
from producers.relay.claim import LOCK_CLASS  # noqa: E402
from producers.relay.rows import OutboxRow, RowEncoder  # noqa: E402
from producers.serde import Serde  # noqa: E402
from producers.simulator import SimulationConfig, simulate_day  # noqa: E402
from producers.sql import apply_crm_schema  # noqa: E402
from producers.topics_admin import ensure_topics  # noqa: E402
from schemas.models import FinancialEvent  # noqa: E402
from schemas.topics import Topics  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
HEADER = """# Benchmarks

Run by hand; each run appends a section. Machine facts come from `nproc` and
`/proc/meminfo`; Kafka, the registry and PostgreSQL ran on the same machine unless noted.
"""


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"export {name} first")
    return value


def make_db(admin_dsn: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def drop_db(admin_dsn: str, dsn: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Writer:
    """What the CRM side paid: the simulated day's transactions (per event, wall) and,
    for Avro rows, the encoder's own work (validate + Avro write, per event, measured
    inside the writer over every row of the run)."""

    day_events: int = 0
    day_s: float = 0.0
    encoded: int = 0
    encode_s: float = 0.0
    encode_cpu_s: float = 0.0


def fill(dsn: str, events: int, avro: AvroEncoder | None = None) -> tuple[int, Writer]:
    """Simulate one day, then replicate its outbox rows over many tenants (with an
    encoder: every replicated event is validated and encoded as the writer would)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE outbox_seed AS SELECT * FROM outbox WHERE false")
    writer = Writer()
    started = time.perf_counter()
    sim = simulate_day(dsn, SimulationConfig(tenants=2, customers_per_tenant=15,
                                             jobs_per_tenant=60, seed=1), avro_encoder=avro)
    writer.day_s, writer.day_events = time.perf_counter() - started, len(sim.events)
    per_copy = len(sim.events)
    copies = max(1, -(-events // per_copy))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox_seed SELECT * FROM outbox")
        conn.execute("DELETE FROM outbox")
        if avro is not None:
            return _fill_avro(conn, avro, copies), writer_encode(writer, avro)
        conn.execute(
            """
            INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, tenant_id,
                                message_key, destination)
            SELECT u, aggregatetype, aggregateid, type,
                   jsonb_set(jsonb_set(payload, '{event_id}', to_jsonb(u::text)),
                             '{tenant_id}', to_jsonb(t)),
                   t, t || substr(message_key, position(':' in message_key)), destination
            FROM (SELECT gen_random_uuid() AS u, s.*, o.tenant_id || 'x' || n AS t, n
                  FROM outbox_seed o CROSS JOIN generate_series(1, %s) AS n,
                  LATERAL (SELECT o.*) s ORDER BY n, o.sequence) x
            """, (copies,))
        return _count(conn), writer


def _count(conn: psycopg.Connection[Any]) -> int:
    conn.execute("VACUUM ANALYZE outbox")
    row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    assert row is not None
    return int(row[0])


_ENCODE_CPU = [0.0]


def writer_encode(writer: Writer, avro: AvroEncoder) -> Writer:
    writer.encoded, writer.encode_s = avro.encoded, avro.seconds
    writer.encode_cpu_s = _ENCODE_CPU[0]
    return writer


def _fill_avro(conn: psycopg.Connection[Any], avro: AvroEncoder, copies: int) -> int:
    """The replicas as an Avro-writing CRM would store them: the envelope as the model
    the writer holds (validated from the seed's JSON), encoded by ``avro``. The encoder
    counts its own time; its process CPU time is taken around the encode calls only."""
    seed = conn.execute(
        "SELECT payload, tenant_id, message_key, destination FROM outbox_seed "
        "ORDER BY sequence").fetchall()
    avro.encoded, avro.seconds, _ENCODE_CPU[0] = 0, 0.0, 0.0
    with conn.cursor() as cur, cur.copy(
            "COPY outbox (id, aggregatetype, aggregateid, type, payload, tenant_id, "
            "message_key, destination, payload_avro) FROM STDIN") as copy:
        for n in range(1, copies + 1):
            for payload, tenant, key, destination in seed:
                event_id, t = str(uuid.uuid4()), f"{tenant}x{n}"
                event = FinancialEvent.model_validate(
                    {**payload, "event_id": event_id, "tenant_id": t})
                data = event.model_dump(mode="json")
                cpu = time.process_time()
                value = avro.encode(event, data)
                _ENCODE_CPU[0] += time.process_time() - cpu
                copy.write_row((event_id, event.aggregate_type.value, event.aggregate_id,
                                event.event_type, Jsonb(data), t,
                                t + key[key.index(":"):], destination, value))
    return _count(conn)


def rows_of(dsn: str) -> list[OutboxRow]:
    with psycopg.connect(dsn) as conn:
        return [OutboxRow(*r) for r in conn.execute(
            f"SELECT {OutboxRow.COLUMNS} FROM outbox ORDER BY sequence")]


class CpuMeter(threading.Thread):
    """CPU seconds spent during a run by the PostgreSQL backends of one database and by the
    Kafka broker (read from /proc every 0.1 s; backends are gone when the run ends).

    Why: on a loaded machine wall-clock rates mostly measure the other tenants; CPU time
    per event says what the pipeline costs, and 2 cores / (CPU per event) bounds what it
    could reach on a quiet machine. The broker's figure includes whatever else the shared
    broker did meanwhile (an upper bound)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, dbname: str, baseline_s: float = 3.0) -> None:
        super().__init__(daemon=True)
        self.dbname, self.done = dbname, threading.Event()
        self.baseline_s, self.broker_rate, self.started = baseline_s, 0.0, 0.0
        self.seen: dict[int, tuple[float, float, str]] = {}  # pid -> first, last, kind

    @classmethod
    def cpu(cls, pid: int) -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / cls.TICK

    def kind(self, pid: int) -> str | None:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        if cmd.startswith("postgres: ") and f" {self.dbname} " in cmd:
            return "postgres"
        if cmd.startswith("java") and "kafka" in cmd and "apicurio" not in cmd:
            return "broker"
        return None

    def sample(self, first: bool = False) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid in self.seen:
                now = self.cpu(pid)
                if now is not None:
                    start, _, kind = self.seen[pid]
                    self.seen[pid] = (start, now, kind)
                continue
            found = self.kind(pid)
            now = self.cpu(pid) if found else None
            if found and now is not None:  # a backend born during the run counts from 0
                self.seen[pid] = (now if first or found == "broker" else 0.0, now, found)

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.sample()

    def __enter__(self) -> CpuMeter:
        self.sample(first=True)
        time.sleep(self.baseline_s)
        self.sample()
        self.broker_rate = self.totals()["broker"] / self.baseline_s
        self.seen.clear()
        self.sample(first=True)
        self.started = time.perf_counter()
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.join()
        self.sample()
        self.elapsed = time.perf_counter() - self.started

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {"postgres": 0.0, "broker": 0.0}
        for start, last, kind in self.seen.values():
            out[kind] += last - start
        return out

    def net(self) -> dict[str, float]:
        """Totals with the broker's background (rate before the run x duration) removed."""
        out = self.totals()
        out["broker"] = max(0.0, out["broker"] - self.broker_rate * self.elapsed)
        return out


def bench_encode(rows: list[OutboxRow], registry: str, topics: Topics,
                 validation: str) -> tuple[float, float, list]:
    encoder = RowEncoder(Serde(registry), topics, validation)  # type: ignore[arg-type]
    for row in rows[:200]:
        encoder.encode(row)  # register the schemas outside the timing
    started, cpu = time.perf_counter(), time.process_time()
    encoded = [encoder.encode(r) for r in rows]
    return time.perf_counter() - started, time.process_time() - cpu, encoded


def bench_raw(encoded: list, bootstrap: str) -> tuple[float, float]:
    """Wall and process CPU seconds (librdkafka's threads included)."""
    producer = Producer(producer_config(bootstrap, linger_ms=5, client_id="bench-raw"))
    started, cpu = time.perf_counter(), time.process_time()
    for enc in encoded:
        while True:
            try:
                producer.produce(enc.topic, enc.value, enc.key, headers=enc.headers)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("raw produce did not finish")
    return time.perf_counter() - started, time.process_time() - cpu


class FirstClaim(threading.Thread):
    """When the first relay batch took its bucket locks (polled every 10 ms in
    ``pg_locks`` from a connection to ANOTHER database, so the CpuMeter does not charge
    the polling to the relay's backends). Wall time from there to the end is the relay's
    work without its process start-up, which a separate run cannot measure reliably on a
    loaded machine."""

    def __init__(self, admin_dsn: str, dbname: str) -> None:
        super().__init__(daemon=True)
        self.admin_dsn, self.dbname = admin_dsn, dbname
        self.at: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            while self.at is None and not self.done.is_set():
                row = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d "
                    "ON d.oid = l.database WHERE l.locktype = 'advisory' "
                    "AND l.classid = %s AND d.datname = %s)",
                    (LOCK_CLASS, self.dbname)).fetchone()
                if row and row[0]:
                    self.at = time.perf_counter()
                    return
                time.sleep(0.01)


def bench_relays(dsn: str, settings: RelaySettings, relays: int, admin_dsn: str = ""
                 ) -> tuple[float, dict[str, float]]:
    """Wall seconds, and CPU seconds of the relay processes, their PostgreSQL backends
    and the broker. Relays always run as child processes, so their CPU is measured alike
    (getrusage of children, librdkafka's threads included). With ``admin_dsn``,
    ``cpu["first_claim_s"]`` is the wall time from start to the first claimed batch."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, value in settings.model_dump(exclude={"instance_id", "metrics_port"}).items():
        environ[f"LEDGERSTREAM_RELAY_{name.upper()}"] = str(value)
    environ["LEDGERSTREAM_RELAY_METRICS_PORT"] = "0"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    first = FirstClaim(admin_dsn, str(dbname)) if admin_dsn else None
    with CpuMeter(str(dbname)) as meter:
        if first is not None:
            first.start()
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "producers.relay"], cwd=ROOT,
                                  env=environ, stderr=subprocess.DEVNULL)
                 for _ in range(relays)]
        for proc in procs:
            if proc.wait(600) != 0:
                raise RuntimeError("a relay failed")
        elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"relay": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
           **meter.net(), "broker_background": meter.broker_rate}
    if first is not None:
        first.done.set()
        first.join()
        cpu["first_claim_s"] = (first.at or started) - started
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    if row is None or row[0] != 0:
        raise RuntimeError(f"relay left rows behind: {row}")
    return elapsed, cpu


def machine() -> str:
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
    return (f"nproc={nproc}, RAM={mem_kb / 1024 / 1024:.1f} GiB, "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")


@dataclass
class Run:
    kind: str
    n: int
    json_size: float
    avro_size: float
    writer: Writer
    enc_s: float
    enc_cpu: float
    raw_s: float
    raw_cpu: float
    relay_s: float
    cpu: dict[str, float]
    load: tuple[float, float]
    startup_s: float = 0.0
    startup_cpu: float = 0.0


def one_run(kind: str, relays: int, args: argparse.Namespace, bootstrap: str,
            registry: str, admin: str) -> Run:
    """One fresh database and topic set: fill (with ``kind`` rows), relay-side encode
    alone, raw produce of the same bytes, then the relay processes end to end."""
    dsn = make_db(admin)
    try:
        apply_crm_schema(dsn)
        topics = Topics(suffix=f"bench{uuid.uuid4().hex[:6]}")
        ensure_topics(bootstrap, topics)
        settings = RelaySettings(
            kafka_bootstrap_servers=bootstrap, schema_registry_url=registry,
            database_url=dsn, topic_suffix=topics.suffix, create_topics=False,
            exit_when_idle=True, batch_size=args.batch_size,
            buckets_per_claim=args.buckets or max(1, 64 // relays),
            validation=args.validation)
        # the same relays on the empty outbox: process start-up (imports, producer,
        # registry, database connections) is a fixed cost, not a per-event one
        _, startup = bench_relays(dsn, settings, relays)
        encoder = AvroEncoder(Serde(registry), topics) if kind == "avro" else None
        n, writer = fill(dsn, args.events, encoder)
        rows = rows_of(dsn)
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT avg(octet_length(payload::text)) FROM outbox").fetchone()
        json_size = float(row[0]) if row and row[0] is not None else 0.0
        enc_s, enc_cpu, encoded = bench_encode(rows, registry, topics, args.validation)
        avro_size = sum(len(e.value) for e in encoded) / len(encoded)
        raw_topics = Topics(suffix=topics.suffix + "raw")
        ensure_topics(bootstrap, raw_topics)
        for e in encoded:
            e.topic = e.topic.replace(topics.suffix, raw_topics.suffix)
        raw_s, raw_cpu = bench_raw(encoded, bootstrap)
        del encoded, rows
        load_before = os.getloadavg()[0]
        relay_s, cpu = bench_relays(dsn, settings, relays, admin)
        load_after = os.getloadavg()[0]
    finally:
        drop_db(admin, dsn)
    return Run(kind, n, json_size, avro_size, writer, enc_s, enc_cpu, raw_s, raw_cpu,
               relay_s, cpu, (load_before, load_after), cpu.pop("first_claim_s"),
               startup["relay"])


def report(run: Run) -> list[str]:
    cpu = dict(run.cpu)
    background = cpu.pop("broker_background")
    n = run.n
    per = {k: v / n * 1e6 for k, v in cpu.items()}
    total_us = sum(per.values())
    relay_work = ("framing check + key/headers (no JSON, no Avro)" if run.kind == "avro"
                  else "validate + Avro from JSON")
    out = [
        f"| **{run.kind} rows**: relay, PostgreSQL -> Kafka, end to end | {run.relay_s:.2f} "
        f"| {n / run.relay_s:,.0f} | {total_us:.0f} | {run.load[0]:.1f} / {run.load[1]:.1f} |",
        f"| — relay processes (Python + librdkafka) | | | {per['relay']:.0f} | |",
        f"| — of which process start-up (CPU: same relays on the empty outbox, "
        f"{run.startup_cpu:.2f} s; wall: {run.startup_s:.2f} s to the first claimed batch)"
        f" | | | {run.startup_cpu / n * 1e6:.0f} | |",
        f"| — their PostgreSQL backends | | | {per['postgres']:.0f} | |",
        f"| — Kafka broker, net of its background ({background:.2f} cores before) | | | "
        f"{per['broker']:.0f} | |",
        f"| — relay-side row work alone ({relay_work}, 1 process) | {run.enc_s:.2f} | "
        f"{n / run.enc_s:,.0f} | {run.enc_cpu / n * 1e6:.1f} | |",
        f"| raw confluent-kafka produce of the same bytes | {run.raw_s:.2f} | "
        f"{n / run.raw_s:,.0f} | {run.raw_cpu / n * 1e6:.0f} (client) | |",
    ]
    w = run.writer
    if w.encoded:
        out.append(
            f"| writer: Avro encode moved to the CRM transaction (validate + Avro write, "
            f"{w.encoded} events) | {w.encode_s:.2f} | {w.encoded / w.encode_s:,.0f} | "
            f"{w.encode_cpu_s / w.encoded * 1e6:.0f} (wall {w.encode_s / w.encoded * 1e6:.0f})"
            " | |")
    out.append(f"| writer: simulated day through the outbox library ({w.day_events} events,"
               f" wall per event) | {w.day_s:.2f} | {w.day_events / w.day_s:,.0f} | "
               f"{w.day_s / w.day_events * 1e6:,.0f} (wall) | |")
    steady_us = total_us - run.startup_cpu / n * 1e6
    steady_s = run.relay_s - run.startup_s
    out.append(f"| **{run.kind} rows from the first claimed batch to the end** (net of "
               f"relay start-up) | {steady_s:.2f} | "
               f"{n / steady_s:,.0f} | {steady_us:.0f} | |")
    out.append(f"| CPU bound on 2 idle cores ({run.kind}, net of start-up): 2 s / "
               f"{steady_us:.0f} µs | | {2e6 / steady_us:,.0f} | | |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--relays", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", choices=["avro", "json", "both"], default="both",
                        help="outbox rows the writer stores: Avro-encoded (payload_avro) "
                             "or JSON only")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--validation", choices=["schema", "contract"], default="schema")
    parser.add_argument("--buckets", type=int, default=0,
                        help="buckets_per_claim (default 64 / relays)")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    bootstrap, registry = env("KAFKA_BOOTSTRAP_SERVERS"), env("SCHEMA_REGISTRY_URL")
    admin = env("DATABASE_URL")
    kinds = ["json", "avro"] if args.rows == "both" else [args.rows]
    lines = [f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — relay vs raw produce "
             f"(rows: {', '.join(kinds)})", "",
             f"- machine: {machine()}",
             "- Kafka 4.1 (1 broker, same machine), Apicurio 3.0 ccompat, PostgreSQL 15",
             "- producer: acks=all, enable.idempotence, lz4, linger.ms=5",
             f"- relay: batch_size={args.batch_size}, validation={args.validation} "
             "(JSON rows; Avro rows get the framing check only)",
             f"- 1-minute load average at start: {os.getloadavg()[0]:.1f}"]
    for relays in args.relays:
        runs = [one_run(kind, relays, args, bootstrap, registry, admin) for kind in kinds]
        lines += [
            "", f"### {relays} relay process(es), {runs[0].n} events (mean payload JSON "
            f"{runs[0].json_size:.0f} B, Avro {runs[0].avro_size:.0f} B)", "",
            "| what | seconds | events/s | CPU µs/event | load 1m before/after |",
            "|---|---:|---:|---:|---:|"]
        for run in runs:
            lines += report(run)
        print("\n".join(lines), flush=True)
    if args.no_append:
        return
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
