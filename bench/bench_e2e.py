"""End-to-end benchmark (run by hand): latency from CRM commit to the platform write at a
sustained CRM rate, and the memory (RSS) of every service meanwhile.

The whole pipeline runs as in the demo (``ledgerstream.pipeline.Pipeline``: relay,
stream processor and one sink per platform as real processes; sandboxes served by this
process with their per-tenant limits lifted, the sinks keeping the platforms' own),
while ``--simulators`` CRM simulator processes write disjoint shops into the CRM
database, paced together at ``--rate`` events/s for about ``--duration`` seconds.

Latency of an event = a time on its sink sync-log row minus the event's ``occurred_at``
(the CRM transaction's own clock): ``written_at`` is when the platform answered the
record's last request (the closest to "CRM commit to platform request" we can take),
``created_at`` when the batch's bookkeeping transaction started (after every lane of
the batch finished). The share up to ``ledger.entries`` (relay + processor) is reported
beside it, and the sink's own stage histograms (scraped from its /metrics) after it. "steady"
leaves out the first ``--warmup`` seconds of CRM activity.

    .venv/bin/python bench/bench_e2e.py --rate 500 --duration 60

Needs the three endpoint variables (or ``ledgerstream up``). Appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_sink import cpu_seconds  # noqa: E402
from ledgerstream.endpoints import configured_endpoints  # noqa: E402
from ledgerstream.pipeline import Pipeline, PipelineConfig, Progress  # noqa: E402
from producers.simulator import SimulationConfig, SimulationResult  # noqa: E402
from schemas.models import FinancialEvent  # noqa: E402

#: Mean CRM events per repair job in the simulator (measured over seeds 1-5: 4.4-4.6).
EVENTS_PER_JOB = 4.5


def simulate_share(dsn: str, cfg: SimulationConfig, out_path: str) -> None:
    """One simulator process: write its shops, then save the events for the check."""
    from producers.simulator import simulate_day

    result = simulate_day(dsn, cfg)
    with open(out_path, "w", encoding="utf-8") as out:
        for event in result.events:
            out.write(event.model_dump_json() + "\n")


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Peak and mean RSS of each named process, sampled every ``interval_s``."""

    def __init__(self, pids: dict[str, int], interval_s: float = 1.0) -> None:
        self.pids, self.interval_s = pids, interval_s
        self.samples: dict[str, list[float]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                value = rss_mb(pid)
                if value is not None:
                    self.samples[name].append(value)
            self._stop.wait(self.interval_s)

    def stop(self) -> dict[str, tuple[float, float]]:
        self._stop.set()
        self._thread.join(5)
        return {name: (max(v), statistics.fmean(v)) for name, v in self.samples.items() if v}


def infra_pids() -> dict[str, list[int]]:
    """The stack's own processes, by what they run: Kafka, the registry, PostgreSQL."""
    found: dict[str, list[int]] = {"Kafka": [], "registry": [], "PostgreSQL": []}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline:
            found["Kafka"].append(int(entry))
        elif b"quarkus-run.jar" in cmdline:
            found["registry"].append(int(entry))
        elif cmdline.startswith(b"postgres"):
            found["PostgreSQL"].append(int(entry))
    return found


class CpuMeter:
    """CPU seconds each process spent between ``start`` and ``stop``, beside the whole
    machine's busy time: where the cores went at the asked rate."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.before = {name: self._sum(ps) for name, ps in pids.items()}
        self.machine_before = self._machine()
        self.wall = time.monotonic()

    @staticmethod
    def _sum(pids: list[int]) -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    @staticmethod
    def _machine() -> float:
        """Core-seconds the whole machine was busy (not idle, not waiting on I/O)."""
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")

    def stop(self, extra: dict[str, float]) -> tuple[dict[str, float], float, float]:
        """(CPU s per name, machine busy core-seconds, wall s)."""
        used = {name: self._sum(ps) - self.before[name] for name, ps in self.pids.items()}
        used.update(extra)
        return used, self._machine() - self.machine_before, time.monotonic() - self.wall


def steady_latencies(pipeline: Pipeline, since: datetime
                     ) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """Latencies (ms) of the events that occurred at or after ``since``: to the sync-log
    row's ``created_at`` (the bookkeeping commit), to its ``written_at`` (the platform's
    answer, taken by the sink when the write returned), and the latter per aggregate
    type."""
    import psycopg

    assert pipeline.reader is not None
    entries, _ = pipeline.reader.snapshot()
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tenant_id, event_id, created_at, written_at, aggregate_type "
            "FROM sink_sync_log WHERE status IN ('applied', 'already_applied')").fetchall()
    committed, written = [], []
    by_type: dict[str, list[float]] = {}
    for tenant, event_id, created_at, written_at, aggregate_type in rows:
        occurred = entries.get((str(tenant), str(event_id)))
        if occurred is not None and occurred >= since:
            committed.append((created_at - occurred).total_seconds() * 1000)
            if written_at is not None:
                ms = (written_at - occurred).total_seconds() * 1000
                written.append(ms)
                kind = str(aggregate_type).rsplit(".", 1)[-1]
                by_type.setdefault(kind, []).append(ms)
    return committed, written, by_type


#: Sink metrics summarised after the run: (label, metric family, label filter).
SINK_HISTOGRAMS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("batch: plan (paused tenants, decode, replay check, id prefetch)",
     "ledgerstream_sink_batch_stage_seconds", {"stage": "plan"}),
    ("batch: lanes (platform writes; the slowest lane sets it)",
     "ledgerstream_sink_batch_stage_seconds", {"stage": "lanes"}),
    ("batch: commit (dead letters, bookkeeping transaction)",
     "ledgerstream_sink_batch_stage_seconds", {"stage": "commit"}),
    ("one document's write (all its requests)", "ledgerstream_sink_write_seconds", {}),
    ("request: wait for slot and rate budget", "ledgerstream_sink_rate_wait_seconds", {}),
    ("request: HTTP round-trip", "ledgerstream_sink_api_latency_seconds", {}),
)


def scrape_sink(port: int) -> list[tuple[str, int, float, float | None]]:
    """(label, count, mean ms, share of observations over 100 ms) per histogram."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    out = []
    for label, name, want in SINK_HISTOGRAMS:
        family = families.get(name)
        count = total = over = 0.0
        for sample in family.samples if family is not None else ():
            if any(sample.labels.get(k) != v for k, v in want.items()):
                continue
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_bucket") and sample.labels.get("le") == "0.1":
                over -= sample.value
        over += count
        out.append((label, int(count), total / count * 1000 if count else 0.0,
                    over / count if count else None))
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quantile(data: list[float], q: float) -> float | None:
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    cuts = statistics.quantiles(sorted(data), n=1000, method="inclusive")
    return cuts[max(0, min(998, round(q * 1000) - 1))]


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def load_average() -> str:
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        return loadavg.read().split()[0]


def machine() -> str:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        mem_kb = next(int(line.split()[1]) for line in meminfo
                      if line.startswith("MemTotal:"))
    return (f"nproc={os.cpu_count()}, RAM={mem_kb / 1024 / 1024:.1f} GiB, "
            f"Python {sys.version.split()[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="CRM events per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of CRM activity")
    parser.add_argument("--tenants", type=int, default=200,
                        help="enough that no tenant needs more than its platform allows")
    parser.add_argument("--customers", type=int, default=8, help="per tenant")
    parser.add_argument("--simulators", type=int, default=4, help="CRM writer processes")
    parser.add_argument("--platform", action="append", dest="platforms",
                        help="default: quickbooks-online (500 calls/min per company)")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--commit-interval", type=float, default=0.1,
                        help="processor commit interval (s): EOS output is visible only "
                             "after the transaction commits")
    parser.add_argument("--sink-concurrency", type=int, default=32,
                        help="lanes per sink (LEDGERSTREAM_SINK_CONCURRENCY)")
    parser.add_argument("--sink-batch", type=int, default=100,
                        help="records per bookkeeping transaction: smaller is lower latency")
    parser.add_argument("--sink-poll", type=float, default=None,
                        help="LEDGERSTREAM_SINK_POLL_TIMEOUT_S (default: the sink's)")
    parser.add_argument("--keep-logs", type=Path, default=None,
                        help="keep the services' logs (and tenants file) in this directory")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    platforms = tuple(args.platforms or ("quickbooks-online",))
    if args.tenants % args.simulators:
        parser.error("--tenants must be a multiple of --simulators")
    setup_events = 2 + args.customers
    jobs = max(1, math.ceil((args.rate * args.duration / args.tenants - setup_events)
                            / EVENTS_PER_JOB))

    metrics_ports = {p: free_port() for p in platforms}
    sink_env: dict[str, dict[str, str]] = {}
    for p in platforms:
        sink_env[p] = {"LEDGERSTREAM_SINK_CONCURRENCY": str(args.sink_concurrency),
                       "LEDGERSTREAM_SINK_BATCH_SIZE": str(args.sink_batch),
                       "LEDGERSTREAM_SINK_METRICS_PORT": str(metrics_ports[p])}
        if args.sink_poll is not None:
            sink_env[p]["LEDGERSTREAM_SINK_POLL_TIMEOUT_S"] = str(args.sink_poll)
    config = PipelineConfig(
        endpoints=configured_endpoints(), tenants=args.tenants, jobs_per_tenant=jobs,
        customers_per_tenant=args.customers, seed=2026, platforms=platforms,
        relaxed_sandbox_limits=True, timeout_s=max(600.0, args.duration * 6),
        processor_commit_interval_s=args.commit_interval, workdir=args.keep_logs,
        sink_env=sink_env)
    last_print = [0.0]

    def show(p: Progress) -> None:
        if time.monotonic() - last_print[0] >= 5 or p.phase != "streaming":
            last_print[0] = time.monotonic()
            written = sum(p.written.values())
            print(f"[{p.elapsed_s:6.0f}s] {p.phase}: outbox pending {p.outbox_pending}, "
                  f"ledger entries {p.entries}, written {written}/{sum(p.expected.values())}",
                  flush=True)

    pipeline = Pipeline(config, progress=show)
    workdir = pipeline.workdir
    print(f"{args.tenants} tenants on {platforms}, {jobs} jobs each, "
          f"{args.simulators} simulators at {args.rate:.0f} events/s in all", flush=True)
    try:
        pipeline.prepare()
        pipeline.start_services()
        pipeline.wait_ready()
        pids = {name: s.proc.pid for name, s in pipeline.services.items() if s.proc}
        pids["bench process (sandboxes, reader)"] = os.getpid()
        sampler = RssSampler(pids)
        cpu_pids = {name: [pid] for name, pid in pids.items()}
        cpu_pids.update(infra_pids())
        meter = CpuMeter(cpu_pids)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = load_average()
        ctx = mp.get_context("spawn")
        share = args.tenants // args.simulators
        outputs = [str(workdir / f"sim-{n}.jsonl") for n in range(args.simulators)]
        procs = [ctx.Process(target=simulate_share, args=(pipeline.dsn, SimulationConfig(
            tenants=share, customers_per_tenant=args.customers, jobs_per_tenant=jobs,
            seed=2026 + n, rate=args.rate / args.simulators, first_tenant=1 + n * share),
            outputs[n])) for n in range(args.simulators)]
        started = time.monotonic()
        crm_started = datetime.now(UTC)
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
            if proc.exitcode != 0:
                raise RuntimeError(f"a simulator failed with exit code {proc.exitcode}")
        crm_seconds = time.monotonic() - started
        events = [FinancialEvent.model_validate_json(line) for path in outputs
                  for line in Path(path).read_text(encoding="utf-8").splitlines()]
        pipeline.simulation = SimulationResult(events=events)
        pipeline.state.produced = len(events)
        pipeline.wait_until_synced()
        load_after = load_average()
        rss = sampler.stop()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, busy, wall = meter.stop({"CRM simulators (all)": (
            children.ru_utime + children.ru_stime
            - children_before.ru_utime - children_before.ru_stime)})
        stages = {p: scrape_sink(port) for p, port in metrics_ports.items()}
        result = pipeline.verify()
        steady_from = crm_started + timedelta(seconds=args.warmup)
        steady, steady_written, by_type = steady_latencies(pipeline, steady_from)
    finally:
        pipeline.close()

    crm_rate = len(events) / crm_seconds
    e2e = result.latencies_ms
    steady_events = sum(1 for e in events if e.occurred_at >= steady_from)
    rows = [
        ("CRM commit -> sink bookkeeping commit (sync log created_at), all events", e2e),
        (f"CRM commit -> sink bookkeeping commit, steady (after {args.warmup:.0f}s)", steady),
        (f"CRM commit -> platform answered (sync log written_at), steady (after "
         f"{args.warmup:.0f}s)", steady_written),
        ("CRM commit -> ledger.entries (relay + processor), all",
         result.processor_latencies_ms),
    ]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## end to end — {now}",
        "",
        f"`bench/bench_e2e.py --rate {args.rate:.0f} --duration {args.duration:.0f} "
        f"--tenants {args.tenants} --simulators {args.simulators}"
        f"{'' if args.warmup == 10 else f' --warmup {args.warmup:g}'}`; platforms "
        f"{', '.join(platforms)} (sandboxes with per-tenant limits lifted, sinks keeping "
        f"the platforms' own); processor commit interval {args.commit_interval}s; sink "
        f"concurrency {args.sink_concurrency}, batch {args.sink_batch}"
        f"{'' if args.sink_poll is None else f', poll {args.sink_poll}s'}; "
        f"machine: {machine()}; Kafka, registry, PostgreSQL, sandboxes and simulators "
        "on the same machine.",
        "",
        f"CRM events written: {len(events):,} in {crm_seconds:.1f}s = **{crm_rate:,.0f} "
        f"events/s achieved** (asked {args.rate:.0f}; {steady_events:,} after warm-up); "
        f"ledger entries {result.ledger_entries:,}; duplicates {result.duplicates}, "
        f"missing {result.missing}, unprocessed {result.unprocessed_events}, dead letters "
        f"{len(result.dead_letters)}; whole run {result.duration_s:.0f}s.",
        "",
        "| latency | events | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, data in rows:
        lines.append(f"| {label} | {len(data):,} | {fmt(quantile(data, 0.50))} | "
                     f"{fmt(quantile(data, 0.99))} | {fmt(max(data) if data else None)} |")
    lines += ["", "| to platform answered (written_at), steady, by aggregate | events | p50 ms "
              "| p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for kind, data in sorted(by_type.items()):
        lines.append(f"| {kind} | {len(data):,} | {fmt(quantile(data, 0.50))} | "
                     f"{fmt(quantile(data, 0.99))} | {fmt(max(data))} |")
    for platform, stage_rows in stages.items():
        lines += ["", f"| sink:{platform} (its /metrics) | count | mean ms | share > 100 ms |",
                  "|---|---:|---:|---:|"]
        for label, count, mean_ms, over in stage_rows:
            share = "n/a" if over is None else f"{over:.0%}"
            lines.append(f"| {label} | {count:,} | {mean_ms:,.1f} | {share} |")
    lines += ["", "| process | peak RSS MB | mean RSS MB |", "|---|---:|---:|"]
    for name, (peak, mean) in sorted(rss.items()):
        lines.append(f"| {name} | {peak:,.0f} | {mean:,.0f} |")
    lines += ["", f"| CPU from the CRM's start to the last write ({wall:.0f}s wall) | CPU s | "
              "cores busy | ms per CRM event |", "|---|---:|---:|---:|"]
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {seconds:,.1f} | {seconds / wall:.2f} | "
                     f"{seconds / max(1, len(events)) * 1000:.2f} |")
    lines.append(f"| whole machine (all processes) | {busy:,.1f} | {busy / wall:.2f} | "
                 f"{busy / max(1, len(events)) * 1000:.2f} |")
    lines += ["", f"1-minute load average before/after: {load_before} / {load_after}", ""]
    text = "\n".join(lines)
    print(text)
    with args.results.open("a", encoding="utf-8") as out:
        out.write("\n" + text + "\n")
    summary = {"crm_rate": crm_rate, "p50_ms": quantile(steady, 0.5),
               "p99_ms": quantile(steady, 0.99),
               "written_p50_ms": quantile(steady_written, 0.5),
               "written_p99_ms": quantile(steady_written, 0.99),
               "rss_peak_mb": {k: v[0] for k, v in rss.items()}, "ok": result.ok}
    print(json.dumps(summary))
    return 0 if result.duplicates == 0 and result.missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
