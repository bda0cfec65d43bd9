"""A Kafka broker restart in the middle of a run (issue: crash injection, "a broker
restart"): relay, processor and sinks keep their processes, the broker goes away and
comes back with its data, and afterwards every sandbox holds exactly the CRM's books.

The restarted broker is a dedicated one started for this test (same Maven-resolved
jars as the local stack, own ports and state directory), so the session's shared
broker — which also stores the schema registry's journal — is never interrupted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.localstack import artifacts
from deploy.localstack.kafka import KafkaBroker
from deploy.localstack.ports import any_free_port
from deploy.localstack.settings import StackSettings
from deploy.localstack.stack import Endpoints
from ledgerstream.pipeline import Pipeline, PipelineConfig, Progress

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PLATFORMS = ("quickbooks-online", "xero")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    try:
        settings = StackSettings(state_dir=tmp_path / "stack")
        libs = artifacts.resolve(settings).kafka_libs
    except Exception as exc:  # no Java/Maven here: the shared endpoints come from elsewhere
        pytest.skip(f"cannot start a dedicated broker: {exc}")
    port = any_free_port()
    controller = any_free_port()
    while controller == port:
        controller = any_free_port()
    broker = KafkaBroker(settings, libs, port, controller)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_books_equal_after_a_broker_restart_mid_run(endpoints: Endpoints,
                                                   own_broker: KafkaBroker) -> None:
    restarted = threading.Event()
    outage: dict[str, float] = {}

    def restart_once(progress: Progress) -> None:
        # once the sinks have written a few documents, take the broker away for a while
        if restarted.is_set() or progress.phase != "streaming" or sum(
                progress.written.values()) < 6:
            return
        restarted.set()
        started = time.monotonic()
        assert own_broker.stop()
        time.sleep(5)
        own_broker.start()
        outage["seconds"] = time.monotonic() - started

    config = PipelineConfig(
        endpoints=Endpoints(own_broker.endpoint, endpoints.schema_registry_url,
                            endpoints.database_url),
        tenants=4, jobs_per_tenant=5, customers_per_tenant=3, seed=31, platforms=PLATFORMS,
        relaxed_sandbox_limits=True, timeout_s=420)
    with Pipeline(config, progress=restart_once) as pipeline:
        result = pipeline.run()

    assert restarted.is_set(), "the broker was never restarted: nothing was tested"
    assert outage["seconds"] >= 5
    assert not result.errors, result.errors
    assert result.unprocessed_events == 0
    assert result.duplicates == 0, [
        f"{t.platform} {t.tenant_id}: {d}" for t in result.tenants.values()
        for d in t.differences if d.what == "duplicates"]
    assert result.missing == 0, [str(d) for t in result.tenants.values() for d in t.differences]
    assert not result.dead_letters, result.dead_letter_reasons
    for tenant in result.tenants.values():
        assert tenant.ok, (tenant.tenant_id, [str(d) for d in tenant.differences])
    for name, platform in result.platforms.items():
        assert platform.restarts == 0, f"{name} sink died instead of waiting for the broker"
        assert set(platform.sync_log) <= {"applied", "already_applied"}, platform.sync_log
