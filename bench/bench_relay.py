"""Relay throughput: PostgreSQL outbox -> Kafka (Confluent-framed Avro, acks=all,
idempotent), beside a raw confluent-kafka produce of the same messages in the same run.

Run by hand (not in tests), with the three endpoint variables exported:

    .venv/bin/python bench/bench_relay.py --events 100000 [--relays 1 2]

Rows are a realistic mix (the simulator's repair-shop day, replicated over many tenants
so keys spread over every bucket). Results are appended to bench/RESULTS.md.
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
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402

from producers.kafka import producer_config  # noqa: E402
from producers.relay import RelaySettings  # noqa: E402
from producers.relay.rows import OutboxRow, RowEncoder  # noqa: E402
from producers.serde import Serde  # noqa: E402
from producers.simulator import SimulationConfig, simulate_day  # noqa: E402
from producers.sql import apply_crm_schema  # noqa: E402
from producers.topics_admin import ensure_topics  # noqa: E402
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


def fill(dsn: str, events: int) -> int:
    """Simulate one day, then replicate its outbox rows over many tenants."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE outbox_seed AS SELECT * FROM outbox WHERE false")
    sim = simulate_day(dsn, SimulationConfig(tenants=2, customers_per_tenant=15,
                                             jobs_per_tenant=60, seed=1))
    per_copy = len(sim.events)
    copies = max(1, -(-events // per_copy))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox_seed SELECT * FROM outbox")
        conn.execute("DELETE FROM outbox")
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
        conn.execute("VACUUM ANALYZE outbox")
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
        assert row is not None
        return int(row[0])


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


def bench_relays(dsn: str, settings: RelaySettings, relays: int
                 ) -> tuple[float, dict[str, float]]:
    """Wall seconds, and CPU seconds of the relay processes, their PostgreSQL backends
    and the broker. Relays always run as child processes, so their CPU is measured alike
    (getrusage of children, librdkafka's threads included)."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, value in settings.model_dump(exclude={"instance_id", "metrics_port"}).items():
        environ[f"LEDGERSTREAM_RELAY_{name.upper()}"] = str(value)
    environ["LEDGERSTREAM_RELAY_METRICS_PORT"] = "0"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with CpuMeter(str(dbname)) as meter:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--relays", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--validation", choices=["schema", "contract"], default="schema")
    parser.add_argument("--buckets", type=int, default=0,
                        help="buckets_per_claim (default 64 / relays)")
    args = parser.parse_args()
    bootstrap, registry = env("KAFKA_BOOTSTRAP_SERVERS"), env("SCHEMA_REGISTRY_URL")
    admin = env("DATABASE_URL")
    lines = [f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — relay vs raw produce", "",
             f"- machine: {machine()}",
             "- Kafka 4.1 (1 broker, same machine), Apicurio 3.0 ccompat, PostgreSQL 15",
             "- producer: acks=all, enable.idempotence, lz4, linger.ms=5",
             f"- relay: batch_size={args.batch_size}, validation={args.validation}"]
    for relays in args.relays:
        dsn = make_db(admin)
        try:
            apply_crm_schema(dsn)
            n = fill(dsn, args.events)
            rows = rows_of(dsn)
            size = sum(len(r.payload or "") for r in rows) / len(rows)
            topics = Topics(suffix=f"bench{uuid.uuid4().hex[:6]}")
            ensure_topics(bootstrap, topics)
            enc_s, enc_cpu, encoded = bench_encode(rows, registry, topics,
                                                   args.validation)
            avro = sum(len(e.value) for e in encoded) / len(encoded)
            raw_topics = Topics(suffix=topics.suffix + "raw")
            ensure_topics(bootstrap, raw_topics)
            for e in encoded:
                e.topic = e.topic.replace(topics.suffix, raw_topics.suffix)
            raw_s, raw_cpu = bench_raw(encoded, bootstrap)
            del encoded, rows
            settings = RelaySettings(
                kafka_bootstrap_servers=bootstrap, schema_registry_url=registry,
                database_url=dsn, topic_suffix=topics.suffix, create_topics=False,
                exit_when_idle=True, batch_size=args.batch_size,
                buckets_per_claim=args.buckets or max(1, 64 // relays),
                validation=args.validation)
            load_before = os.getloadavg()[0]
            relay_s, cpu = bench_relays(dsn, settings, relays)
            load_after = os.getloadavg()[0]
        finally:
            drop_db(admin, dsn)
        background = cpu.pop("broker_background")
        per = {k: v / n * 1e6 for k, v in cpu.items()}
        total_us = sum(per.values())
        lines += [
            "", f"### {relays} relay process(es), {n} events "
            f"(mean payload JSON {size:.0f} B, Avro {avro:.0f} B)", "",
            "| what | seconds | events/s | CPU µs/event |", "|---|---:|---:|---:|",
            f"| relay, PostgreSQL -> Kafka, end to end | {relay_s:.2f} | {n / relay_s:,.0f} "
            f"| {total_us:.0f} |",
            f"| — relay processes (Python + librdkafka) | | | {per['relay']:.0f} |",
            f"| — their PostgreSQL backends | | | {per['postgres']:.0f} |",
            f"| — Kafka broker, net of its background ({background:.2f} cores before the "
            f"run) | | | {per['broker']:.0f} |",
            f"| encode only (validate + Avro, 1 process) | {enc_s:.2f} | {n / enc_s:,.0f} "
            f"| {enc_cpu / n * 1e6:.0f} |",
            f"| encode only, by CPU time | {enc_cpu:.2f} | {n / enc_cpu:,.0f} | |",
            f"| raw confluent-kafka produce of the same bytes | {raw_s:.2f} | "
            f"{n / raw_s:,.0f} | {raw_cpu / n * 1e6:.0f} (client) |",
            "", f"1-minute load average before/after the relay run: {load_before:.1f} / "
            f"{load_after:.1f} (other processes shared the machine when above ~1). "
            f"CPU bound on 2 idle cores: 2 s / {total_us:.0f} µs = "
            f"{2e6 / total_us:,.0f} events/s.",
        ]
        print("\n".join(lines[-14:]), flush=True)
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
