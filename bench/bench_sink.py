"""Sink benchmark (run by hand): documents/s of one sink process, and rate-limit use.

1. Unthrottled: a QuickBooks sandbox with its limits lifted, served by a SEPARATE
   process (so the sandbox does not share the sink's GIL); one sink (the production
   assembly of ``sinks.app.build_runner``: Kafka consumer, PostgreSQL bookkeeping,
   shared PostgreSQL rate budget, encrypted token store) writes N invoices. Beside it,
   in the same run: raw httpx POSTs to the same sandbox (a customer create each).
2. Throttled: QuickBooks (500/min per realm) and Xero (60/min + 5 concurrent per
   tenant) sandboxes with their documented limits; the sink runs for ``--duration``
   seconds with more work than the limit allows; we report requests/min achieved
   against the limit (after a warm-up minute fraction) and the 429s received.

Needs the three endpoint variables (or ``ledgerstream up``). Appends to
bench/RESULTS.md.

    .venv/bin/python bench/bench_sink.py --documents 8000 --duration 120
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledgerstream.endpoints import configured_endpoints  # noqa: E402
from schemas import examples  # noqa: E402
from schemas.serde import ledger_entry_serializer, registry_client  # noqa: E402
from schemas.topics import Topics  # noqa: E402
from sinks.app import build_runner, tune_gc  # noqa: E402
from sinks.core.contract import RateLimitPolicy  # noqa: E402
from sinks.core.mapping import TenantConfig  # noqa: E402
from sinks.core.settings import SinkSettings  # noqa: E402

SERVE = """
import json, sys, time
from sinks.sandbox.profiles import start_sandbox
from sinks.transport.auth import PostgresTokenStore, TokenCipher
from sinks.transport.db import apply_schema
from pydantic import SecretStr
platform, relaxed, dsn, key = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
tenants = sys.argv[5].split(",")
apply_schema(dsn)
store = PostgresTokenStore(dsn, TokenCipher([SecretStr(key)]))
served = start_sandbox(platform, relaxed_limits=relaxed)
configs = {t: served.add_tenant(t, store).config.model_dump(mode="json") for t in tenants}
raw = served.sandbox.issue_tokens(served.tenants[tenants[0]].sandbox_tenant).access_token
print(json.dumps({"url": served.url, "tenants": configs, "raw_token": raw}), flush=True)
while True:
    time.sleep(3600)
"""


def serve_sandbox(platform: str, relaxed: bool, dsn: str, key: str, tenants: list[str]
                  ) -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, platform, "1" if relaxed else "0", dsn, key,
         ",".join(tenants)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def produce_invoices(bootstrap: str, registry_url: str, topic: str, tenants: list[str],
                     n: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 12, 1)])[topic].result(30)
    serialize = ledger_entry_serializer(registry_client(registry_url))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        tenant = tenants[i % len(tenants)]
        event = examples.sample_invoice_event(tenant=tenant, invoice_id=f"b{i}",
                                              customer_id=f"c{i % 50}")
        entry = examples.sample_ledger_entry(event)
        producer.produce(topic, key=f"{tenant}:c{i % 50}".encode(),
                         value=serialize(entry, SerializationContext(topic, MessageField.VALUE)))
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)


def counter(name: str, **labels: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def run_sink(platform: str, tenants: dict, topic_suffix: str, dsn: str, *,
             stop_after_docs: int | None = None, duration_s: float | None = None,
             lifted_limits: bool = False, concurrency: int = 8, coalesce: bool = False,
             batch_budget_s: float = 60.0, batch_size: int = 500) -> tuple[float, int]:
    endpoints = configured_endpoints()
    settings = SinkSettings(platform=platform,
                            kafka_bootstrap_servers=endpoints.kafka_bootstrap,
                            schema_registry_url=endpoints.schema_registry_url,
                            database_url=dsn, topic_suffix=topic_suffix, batch_size=batch_size,
                            concurrency=concurrency, coalesce=coalesce,
                            batch_time_budget_s=batch_budget_s)
    configs = {t: TenantConfig.model_validate({**c, "tenant_id": t}) for t, c in tenants.items()}
    # Against a sandbox whose limits were lifted, the sink is told so too (no windows,
    # 100 in flight, as the sandbox); otherwise it would pace itself at QBO's 500/min
    # and the "unthrottled" figure would measure its own limiter.
    runner = build_runner(settings, tenants=configs,
                          rate_limit=RateLimitPolicy(concurrency=100) if lifted_limits
                          else None)
    tune_gc(settings)  # as ``ledgerstream sink`` does
    started = time.monotonic()

    def done() -> bool:
        if duration_s is not None and time.monotonic() - started > duration_s:
            return True
        return stop_after_docs is not None and runner.processed >= stop_after_docs

    runner.run(until=done, max_idle_s=30)
    seconds = time.monotonic() - started
    coalescers = [t for t in getattr(runner.transport_for, "executors", {}).values()
                  if hasattr(t, "batches")]
    if coalescers:
        batches = sum(c.batches for c in coalescers)
        items = sum(c.items for c in coalescers)
        print(f"{platform}: {batches} batches carrying {items} requests "
              f"({items / max(batches, 1):.1f} each)")
    return seconds, runner.processed


def settle(below: float = 1.0, limit_s: float = 90.0) -> None:
    """Wait (at most ``limit_s``) until the 1-minute load average is under ``below``."""
    waited = 0.0
    while os.getloadavg()[0] >= below and waited < limit_s:
        time.sleep(5.0)
        waited += 5.0
    if waited:
        print(f"waited {waited:.0f}s for the machine to settle "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)


def raw_httpx(url_prefix: str, token: str, n: int, threads: int = 1) -> float:
    """Seconds for ``n`` customer creates, sequential or spread over ``threads``."""
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=threads))
    tag = uuid.uuid4().hex[:6]

    def post(i: int) -> None:
        client.post(f"{url_prefix}/customer", params={"minorversion": "75",
                                                        "requestid": str(uuid.uuid4())},
                    json={"DisplayName": f"Raw customer {tag} {i}"},
                    headers={"Authorization": f"Bearer {token}"}).raise_for_status()

    started = time.monotonic()
    if threads == 1:
        for i in range(n):
            post(i)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(post, range(n)))
    return time.monotonic() - started


class Sampler:
    """The API-call and 429 counters at the end of the warm-up and at the end of the
    run's duration (before the sink finishes its batch and shuts down), for the steady
    share."""

    def __init__(self, warmup_s: float, duration_s: float) -> None:
        self.at: tuple[float, float, float] | None = None
        self.end: tuple[float, float, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(warmup_s, duration_s),
                                        daemon=True)
        self._thread.start()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        return (time.monotonic(), counter("ledgerstream_sink_api_latency_seconds_count"),
                counter("ledgerstream_sink_api_429_total"))

    def _run(self, warmup_s: float, duration_s: float) -> None:
        if not self._stop.wait(warmup_s):
            self.at = self._sample()
        if not self._stop.wait(max(0.0, duration_s - warmup_s)):
            self.end = self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int | None = None) -> float:
    """User+system CPU seconds of this process, or of ``pid`` (from /proc; 0 for a
    process that has gone)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:  # gone (a PostgreSQL backend that ended): nothing to add
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ThreadCpu:
    """CPU seconds per thread name of this process over a run (from /proc, sampled
    every 0.1 s so threads that end before the run does are counted too)."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[str, float]] = {}
        self.first: dict[int, float] = {}
        self.system: dict[int, float] = {}  # tid -> system CPU seconds, last seen
        self.first_system: dict[int, float] = {}
        self._stop = threading.Event()
        self._sample()
        self.first = {tid: cpu for tid, (_, cpu) in self.last.items()}
        self.first_system = dict(self.system)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        python_names = {t.native_id: t.name for t in threading.enumerate()}
        for task in Path("/proc/self/task").iterdir():
            try:
                name, _, rest = (task / "stat").read_text().partition(" (")[2].rpartition(")")
                fields = rest.split()
                tid = int(task.name)
                name = python_names.get(tid) or self.last.get(tid, (name, 0.0))[0]
                self.last[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)
                self.system[tid] = int(fields[12]) / tick
            except (OSError, ValueError):
                continue

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample()
        by_name: dict[str, float] = {}
        for tid, (name, cpu) in self.last.items():
            group = name.rstrip("0123456789_")
            by_name[group] = by_name.get(group, 0.0) + cpu - self.first.get(tid, 0.0)
        by_name["(of all: system)"] = sum(cpu - self.first_system.get(tid, 0.0)
                                          for tid, cpu in self.system.items())
        return dict(sorted(by_name.items(), key=lambda item: -item[1]))


def start_profile(out: Path, gil: bool = True, pid: int | None = None
                  ) -> subprocess.Popen[bytes]:
    """py-spy sampling this process until :func:`stop_profile` (threads holding the GIL,
    or with ``gil=False`` every thread py-spy sees running); it does not pause the
    process to sample."""
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                            "--pid", str(pid or os.getpid()), *(["--gil"] if gil else []),
                            "--nonblocking",
                            "--rate", "250", "--format", "raw", "--output", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the run starts
    return spy


def stop_profile(spy: subprocess.Popen[bytes]) -> None:
    import signal

    spy.send_signal(signal.SIGINT)
    spy.wait(30)


def machine() -> str:
    mem = Path("/proc/meminfo").read_text().split()[1]
    ram = int(mem) / 1024 / 1024
    return f"nproc={os.cpu_count()}, RAM={ram:.1f} GiB, Python {sys.version.split()[0]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=8000)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--skip-throttled", action="store_true")
    parser.add_argument("--skip-unthrottled", action="store_true")
    parser.add_argument("--throttled", default="quickbooks-online,xero",
                        help="which throttled platforms to run")
    parser.add_argument("--batch-budget", type=float, default=60.0,
                        help="the sink's batch_time_budget_s (default as in production)")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="LEDGERSTREAM_SINK_CONCURRENCY (the sink's default is 8; 64 "
                             "lanes fill QuickBooks batches at high volume)")
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="the unthrottled sinks' batch_size (records per poll)")
    parser.add_argument("--modes", default="batch,single",
                        help="unthrottled sink runs: 'single' (one request per call), "
                             "'batch' (coalesced into /batch), or both")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not append to bench/RESULTS.md (trial runs)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="sample the unthrottled sink runs (only them) with py-spy "
                             "(GIL holder, raw collapsed stacks) into PREFIX-<run>.txt")
    parser.add_argument("--profile-running", action="store_true",
                        help="with --profile: sample every running thread, not only the "
                             "GIL holder")
    parser.add_argument("--threads", action="store_true",
                        help="print the sink's CPU per document by thread name")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="seconds of each throttled run left out of the steady share")
    args = parser.parse_args()
    endpoints = configured_endpoints()
    from sinks.transport.auth import generate_token_key

    key = generate_token_key()
    os.environ["LEDGERSTREAM_TRANSPORT_TOKEN_ENCRYPTION_KEY"] = key
    run = uuid.uuid4().hex[:8]
    db = f"bench_sink_{run}"
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    info = psycopg.conninfo.conninfo_to_dict(endpoints.database_url)
    info["dbname"] = db
    dsn = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v})
    lines = [f"\n## sink — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n",
             f"`bench/bench_sink.py --documents {args.documents} --duration {args.duration:g}"
             f" --concurrency {args.concurrency}`; machine: {machine()}; Kafka, registry,"
             f" PostgreSQL and the sandbox on the same machine (sandbox in its own process);"
             f" load average at start {os.getloadavg()[0]:.1f} (machine shared with other"
             f" jobs). The unthrottled sink is told the sandbox's lifted limits (no windows,"
             f" 100 in flight); each sink run uses a fresh sandbox and topic.\n"]
    procs = []
    try:
        # 1. unthrottled: the sink one-request-per-call, then coalescing into /batch
        # (each on a fresh sandbox and topic), then raw httpx against the first sandbox.
        n = args.documents
        rows = []
        first_sandbox: dict = {}
        modes = [] if args.skip_unthrottled else args.modes.split(",")
        # The headline mode first; before each, the machine settles: a run inherits the
        # previous one's background work (PostgreSQL vacuuming and checkpointing ~16k
        # rows of sync log and rate budget): batch right after single ran at 585-647
        # documents/s, alone at 1,013-1,077, after a 30 s pause at 866 (18:50-19:05 UTC).
        for coalesce in [mode == "batch" for mode in ("batch", "single") if mode in modes]:
            settle()
            tenants = [f"b{i}{'c' if coalesce else ''}" for i in range(1, 5)]
            proc, info_ = serve_sandbox("quickbooks-online", True, dsn, key, tenants)
            procs.append(proc)
            first_sandbox = first_sandbox or info_
            topics = Topics(suffix=f"benchu{'c' if coalesce else ''}{run}")
            produce_invoices(endpoints.kafka_bootstrap, endpoints.schema_registry_url,
                             topics.ledger_entries, tenants, n)
            calls_before = counter("ledgerstream_sink_api_latency_seconds_count")
            spy = None if args.profile is None else start_profile(
                Path(f"{args.profile}-{'batch' if coalesce else 'single'}.txt"),
                gil=not args.profile_running)
            box_spy = None if args.profile is None else start_profile(
                Path(f"{args.profile}-sandbox-{'batch' if coalesce else 'single'}.txt"),
                pid=proc.pid)
            threads = ThreadCpu() if args.threads else None
            cpu_sink, cpu_box = cpu_seconds(), cpu_seconds(proc.pid)
            seconds, docs = run_sink("quickbooks-online", info_["tenants"], topics.suffix,
                                     dsn, stop_after_docs=n, lifted_limits=True,
                                     concurrency=args.concurrency, coalesce=coalesce,
                                     batch_size=args.batch_size)
            calls = counter("ledgerstream_sink_api_latency_seconds_count") - calls_before
            cpu_sink, cpu_box = cpu_seconds() - cpu_sink, cpu_seconds(proc.pid) - cpu_box
            if spy is not None:
                stop_profile(spy)
            if box_spy is not None:
                stop_profile(box_spy)
            if threads is not None:
                print(f"CPU ms/doc by thread ({'batch' if coalesce else 'single'}): "
                      + ", ".join(f"{name} {1000 * cpu / docs:.2f}"
                                  for name, cpu in threads.stop().items() if cpu > 0))
            how = "requests coalesced into /batch" if coalesce else "one request per call"
            rows.append(f"| sink, bookkeeping included, concurrency {args.concurrency}, {how}"
                        f" ({calls:.0f} HTTP requests) | {docs} | {seconds:.1f} "
                        f"| {docs / seconds:,.0f} | {1000 * cpu_sink / docs:.1f} "
                        f"| {1000 * cpu_box / docs:.1f} | {os.getloadavg()[0]:.1f} |")
        if first_sandbox:
            settle()
            first = next(iter(first_sandbox["tenants"].values()))["connection"]["base_url"]
            raw_seconds = raw_httpx(first, first_sandbox["raw_token"], n)
            raw_par = raw_httpx(first, first_sandbox["raw_token"], n, args.concurrency)
        lines += [] if not first_sandbox else [
            "| unthrottled (QuickBooks sandbox, limits lifted) | documents | seconds | per s "
            "| sink CPU ms/doc | sandbox CPU ms/doc | load 1m |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            f"| raw httpx POSTs (1 request each), sequential | {n} | {raw_seconds:.1f} "
            f"| {n / raw_seconds:,.0f} | | | |",
            f"| raw httpx POSTs, {args.concurrency} threads | {n} | {raw_par:.1f} "
            f"| {n / raw_par:,.0f} | | | {os.getloadavg()[0]:.1f} |",
            ""]
        if not args.skip_throttled:
            lines += ["| throttled | limit (req/min) | achieved (req/min) | share | 429s "
                      f"| after {args.warmup:g} s warm-up: req/min | share | 429s | load 1m |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            limits = {"quickbooks-online": 500, "xero": 60}
            for platform in args.throttled.split(","):
                limit = limits[platform]
                proc, info_ = serve_sandbox(platform, False, dsn, key, ["r1"])
                procs.append(proc)
                topics = Topics(suffix=f"bencht{platform[:4]}{run}")
                work = int(limit * args.duration / 60 * 2)
                produce_invoices(endpoints.kafka_bootstrap, endpoints.schema_registry_url,
                                 topics.ledger_entries, ["r1"], work)
                calls_before = counter("ledgerstream_sink_api_latency_seconds_count")
                throttled_before = counter("ledgerstream_sink_api_429_total")
                sampler = Sampler(args.warmup, args.duration)
                seconds, _ = run_sink(platform, info_["tenants"], topics.suffix, dsn,
                                      duration_s=args.duration, concurrency=args.concurrency,
                                      batch_budget_s=args.batch_budget)
                sampler.stop()
                ended = time.monotonic()
                calls_now = counter("ledgerstream_sink_api_latency_seconds_count")
                throttled_now = counter("ledgerstream_sink_api_429_total")
                calls = calls_now - calls_before
                throttled = throttled_now - throttled_before
                achieved = calls / seconds * 60
                steady = "| | |"
                if sampler.at is not None:
                    at, calls_at, throttled_at = sampler.at
                    end, calls_end, throttled_end = sampler.end or (ended, calls_now,
                                                                    throttled_now)
                    rate = (calls_end - calls_at) / (end - at) * 60
                    steady = (f"| {rate:.1f} | {rate / limit:.1%} "
                              f"| {throttled_end - throttled_at:.0f}")
                lines.append(f"| {platform} | {limit} | {achieved:.1f} | {achieved / limit:.0%} "
                             f"| {throttled:.0f} {steady} | {os.getloadavg()[0]:.1f} |")
            lines.append("\nThe first share is over the whole run, including the sink's"
                         " start (group join, customer look-ups) and its stop (finishing the"
                         " batch, leaving the group); the second is from the end of the"
                         " warm-up to the end of the duration. Short windows are paced, so no"
                         " rolling minute can exceed the limit.")
    finally:
        for proc in procs:
            proc.kill()
    text = "\n".join(lines) + "\n"
    print(text)
    if args.no_record:
        return
    with open(ROOT / "bench" / "RESULTS.md", "a") as out:
        out.write(text)


if __name__ == "__main__":
    main()
