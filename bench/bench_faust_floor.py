"""The faust framework's own floor on this machine: events/s of an agent that does no
business work (run by hand, against the real broker).

    KAFKA_BOOTSTRAP_SERVERS=... .venv/bin/python bench/bench_faust_floor.py --events 60000

Why: the processor's target (issue #4) is a figure per worker; this says how much of
a worker's CPU faust-streaming + aiokafka spend before any of our code runs. Each
mode runs its own faust worker (same settings as ``stream_processors.app``:
exactly_once, 12 partitions, raw serializers, acks=all) over the same pre-filled
topic of 300-byte records, in a subprocess, and reports events/s and CPU per event
from its first record to its last:

* ``iterate``: ``stream.events()``, nothing else;
* ``send``: one output record per event through the input partition's transactional
  producer (what the processor does for ``ledger.entries``);
* ``send_table``: the same plus one changelogged table write per event;
* ``batch_send`` / ``batch_send_table``: the same two, iterating ``take_events``
  (the processor's batches).

Results are printed and appended to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import uuid
import weakref
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
MODES = ("iterate", "send", "send_table", "batch_send", "batch_send_table")


def fill(bootstrap: str, topic: str, output: str, events: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 12, 1),
                                       NewTopic(output, 12, 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    value = os.urandom(300)
    for i in range(events):
        producer.produce(topic, key=f"t{i % 50}:c{i % 2000}".encode(), value=value)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush()


def worker(bootstrap: str, topic: str, output: str, mode: str, events: int) -> None:
    """One faust worker; prints ``RESULT <events/s> <cpu us/event>`` and exits."""
    import logging

    import faust
    from faust.streams import _current_event

    app = faust.App(
        f"floor-{mode}-{uuid.uuid4().hex[:6]}", broker=f"kafka://{bootstrap}",
        processing_guarantee="exactly_once", store="memory://", web_enabled=False,
        topic_partitions=12, key_serializer="raw", value_serializer="raw",
        producer_acks=-1, consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0, producer_linger=0.01,
        datadir=f"/tmp/ledgerstream-bench-floor-{mode}")
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    table = app.Table("rows", partitions=12, key_type=bytes, value_type=bytes)
    seen = {"n": 0}
    clock: dict[str, float] = {}

    def transactional_id(msg: faust.types.Message) -> str:
        return f"{app.conf.id}-{app.assignor.group_for_topic(msg.topic)}-{msg.partition}"

    def count(n: int) -> None:
        if not clock:
            clock["wall"], clock["cpu"] = time.perf_counter(), time.process_time()
        seen["n"] += n
        if seen["n"] >= events:
            wall = time.perf_counter() - clock["wall"]
            cpu = time.process_time() - clock["cpu"]
            print(f"RESULT {events / wall:.0f} {cpu / events * 1e6:.0f}", flush=True)
            os._exit(0)

    async def handle(event: faust.types.EventT) -> None:
        msg = event.message
        if mode.endswith("table"):
            table[msg.key] = msg.value
        await app.producer.send(output, msg.key, msg.value, None, None, None,
                                transactional_id=transactional_id(msg))

    @app.agent(source)
    async def agent(stream: faust.StreamT) -> None:
        for name in ("", "faust", "aiokafka", "mode"):  # no debug records built
            logging.getLogger(name).setLevel(logging.WARNING)
        if mode == "iterate":
            async for _ in stream.events():
                count(1)
        elif mode.startswith("batch"):
            async for batch in stream.take_events(500, within=0.005):
                for event in batch:
                    _current_event.set(weakref.ref(event))
                    await handle(event)
                count(len(batch))
        else:
            async for event in stream.events():
                await handle(event)
                count(1)

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    if args.worker:
        topic, output, mode, n = args.worker
        worker(bootstrap, topic, output, mode, int(n))
        return
    suffix = uuid.uuid4().hex[:6]
    topic, output = f"bench-floor-in-{suffix}", f"bench-floor-out-{suffix}"
    fill(bootstrap, topic, output, args.events)
    results: dict[str, tuple[float, float]] = {}
    for mode in args.modes.split(","):
        done = subprocess.run(
            [sys.executable, __file__, "--worker", topic, output, mode, str(args.events)],
            capture_output=True, text=True, timeout=900, cwd=ROOT)
        # faust routes a worker's stdout through its logger: find the marker anywhere
        line = next((x[x.index("RESULT"):] for x in (done.stdout + done.stderr).splitlines()
                     if "RESULT" in x), None)
        if line is None:
            raise RuntimeError(f"{mode}: no result\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        rate, cpu = (float(x) for x in line.split()[1:])
        results[mode] = (rate, cpu)
        print(f"{mode}: {rate:,.0f} events/s, {cpu:,.0f} us CPU per event")
    load = os.getloadavg()
    print(f"load average (1, 5, 15 min) at the end: {load}")
    if not args.no_record:
        record(args.events, results, load)


def record(events: int, results: dict[str, tuple[float, float]],
           load: tuple[float, float, float]) -> None:
    lines = [
        "",
        f"## faust floor — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`bench/bench_faust_floor.py --events {events}`: faust-streaming workers doing no "
        "business work, exactly_once, 12 partitions, 300-byte records; machine: "
        f"`nproc`={os.cpu_count()}, Python {platform.python_version()}, Kafka on the same "
        f"box; 1-minute load at the end {load[0]:.1f}.",
        "",
        "| agent | events/s | CPU µs per event (worker process) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {mode} | {rate:,.0f} | {cpu:,.0f} |" for mode, (rate, cpu) in results.items()]
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
