"""The shared endpoint: /metrics, /healthz, /readyz (503 with reasons when not ready)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from ledgerstream.observability import (
    Heartbeat,
    ObservabilityServer,
    Readiness,
    fresh,
    postgres_check,
    serve_observability,
)


class Flag:
    def __init__(self) -> None:
        self.ready: bool | str = False

    def __call__(self) -> bool | str:
        return self.ready


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("ledgerstream_test_events_total", "test", ["outcome"],
            registry=registry).labels("ok").inc(3)
    return registry


@pytest.fixture
def flag() -> Flag:
    return Flag()


@pytest.fixture
def server(registry: CollectorRegistry, flag: Flag) -> Iterator[ObservabilityServer]:
    with ObservabilityServer(component="test", port=0, registries=(registry,),
                             readiness=Readiness({"flag": flag}, ttl_s=0)) as srv:
        yield srv


def test_metrics_in_prometheus_text_format(server: ObservabilityServer) -> None:
    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'ledgerstream_test_events_total{outcome="ok"} 3.0' in r.text


def test_metrics_openmetrics_when_asked(server: ObservabilityServer) -> None:
    r = httpx.get(f"{server.url}/metrics",
                  headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


def test_healthz_answers_while_not_ready(server: ObservabilityServer) -> None:
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "component": "test"}


def test_readyz_follows_the_readiness_checks(server: ObservabilityServer, flag: Flag) -> None:
    r = httpx.get(f"{server.url}/readyz")
    assert r.status_code == 503
    assert r.json()["checks"] == {"flag": "failing"}
    flag.ready = "no partitions assigned"
    r = httpx.get(f"{server.url}/readyz")
    assert r.status_code == 503
    assert r.json()["checks"] == {"flag": "no partitions assigned"}
    flag.ready = True
    r = httpx.get(f"{server.url}/readyz")
    assert r.status_code == 200
    assert r.json() == {"component": "test", "status": "ready", "checks": {"flag": "ok"}}


def test_a_raising_check_is_not_ready() -> None:
    def boom() -> bool:
        raise ConnectionError("refused")

    with ObservabilityServer(component="x", readiness=boom) as srv:
        r = httpx.get(f"{srv.url}/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["ready"] == "ConnectionError: refused"


def test_unknown_path_is_404(server: ObservabilityServer) -> None:
    assert httpx.get(f"{server.url}/nope").status_code == 404


def test_port_zero_or_none_means_off() -> None:
    assert serve_observability("x", None) is None
    assert serve_observability("x", 0) is None


def test_readiness_results_are_cached_for_ttl() -> None:
    calls = []

    def check() -> bool:
        calls.append(1)
        return True

    readiness = Readiness({"c": check}, ttl_s=60)
    assert readiness.evaluate().ready and readiness.evaluate().ready
    assert len(calls) == 1
    readiness.add("d", lambda: "down")  # adding a check drops the cached answer
    assert not readiness.evaluate().ready


def test_fresh_and_heartbeat() -> None:
    now = time.monotonic()
    assert fresh(lambda: now, 10)() is True
    assert fresh(lambda: None, 10, "batch")() == "no batch yet"
    assert "ago" in str(fresh(lambda: now - 100, 10)())
    beat = Heartbeat(5)
    assert beat.check() == "no success yet"
    beat.beat()
    assert beat.check() is True


def test_postgres_check_fails_fast_when_nothing_listens() -> None:
    readiness = Readiness({"postgres": postgres_check(
        "postgresql://nobody@127.0.0.1:1/none", timeout_s=1)})
    result = readiness.evaluate()
    assert not result.ready
    assert "postgres" in json.dumps(result.as_json())


def test_webhooks_readyz_is_503_before_the_lifespan_started() -> None:
    from starlette.testclient import TestClient

    from producers.webhooks.app import ReceiverConfig, create_app

    app = create_app(ReceiverConfig({}, 300, 1000), "postgresql://unused", None)  # type: ignore[arg-type]
    client = TestClient(app)  # no `with`: the lifespan (pool, publisher) never runs
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"] == {"app": "starting"}


def test_sink_readiness_needs_an_assignment_and_postgres() -> None:
    import threading
    from types import SimpleNamespace

    from sinks.app import sink_readiness

    runner = SimpleNamespace(stop_event=threading.Event(),
                             claim=SimpleNamespace(expected={}))
    readiness = sink_readiness(runner, "postgresql://nobody@127.0.0.1:1/none")  # type: ignore[arg-type]
    result = readiness.evaluate()
    assert not result.ready
    assert result.checks["kafka_assignment"] == "no partitions assigned"
    assert result.checks["postgres"] != "ok"
    runner.claim.expected[("ledger.entries", 0)] = 41
    readiness.add("postgres", lambda: True)
    assert readiness.evaluate().ready
    runner.stop_event.set()
    readiness.add("postgres", lambda: True)  # drop the cached answer
    assert readiness.evaluate().checks["kafka_assignment"] == "stopping"


def test_processor_readiness_follows_the_faust_app() -> None:
    from types import SimpleNamespace

    from stream_processors.runner import processor_readiness

    app = SimpleNamespace(crash_reason=None, started=False, rebalancing=False)
    readiness = processor_readiness(app)  # type: ignore[arg-type]
    readiness._ttl_s = 0
    assert readiness.evaluate().checks == {"faust": "starting"}
    app.started, app.rebalancing = True, True
    assert readiness.evaluate().checks == {"faust": "rebalancing"}
    app.rebalancing = False
    assert readiness.evaluate().ready
    app.crash_reason = RuntimeError("x")
    assert not readiness.evaluate().ready
