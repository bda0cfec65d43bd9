"""The whole benchmark suite in one command (run by hand, never in CI):

    .venv/bin/python bench/run_all.py            # or: make bench

Brings the local stack up if no endpoints are configured, writes a header section to
bench/RESULTS.md (date, commit, machine: cores, RAM, CPU model, load average), then
runs, one after another so they do not share the cores, each benchmark with its
baseline measured in the same run:

1. relay (PostgreSQL outbox -> Kafka) vs raw confluent-kafka produce;
2. stream processor (exactly_once and at_least_once) vs raw aiokafka consume, with
   every record on the topics before the worker starts (most documents wait for
   their customer), then in live order (customers consumed first);
3. sink (bookkeeping included) vs raw httpx to the same sandbox, and the share of the
   allowed rate used against throttled sandboxes, with the 429s received;
4. end to end at a sustained CRM rate: latency from CRM commit to the platform write,
   and the RSS of every service.

Each benchmark appends its own section; a failing one is recorded and the rest still
run. ``--quick`` uses small sizes (a smoke run of the suite itself).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"

FULL: list[tuple[str, list[str]]] = [
    ("relay", ["bench/bench_relay.py"]),
    ("processor", ["bench/bench_processor.py"]),
    ("processor, live order", ["bench/bench_processor.py", "--customers-first",
                               "--guarantees", "exactly_once"]),
    ("processor, live order", ["bench/bench_processor.py", "--customers-first",
                               "--guarantees", "at_least_once"]),
    ("sink", ["bench/bench_sink.py"]),
    ("end to end", ["bench/bench_e2e.py", "--rate", "500", "--duration", "60"]),
]
QUICK: list[tuple[str, list[str]]] = [
    ("relay", ["bench/bench_relay.py", "--events", "5000", "--relays", "1"]),
    ("processor", ["bench/bench_processor.py", "--documents", "1000", "--customers", "100"]),
    ("sink", ["bench/bench_sink.py", "--documents", "100", "--duration", "30"]),
    ("end to end", ["bench/bench_e2e.py", "--rate", "50", "--duration", "15",
                    "--tenants", "8", "--simulators", "2", "--warmup", "3"]),
]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def header(selected: list[str]) -> str:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        mem_kb = next(int(line.split()[1]) for line in meminfo
                      if line.startswith("MemTotal:"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        load = loadavg.read().split()[0]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"\n# Suite run — {now}, commit {commit}\n\n"
            f"Machine: {os.cpu_count()} cores ({cpu_model()}), "
            f"{mem_kb / 1024 / 1024:.1f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {sys.version.split()[0]}; 1-minute load average "
            f"at start {load}. Benchmarks: {', '.join(selected)} (sections below, in order).\n")


def ensure_endpoints() -> None:
    """Use the configured endpoints, or start the local stack and export its own."""
    from ledgerstream.endpoints import configured_endpoints

    if all(os.environ.get(k) for k in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL",
                                       "DATABASE_URL")):
        return
    subprocess.run([str(ROOT / ".venv" / "bin" / "ledgerstream"), "up"], cwd=ROOT,
                   check=True)
    os.environ.update(configured_endpoints().as_env())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", action="append", help="relay, processor, sink, end to end")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    plan = [(name, argv) for name, argv in (QUICK if args.quick else FULL)
            if not args.only or name in args.only]
    ensure_endpoints()
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(header([name for name, _ in plan]))
    failed = []
    for name, argv in plan:
        started = time.monotonic()
        print(f"== {name}: {' '.join(argv)}", flush=True)
        code = subprocess.run([sys.executable, *argv], cwd=ROOT).returncode
        seconds = time.monotonic() - started
        print(f"== {name}: exit {code} after {seconds:.0f}s", flush=True)
        if code != 0:
            failed.append(name)
            with RESULTS.open("a", encoding="utf-8") as out:
                out.write(f"\n**{name} benchmark failed (exit {code}) after {seconds:.0f}s; "
                          "see its output.**\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
