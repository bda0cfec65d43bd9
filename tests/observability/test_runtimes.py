"""A real runtime (the relay, through the CLI) serves /healthz, /readyz and /metrics on
its --metrics-port and logs JSON lines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from producers.sql import apply_crm_schema, apply_state_schema

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, status: int, proc: subprocess.Popen[str], timeout_s: float = 60
             ) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"runtime exited with {proc.returncode}")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == status:
                return r
            last = (r.status_code, r.text)
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered {status}; last: {last}")


def test_relay_serves_health_readiness_metrics_and_json_logs(
        kafka_bootstrap: str, schema_registry_url: str, fresh_database: str,
        tmp_path: Path) -> None:
    apply_crm_schema(fresh_database)
    apply_state_schema(fresh_database)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERSTREAM_")}
    env.update({
        "LEDGERSTREAM_RELAY_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LEDGERSTREAM_RELAY_SCHEMA_REGISTRY_URL": schema_registry_url,
        "LEDGERSTREAM_RELAY_DATABASE_URL": fresh_database,
        "LEDGERSTREAM_RELAY_TOPIC_SUFFIX": uuid.uuid4().hex[:8],
        "LEDGERSTREAM_RELAY_IDLE_WAIT_S": "0.2",
        "LEDGERSTREAM_RELAY_METRICS_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    })
    log_path = tmp_path / "relay.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledgerstream.cli", "relay", "--metrics-port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(f"{base}/healthz", 200, proc).json()["component"] == "relay"
        ready = wait_for(f"{base}/readyz", 200, proc)
        assert ready.json()["checks"] == {"relay": "ok", "last_batch": "ok"}
        metrics = httpx.get(f"{base}/metrics").text
        assert "ledgerstream_relay_lag_seconds" in metrics
        assert "ledgerstream_relay_batch_aborts_total" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    records = [json.loads(line) for line in log_path.read_text().splitlines()
               if line.startswith("{")]
    assert records, log_path.read_text()
    assert {r["component"] for r in records} == {"relay"}
    assert any("started" in str(r["message"]) for r in records)
