"""Crash injection end to end: the sink process SIGKILLs itself at each dangerous point
(``LEDGERSTREAM_SINK_CRASH_AT``), is restarted until the work is done, while the
sandbox also drops the response of committed writes (``drop_after_write``);
afterwards no platform holds a duplicate and no document is lost.

Each restart of a killed consumer waits for the coordinator to expire the dead
member's session, so crash points are chosen to kill the sink a few times, not
dozens."""

from __future__ import annotations

import pytest

from deploy.localstack.stack import Endpoints
from ledgerstream.pipeline import Pipeline, PipelineConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PLATFORM = "quickbooks-online"


@pytest.mark.parametrize(("crash_at", "batch_size"), [
    ("after_api_call:20", 4),
    ("after_db_commit:6", 3),
    ("mid_batch:20", 4),
])
def test_sink_killed_and_restarted_leaves_no_duplicate_and_no_gap(
        endpoints: Endpoints, crash_at: str, batch_size: int) -> None:
    config = PipelineConfig(
        endpoints=endpoints, tenants=2, jobs_per_tenant=4, customers_per_tenant=3,
        seed=7, platforms=(PLATFORM,), timeout_s=240, relaxed_sandbox_limits=True,
        max_sink_restarts=12,
        sink_env={PLATFORM: {"LEDGERSTREAM_SINK_CRASH_AT": crash_at,
                             "LEDGERSTREAM_SINK_BATCH_SIZE": str(batch_size)}},
        sandbox_faults={PLATFORM: ({"kind": "drop_after_write", "count": 2},
                                   {"kind": "drop_after_write", "count": 1, "mode": "500"})},
    )
    with Pipeline(config) as pipeline:
        result = pipeline.run()
        pending_faults = pipeline.sandboxes[PLATFORM].sandbox.faults.pending()

    platform = result.platforms[PLATFORM]
    assert platform.restarts >= 1, "the crash point was never reached: nothing was tested"
    assert not pending_faults, f"the dropped-response faults were never hit: {pending_faults}"
    assert platform.entries > 0 and platform.documents > 0
    assert result.unprocessed_events == 0
    assert result.duplicates == 0, [
        str(d) for t in result.tenants.values() for d in t.differences if d.what == "duplicates"]
    lost = result.unexplained_missing
    assert not lost, "documents lost by a crash:\n" + "\n".join(str(d) for d in lost)
    # every ledger entry of the platform's tenants has exactly one terminal outcome
    assert sum(platform.sync_log.get(s, 0) for s in ("applied", "already_applied",
                                                     "dead_lettered")) == platform.entries
