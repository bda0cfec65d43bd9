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
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402

from producers.kafka import producer_config  # noqa: E402
from producers.relay import RelaySettings, run_relay  # noqa: E402
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


def bench_encode(rows: list[OutboxRow], registry: str, topics: Topics,
                 validation: str) -> tuple[float, list]:
    encoder = RowEncoder(Serde(registry), topics, validation)  # type: ignore[arg-type]
    encoder.encode(rows[0])  # register the schema outside the timing
    started = time.perf_counter()
    encoded = [encoder.encode(r) for r in rows]
    return time.perf_counter() - started, encoded


def bench_raw(encoded: list, bootstrap: str) -> float:
    producer = Producer(producer_config(bootstrap, linger_ms=5, client_id="bench-raw"))
    started = time.perf_counter()
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
    return time.perf_counter() - started


def bench_relays(dsn: str, settings: RelaySettings, relays: int) -> float:
    started = time.perf_counter()
    if relays == 1:
        run_relay(settings)
    else:
        environ = {**os.environ, "PYTHONPATH": str(ROOT)}
        for name, value in settings.model_dump(exclude={"instance_id", "metrics_port"}).items():
            environ[f"LEDGERSTREAM_RELAY_{name.upper()}"] = str(value)
        procs = [subprocess.Popen([sys.executable, "-m", "producers.relay"], cwd=ROOT,
                                  env=environ, stderr=subprocess.DEVNULL)
                 for _ in range(relays)]
        for proc in procs:
            if proc.wait(600) != 0:
                raise RuntimeError("a relay failed")
    elapsed = time.perf_counter() - started
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    if row is None or row[0] != 0:
        raise RuntimeError(f"relay left rows behind: {row}")
    return elapsed


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
            enc_s, encoded = bench_encode(rows, registry, topics, args.validation)
            avro = sum(len(e.value) for e in encoded) / len(encoded)
            raw_topics = Topics(suffix=topics.suffix + "raw")
            ensure_topics(bootstrap, raw_topics)
            for e in encoded:
                object.__setattr__(e, "topic", e.topic.replace(topics.suffix, raw_topics.suffix))
            raw_s = bench_raw(encoded, bootstrap)
            del encoded, rows
            settings = RelaySettings(
                kafka_bootstrap_servers=bootstrap, schema_registry_url=registry,
                database_url=dsn, topic_suffix=topics.suffix, create_topics=False,
                exit_when_idle=True, batch_size=args.batch_size,
                buckets_per_claim=64 if relays == 1 else 32, validation=args.validation)
            load_before = os.getloadavg()[0]
            relay_s = bench_relays(dsn, settings, relays)
            load_after = os.getloadavg()[0]
        finally:
            drop_db(admin, dsn)
        lines += [
            "", f"### {relays} relay process(es), {n} events "
            f"(mean payload JSON {size:.0f} B, Avro {avro:.0f} B)", "",
            "| what | seconds | events/s |", "|---|---:|---:|",
            f"| relay, PostgreSQL -> Kafka, end to end | {relay_s:.2f} | {n / relay_s:,.0f} |",
            f"| encode only (validate + Avro, 1 process) | {enc_s:.2f} | {n / enc_s:,.0f} |",
            f"| raw confluent-kafka produce of the same bytes | {raw_s:.2f} | "
            f"{n / raw_s:,.0f} |",
            "", f"1-minute load average before/after the relay run: {load_before:.1f} / "
            f"{load_after:.1f} (other processes shared the machine when above ~1)",
        ]
        print("\n".join(lines[-8:]), flush=True)
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
