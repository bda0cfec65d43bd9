"""Crash injection across every registered platform in one pipeline run.

Each platform's sink SIGKILLs itself at a different dangerous point
(``LEDGERSTREAM_SINK_CRASH_AT``: after a platform call whose outcome is not yet in the
sync log, after the bookkeeping commit but before the Kafka offset commit, in the
middle of a batch) and is restarted by the pipeline, while its sandbox also loses the
response of committed writes (``drop_after_write``: a dropped connection, then a 500).
A replayed write must then find what the lost attempt left on the platform — the
platform's idempotency strategy (native key, upsert by external id, lookup by
reference) is exactly what is exercised.

One run for all platforms keeps the cost at one pipeline start (the CI budget for the
suite is tight); the per-platform assertions say which platform broke.

What must hold per platform: the sink was killed at least once and every armed fault
was consumed (otherwise nothing was tested); no duplicate; no document missing unless
one of its events was dead-lettered for a documented limitation (the same policy as
``test_all_platforms_e2e``); every ledger entry has exactly one terminal outcome in
the sync log.
"""

from __future__ import annotations

from typing import Any

import pytest

from deploy.localstack.stack import Endpoints
from ledgerstream.pipeline import Pipeline, PipelineConfig, PipelineResult
from sinks.sandbox.profiles import PROFILES
from tests.e2e.test_all_platforms_e2e import _unexpected_dead_letters

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

PLATFORMS = tuple(sorted(PROFILES))
TERMINAL = ("applied", "already_applied", "dead_lettered")

#: Per platform: crash point and sink batch size, rotating over the platforms. A
#: point counts every record of the shared topic (mid_batch, after_db_commit) or every
#: platform call (after_api_call); ``CRASH_STARTS`` caps the kills per sink (each
#: restart waits for the group coordinator to expire the dead member's session).
#: mid_batch needs its count above the batch size, or no batch is ever committed.
_POINTS = (("after_api_call:3", 3), ("after_db_commit:4", 3), ("mid_batch:7", 3))
CRASH_PLAN: dict[str, tuple[str, int]] = {
    platform: _POINTS[n % len(_POINTS)] for n, platform in enumerate(PLATFORMS)}
CRASH_STARTS = 3

#: The responses of six committed writes per platform are lost: four connections
#: dropped, then two 500s after the write (the first writes of the day: customers,
#: then invoices).
FAULTS: tuple[dict[str, Any], ...] = (
    {"kind": "drop_after_write", "count": 4},
    {"kind": "drop_after_write", "count": 2, "mode": "500"},
)


def _duplicates(result: PipelineResult, platform: str) -> list[str]:
    return [f"{t.tenant_id}: {d}" for t in result.tenants.values() if t.platform == platform
            for d in t.differences if d.what == "duplicates"]


def test_every_platform_survives_crashes_and_lost_responses(endpoints: Endpoints) -> None:
    config = PipelineConfig(
        endpoints=endpoints, platforms=PLATFORMS, tenants=2 * len(PLATFORMS),
        jobs_per_tenant=1, customers_per_tenant=2, seed=7, timeout_s=300,
        relaxed_sandbox_limits=True, max_sink_restarts=CRASH_STARTS,
        crash_starts=CRASH_STARTS,
        sink_env={p: {"LEDGERSTREAM_SINK_CRASH_AT": point,
                      "LEDGERSTREAM_SINK_BATCH_SIZE": str(batch)}
                  for p, (point, batch) in CRASH_PLAN.items()},
        sandbox_faults={p: FAULTS for p in PLATFORMS},
    )
    with Pipeline(config) as pipeline:
        result = pipeline.run()
        pending = {p: pipeline.sandboxes[p].sandbox.faults.pending() for p in PLATFORMS}

    print(f"\ncrash run {result.duration_s:.1f}s, {result.events_produced} events, "
          f"{result.ledger_entries} entries, {len(result.dead_letters)} dead letters")
    for name, platform in sorted(result.platforms.items()):
        print(f"  {name} [{CRASH_PLAN[name][0]}]: restarts {platform.restarts}, "
              f"{platform.entries} entries, {platform.documents} documents, "
              f"duplicates {platform.duplicates}, missing {platform.missing}, "
              f"sync log {platform.sync_log}")

    assert set(result.platforms) == set(PLATFORMS)
    assert not result.errors, result.errors
    assert result.unprocessed_events == 0
    problems: dict[str, list[str]] = {}
    for name, platform in result.platforms.items():
        found: list[str] = []
        if platform.restarts < 1:
            found.append(f"never killed at {CRASH_PLAN[name][0]}: nothing was tested")
        if pending[name]:
            found.append(f"faults never hit: {pending[name]}")
        if not (platform.entries > 0 and platform.documents > 0):
            found.append(f"no work: {platform}")
        if platform.duplicates:
            found.append(f"{platform.duplicates} duplicates: {_duplicates(result, name)}")
        terminal = sum(platform.sync_log.get(s, 0) for s in TERMINAL)
        if terminal != platform.entries:
            found.append(f"{terminal} terminal sync-log rows for {platform.entries} entries: "
                         f"{platform.sync_log}")
        if found:
            problems[name] = found
    lost = [f"{t.platform} {t.tenant_id}: {d}" for t in result.tenants.values()
            for d in t.differences if d.what == "missing"
            and d.key not in result.dead_lettered_keys.get(t.tenant_id, set())]
    # Sage Accounting and Acumatica guard edits with the version we stored; the runner
    # gives them one write per document per transaction (PlatformSpec.guards_edits), so
    # a replay never meets our own unrecorded later write ("refusing to overwrite a
    # bookkeeper's edit" here would be that defect back).
    unexpected = _unexpected_dead_letters(result)
    assert not problems, problems
    assert not lost, "documents lost by a crash:\n" + "\n".join(lost)
    assert not unexpected, unexpected
