"""Helpers shared by the producer tests: running relays as real processes, and checks on
what landed in Kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from producers.relay import RelaySettings
from schemas.models import FinancialEvent
from tests.producers.conftest import Record

ROOT = Path(__file__).resolve().parents[2]


def relay_env(settings: RelaySettings, **extra: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERSTREAM_")}
    values = {**settings.model_dump(exclude={"instance_id", "metrics_port"}), **extra}
    for name, value in values.items():
        env[f"LEDGERSTREAM_RELAY_{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_relay(settings: RelaySettings, log_path: Path, **extra: object) -> subprocess.Popen[str]:
    """``python -m producers.relay`` with ``settings`` (+ overrides) in its environment."""
    log = log_path.open("w")
    return subprocess.Popen([sys.executable, "-m", "producers.relay"], cwd=ROOT,
                            env=relay_env(settings, **extra), stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_line(path: Path, needle: str, proc: subprocess.Popen[str],
                  timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in path.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"relay exited ({proc.returncode}):\n{path.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not seen in {timeout_s}s:\n{path.read_text()}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout_s)


def first_occurrences(records: Iterable[Record]) -> dict[str, list[str]]:
    """Per key, event ids in the order they first appear (duplicates dropped, as the
    downstream dedupe by event_id does)."""
    seen: set[str] = set()
    out: dict[str, list[str]] = defaultdict(list)
    for rec in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        event_id = rec.event.event_id
        if event_id not in seen:
            seen.add(event_id)
            out[f"{rec.topic}|{rec.key}"].append(event_id)
    return out


def expected_order(events: Iterable[FinancialEvent], topic_of: dict[str, str],
                   key_of: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for e in events:
        out[f"{topic_of[e.event_id]}|{key_of[e.event_id]}"].append(e.event_id)
    return out


def assert_same_duplicates(records: Iterable[Record]) -> int:
    """Records sharing an event id must be the same event; returns how many were dupes."""
    by_id: dict[str, Record] = {}
    dupes = 0
    for rec in records:
        prior = by_id.setdefault(rec.event.event_id, rec)
        if prior is not rec:
            dupes += 1
            assert prior.value == rec.value and prior.key == rec.key, rec.event.event_id
    return dupes
