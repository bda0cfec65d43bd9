"""The whole pipeline with real processes: CRM day → relay → processor → one sink per
platform → served QuickBooks and Xero sandboxes; every sandbox must hold exactly what
the CRM holds (documents, totals, open balances, balance per customer), with no
duplicate and nothing missing."""

from __future__ import annotations

import pytest

from deploy.localstack.stack import Endpoints
from ledgerstream.demo import run_demo
from ledgerstream.pipeline import Pipeline, PipelineConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PLATFORMS = ("quickbooks-online", "xero")


def test_every_sandbox_holds_exactly_what_the_crm_holds(endpoints: Endpoints) -> None:
    # JSON outbox rows here (the relay validates and encodes them), so the path of rows
    # written by triggers or foreign code runs end to end too; the other pipeline tests
    # and the demo use the default Avro rows
    config = PipelineConfig(endpoints=endpoints, tenants=4, jobs_per_tenant=4,
                            customers_per_tenant=3, seed=11, platforms=PLATFORMS,
                            timeout_s=200, avro_rows=False)
    with Pipeline(config) as pipeline:
        result = pipeline.run()

    assert set(result.platforms) == set(PLATFORMS)
    for platform in result.platforms.values():
        assert len(platform.tenants) == 2
        assert platform.entries > 0 and platform.documents > 0, platform
    assert result.unprocessed_events == 0
    assert result.latency_ms(0.5) is not None
    assert result.duplicates == 0
    assert result.missing == 0, (
        [str(d) for t in result.tenants.values() for d in t.differences if d.what == "missing"],
        result.dead_letter_reasons)
    disagreements = {t.tenant_id: [str(d) for d in t.differences]
                     for t in result.tenants.values() if not t.ok}
    assert not disagreements, disagreements
    assert not result.dead_letters, result.dead_letter_reasons
    assert result.ok


def test_run_demo_summarises_a_run(endpoints: Endpoints) -> None:
    summary = run_demo(endpoints, tenants=2, jobs=2, customers=2, live=False, seed=3,
                       timeout_s=150, platforms=PLATFORMS)
    assert summary.result is not None, summary.error
    text = summary.text()
    for platform in PLATFORMS:
        assert platform in text
    assert "t001" in text and "t002" in text
    assert "p50" in text and "p99" in text
    assert summary.ok == summary.result.ok
    assert ("OK: every sandbox agrees with the CRM" in text) == summary.ok
