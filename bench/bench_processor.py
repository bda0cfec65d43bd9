"""Benchmark of one processor worker (run by hand, against the real broker/registry).

    KAFKA_BOOTSTRAP_SERVERS=... SCHEMA_REGISTRY_URL=... \\
        .venv/bin/python bench/bench_processor.py --documents 30000 --customers 2000

What it measures, in one run over the same input topic:

1. a raw aiokafka consume of ``crm.financial-events`` (read_committed, no decoding):
   the ceiling the broker and the Python client allow;
2. ``python -m stream_processors`` with ``exactly_once``, then with ``at_least_once``
   (each its own app id, so each starts from offset 0): events/s from the first
   committed progress until the group has committed everything, the time including
   start-up and the worker's peak RSS.

Results are printed and appended to ``bench/RESULTS.md`` under a "stream processor"
heading (other benchmarks keep their own sections).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer  # noqa: E402

from schemas.examples import sample_tax_rate_event  # noqa: E402
from schemas.models import AggregateType  # noqa: E402
from schemas.topics import Topics  # noqa: E402
from tests.stream_processors.support import (  # noqa: E402
    EventWriter,
    build_workload,
    committed_lag,
    create_topics,
    delete_topics,
    send_workload,
)

RESULTS = ROOT / "bench" / "RESULTS.md"


# The worker under cProfile with the main thread's CPU clock (time.thread_time): a
# wall-clock profile on a loaded machine charges other processes' time to whatever
# call was preempted (loopback socket sends above all).
_PROFILED = (
    "import cProfile, runpy, sys, time\n"
    "sys.argv = sys.argv[sys.argv.index('stream_processors'):]\n"
    "profiler = cProfile.Profile(time.thread_time)\n"
    "try:\n"
    "    profiler.runcall(runpy.run_module, 'stream_processors', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "finally:\n"
    "    profiler.dump_stats('{out}')\n"
)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process: under a loaded machine, events per
    CPU-second of the worker is steadier than events per wall-second."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def total_ram_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


async def raw_consume(bootstrap: str, topic: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench.raw.{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest", enable_auto_commit=False,
        isolation_level="read_committed", max_poll_records=2000)
    await consumer.start()
    try:
        seen = 0
        started = None
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batch.values():
                if started is None:
                    started = time.perf_counter()
                seen += len(records)
        assert started is not None
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def run_worker(bootstrap: str, registry: str, names: Topics, guarantee: str, data: Path,
               expected_inputs: list[str], timeout: float, profile: Path | None = None,
               extra: list[str] | None = None,
               feed: Callable[[], object] | None = None) -> dict[str, float]:
    """Run one worker until its group has committed every input record.

    With ``feed``, the worker first catches up with what is already on the topics
    (customers, tax rates), then ``feed()`` produces the documents and only their
    processing is measured: customers known before their documents, as in live
    operation. Without it, everything is on the topics before the worker starts."""
    app_id = f"{names.processor_app_id}.{guarantee}"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "SCHEMA_REGISTRY_URL": registry}
    log = (data / f"{guarantee}.log").open("wb")
    started = time.perf_counter()
    prefix = [sys.executable]
    if profile is not None:  # cProfile of the worker's event loop, in CPU time
        prefix += ["-c", _PROFILED.format(out=profile / f"{guarantee}.prof")]
    proc = subprocess.Popen(
        [*prefix, "-m", "stream_processors", "--topic-suffix", names.suffix,
         "--app-id", app_id, "--data-dir", str(data / guarantee),
         "--processing-guarantee", guarantee, "--log-level", "warn", *(extra or [])],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    first_progress = None
    cpu_at_first = cpu_done = 0.0
    peak_rss = 0.0
    total = None
    try:
        if feed is not None:
            # the customers are on the topic: the lag is 0 only once they are committed
            while committed_lag(bootstrap, app_id, expected_inputs) > 0:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited {proc.returncode}, see {log.name}")
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"{guarantee}: customers not consumed in {timeout}s")
                time.sleep(0.25)
            started = time.perf_counter()
            feed()
        total = committed_lag(bootstrap, app_id, expected_inputs)
        while time.perf_counter() - started < timeout:
            time.sleep(0.25)
            peak_rss = max(peak_rss, rss_mb(proc.pid))
            lag = committed_lag(bootstrap, app_id, expected_inputs)
            if first_progress is None and lag < total:
                first_progress = (time.perf_counter(), total - lag)
                cpu_at_first = cpu_seconds(proc.pid)
            if lag == 0:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited {proc.returncode}, see {log.name}")
        else:
            raise RuntimeError(f"{guarantee}: not done within {timeout}s")
        done = time.perf_counter()
        cpu_done = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    assert first_progress is not None and total
    t0, done_at_first = first_progress
    return {
        "events_per_s": (total - done_at_first) / max(done - t0, 1e-9),
        "events_per_cpu_s": (total - done_at_first) / max(cpu_done - cpu_at_first, 1e-9),
        "events_per_s_incl_startup": total / (done - started),
        "seconds": done - started,
        "peak_rss_mb": peak_rss,
        "events": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=30000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--guarantees", default="exactly_once,at_least_once",
                        help="comma-separated processing guarantees to run, in order")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a cProfile of each worker to DIR/<guarantee>.prof "
                             "(slows the worker; the figures are then not recorded)")
    parser.add_argument("--no-record", action="store_true",
                        help="print the figures without appending them to RESULTS.md")
    parser.add_argument("--customers-first", action="store_true",
                        help="live order: each worker first consumes the customers, then "
                             "the documents are produced and measured (default: all on the "
                             "topics before the worker starts, most documents parked until "
                             "their customer is read)")
    parser.add_argument("--worker-arg", action="append", default=[],
                        help="extra flag for the worker, e.g. --worker-arg=--max-poll-records=2000")
    args = parser.parse_args()
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    registry = os.environ["SCHEMA_REGISTRY_URL"]
    names = Topics(suffix=f"bench{uuid.uuid4().hex[:6]}")
    create_topics(bootstrap, names)
    data = Path(f"/tmp/ledgerstream-bench-{names.suffix}")
    data.mkdir(parents=True)
    try:
        writer = EventWriter(bootstrap, registry, names)
        writer.send(sample_tax_rate_event())
        events = build_workload(seed=1, customers=args.customers, documents=args.documents)
        customers = [e for e in events if e.aggregate_type is AggregateType.CUSTOMER]
        documents = [e for e in events if e.aggregate_type is not AggregateType.CUSTOMER]
        customer_of: dict[str, str] = {}
        t = time.perf_counter()
        send_workload(writer, customers if args.customers_first else events, customer_of)
        writer.flush()
        print(f"produced {len(customers) if args.customers_first else len(events)} events "
              f"in {time.perf_counter() - t:.1f}s")
        inputs = [names.crm_financial_events, names.crm_customers]
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        guarantees = args.guarantees.split(",")
        def feed() -> None:
            """The documents, produced once the worker has consumed the customers."""
            send_workload(writer, documents, customer_of)
            writer.flush()

        if args.customers_first and len(guarantees) > 1:
            parser.error("--customers-first measures one guarantee per run")
        results = {g: run_worker(bootstrap, registry, names, g, data, inputs, args.timeout,
                                 args.profile, args.worker_arg,
                                 feed if args.customers_first else None)
                   for g in guarantees}
        raw = asyncio.run(raw_consume(bootstrap, names.crm_financial_events, len(documents)))
        print(f"raw aiokafka consume: {raw:,.0f} records/s")
        for g, r in results.items():
            print(f"{g}: {r['events_per_s']:,.0f} events/s steady "
                  f"({r['events_per_cpu_s']:,.0f} per CPU-second of the worker), "
                  f"{r['events_per_s_incl_startup']:,.0f} incl. start-up, "
                  f"{r['seconds']:.1f}s, peak RSS {r['peak_rss_mb']:.0f} MB")
        print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
        if not (args.no_record or args.profile):
            append_results(args, len(documents) if args.customers_first else len(events),
                           raw, results)
    finally:
        if not args.keep_topics:
            delete_topics(bootstrap, names, names.processor_app_id)


def append_results(args: argparse.Namespace, n: int, raw: float,
                   results: dict[str, dict[str, float]]) -> None:
    header = "# Benchmark results\n\nEach benchmark appends its own section.\n"
    if not RESULTS.exists():
        RESULTS.write_text(header)
    lines = [
        "",
        f"## stream processor — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`bench/bench_processor.py --documents {args.documents} --customers "
        f"{args.customers}{' --customers-first' if args.customers_first else ''}`: "
        + (f"{n} document events measured after the worker consumed the {args.customers} "
           "customers (live order), " if args.customers_first else
           f"{n} input events ({args.customers} customers + documents, all on the topics "
           "before the worker starts; most documents wait for their customer), ")
        + "incl. ~7 % duplicates/stale, one worker, 12 partitions; "
        f"machine: `nproc`={os.cpu_count()}, RAM {total_ram_gb():.0f} GB, "
        f"Python {platform.python_version()}, faust-streaming 0.15.3, aiokafka, Kafka 4.1.",
        "",
        "| run | events/s (steady) | events per worker CPU-s | events/s incl. start-up "
        "| wall s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
        f"| raw aiokafka consume (no decode) | {raw:,.0f} | | | | |",
    ]
    for g, r in results.items():
        lines.append(f"| worker, {g} | {r['events_per_s']:,.0f} | "
                     f"{r['events_per_cpu_s']:,.0f} | "
                     f"{r['events_per_s_incl_startup']:,.0f} | {r['seconds']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} |")
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
