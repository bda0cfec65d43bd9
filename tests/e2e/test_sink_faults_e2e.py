"""The sink runtime's fault matrix in one end-to-end run (relay → processor → QuickBooks
and Xero sinks → sandboxes), every fault the platforms are documented to produce:

* a 429 storm (with Retry-After), 5xx answers and timeouts (a response slower than
  the sink's read timeout) — retried, nothing doubled;
* every access token expiring in the middle of the run — refreshed, work goes on;
* a refresh token rotated by *another worker* (a second token client refreshing the
  same grant through the shared encrypted store) just before the tokens expire — the
  sink must use the rotated refresh token, not the one it cached, or the grant breaks;
* the customers of a tenant made inactive in the platform behind the sink's back while
  its documents wait (parked) — reactivated when the CRM's documents reach them;
* a locked accounting period (QuickBooks) and a revoked grant (Xero): that tenant is
  paused and its records parked, never dead-lettered, while the other tenants finish;
  once the bookkeeper reopens the period / the user reconnects, ``ledgerstream resume``
  writes the parked records.

Afterwards every sandbox holds exactly the CRM's books: no duplicate, nothing missing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from deploy.localstack.stack import Endpoints
from ledgerstream.pipeline import Pipeline, PipelineConfig, Progress
from sinks.sandbox.profiles import seed_grant
from sinks.transport.auth import OAuth2Auth, PostgresTokenStore, TokenCipher
from sinks.transport.connection import build_executor, parse_connection

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

QBO, XERO = "quickbooks-online", "xero"
ROOT = Path(__file__).resolve().parents[2]
DAY = date(2025, 3, 14)  # the simulator's business day
# tenants alternate between the platforms: t001 QBO, t002 Xero, t003 QBO, ...
LOCKED, REVOKED = "t005", "t006"

UP_FRONT = {
    QBO: ({"kind": "rate_limit", "count": 5, "seconds": 1, "tenant": "t001"},
          {"kind": "server_error", "count": 3, "status": 503, "tenant": "t003"},
          {"kind": "latency", "count": 2, "seconds": 3, "tenant": "t001"},
          {"kind": "lock_period", "tenant": LOCKED, "date": DAY.isoformat()}),
    XERO: ({"kind": "rate_limit", "count": 4, "seconds": 1, "tenant": "t002"},
           {"kind": "server_error", "count": 2, "status": 502, "tenant": "t004"},
           {"kind": "revoke_grant", "tenant": REVOKED}),
}


class MidRunFaults:
    """Arms the faults that need the run under way, from the progress callback."""

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.fired: dict[str, float] = {}
        self.deactivated: list[str] = []

    def __call__(self, progress: Progress) -> None:
        pipeline = self.pipeline
        if pipeline is None or progress.phase != "streaming":
            return
        written = progress.written
        if written.get(QBO, 0) >= 3 and "qbo tokens expired" not in self.fired:
            pipeline.sandboxes[QBO].arm_fault({"kind": "expire_tokens"})
            self.fired["qbo tokens expired"] = time.monotonic()
        if written.get(XERO, 0) >= 3 and "xero refresh rotated" not in self.fired:
            rotate_refresh_token_elsewhere(pipeline, XERO, "t002")
            pipeline.sandboxes[XERO].arm_fault({"kind": "expire_tokens"})
            self.fired["xero refresh rotated"] = time.monotonic()

    @staticmethod
    def deactivate_customers(pipeline: Pipeline, tenant: str) -> list[str]:
        """Make inactive in QuickBooks the tenant's mapped customers that the CRM still
        has unwritten documents for (so the sink must meet them again)."""
        if pipeline.simulation is None:
            return []
        with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
            mapped: dict[str, str] = dict(conn.execute(
                "SELECT crm_id, external_id FROM sink_external_ids WHERE platform = %s AND "
                "tenant_id = %s AND kind = 'customer'", (QBO, tenant)).fetchall())
            written = {str(r[0]) for r in conn.execute(
                "SELECT event_id FROM sink_sync_log WHERE platform = %s AND tenant_id = %s",
                (QBO, tenant)).fetchall()}
        pending_for = {str(getattr(e.payload, "customer_id", "")) for e in
                       pipeline.simulation.events if str(e.tenant_id) == tenant
                       and str(e.event_id) not in written
                       and str(e.aggregate_type) in ("INVOICE", "PAYMENT", "CREDIT_NOTE")}
        ids = [str(external) for crm_id, external in mapped.items()
               if str(crm_id) in pending_for]
        for customer_id in ids:
            pipeline.sandboxes[QBO].arm_fault({"kind": "deactivate_customer", "tenant": tenant,
                                               "customer_id": customer_id})
        return ids


def rotate_refresh_token_elsewhere(pipeline: Pipeline, platform: str, tenant: str) -> None:
    """Another worker refreshes the tenant's grant: new access token, and (Xero
    rotates) a new refresh token in the shared store; the old one is spent."""
    tokens = PostgresTokenStore(pipeline.dsn, TokenCipher([SecretStr(pipeline.token_key)]))
    config = pipeline.sandboxes[platform].tenants[tenant].config
    executor = build_executor(
        platform=_platform(platform), tenant_id=tenant,
        connection=parse_connection(tenant, platform, config.connection), limiter=None,
        tokens=tokens)
    auth = executor.auth
    assert isinstance(auth, OAuth2Auth)
    before = auth.current
    auth.refresh(executor.send_once, stale_generation=before.version)
    after = tokens.load(platform, tenant)
    assert after is not None and after.version > before.version
    assert before.token.refresh_token is not None and after.token.refresh_token is not None
    assert (after.token.refresh_token.get_secret_value()
            != before.token.refresh_token.get_secret_value()), "the refresh token rotated"


def _platform(name: str) -> Any:
    from sinks.platforms.registry import get_platform

    return get_platform(name)


def wait_for_pause_and_others(pipeline: Pipeline, paused: dict[str, str],
                              timeout_s: float) -> dict[str, str]:
    """Until every tenant but the paused ones is written and every entry of the
    paused ones is parked; returns the pause reasons."""
    assert pipeline.reader is not None
    deadline = time.monotonic() + timeout_s
    while True:
        pipeline._check_services()
        entries, _ = pipeline.reader.snapshot()
        with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
            terminal = {(str(t), str(e)) for t, e in conn.execute(
                "SELECT tenant_id, event_id FROM sink_sync_log WHERE status IN "
                "('applied', 'already_applied', 'dead_lettered')").fetchall()}
            parked = {(str(t), str(e)) for t, e in conn.execute(
                "SELECT tenant_id, event_id FROM sink_parked").fetchall()}
            reasons = {f"{p}:{t}": str(r) for p, t, r in conn.execute(
                "SELECT platform, tenant_id, reason FROM sink_tenant_state WHERE paused"
            ).fetchall()}
        # keep the progress callback (the mid-run faults) running while we wait
        pipeline.state.written = {
            platform: sum(1 for key in terminal if pipeline.assignment.get(key[0]) == platform)
            for platform in pipeline.config.platforms}
        pipeline._report("streaming")
        others_done = all(key in terminal for key in entries if key[0] not in paused.values())
        # a paused tenant's entries written before the pause (customers need no open
        # period) stay written; everything after it is parked
        paused_parked = all(key in parked or key in terminal
                            for key in entries if key[0] in paused.values()) and all(
            any(key in parked for key in entries if key[0] == tenant)
            for tenant in paused.values())
        simulated = pipeline.simulation is not None and len(entries) >= len(
            [e for e in pipeline.simulation.events if str(e.aggregate_type) != "TAX_RATE"])
        if simulated and others_done and paused_parked and len(reasons) == len(paused):
            return reasons
        if time.monotonic() > deadline:
            per_tenant = {}
            for tenant in sorted({k[0] for k in entries}):
                mine = [k for k in entries if k[0] == tenant]
                per_tenant[tenant] = (f"{len(mine)} entries, "
                                      f"{sum(1 for k in mine if k in terminal)} written, "
                                      f"{sum(1 for k in mine if k in parked)} parked")
            logs = {name: s.log_tail(15) for name, s in pipeline.services.items()
                    if name.startswith("sink:")}
            raise AssertionError(
                f"not settled after {timeout_s}s: paused {reasons}; {per_tenant}; "
                f"sink logs: {logs}")
        time.sleep(0.5)


def resume(pipeline: Pipeline, platform: str, tenant: str) -> str:
    env = pipeline._env({
        "LEDGERSTREAM_SINK_TOPIC_SUFFIX": pipeline.topics.suffix,
        "LEDGERSTREAM_SINK_TENANTS_FILE": str(pipeline.tenants_file),
        "LEDGERSTREAM_TRANSPORT_TOKEN_ENCRYPTION_KEY": pipeline.token_key,
    })
    done = subprocess.run(
        [sys.executable, "-m", "ledgerstream.cli", "resume", "--platform", platform,
         "--tenant", tenant], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_fault_matrix_leaves_the_books_equal(endpoints: Endpoints) -> None:
    faults = MidRunFaults()
    config = PipelineConfig(
        endpoints=endpoints, tenants=6, jobs_per_tenant=4, customers_per_tenant=3, seed=21,
        platforms=(QBO, XERO), relaxed_sandbox_limits=True, timeout_s=300,
        sink_env={p: {"LEDGERSTREAM_TRANSPORT_READ_TIMEOUT": "1.5"} for p in (QBO, XERO)},
        sandbox_faults=UP_FRONT)
    with Pipeline(config, progress=faults) as pipeline:
        faults.pipeline = pipeline
        pipeline.prepare()
        pipeline.start_services()
        pipeline.wait_ready()
        pipeline.simulate()
        pipeline._report("streaming")
        reasons = wait_for_pause_and_others(
            pipeline, {QBO: LOCKED, XERO: REVOKED}, timeout_s=360)
        # The locked tenant's customers were written (they carry no date), its documents
        # are parked: someone makes those customers inactive in QuickBooks meanwhile, so
        # the replay meets them inactive (610 on CustomerRef) and must reactivate them.
        faults.deactivated = MidRunFaults.deactivate_customers(pipeline, LOCKED)
        assert faults.deactivated, "the locked tenant has no mapped customer to deactivate"
        # the other tenants finished while two were paused; now the humans act
        pipeline.sandboxes[QBO].arm_fault({"kind": "lock_period", "tenant": LOCKED,
                                           "date": None})
        served = pipeline.sandboxes[XERO]
        seed_grant(served.sandbox, PostgresTokenStore(
            pipeline.dsn, TokenCipher([SecretStr(pipeline.token_key)])), XERO, REVOKED,
            served.tenants[REVOKED].sandbox_tenant)
        resumed = {QBO: resume(pipeline, QBO, LOCKED), XERO: resume(pipeline, XERO, REVOKED)}
        pipeline.wait_until_synced()
        result = pipeline.verify()
        pending = {p: [f.kind for f in s.sandbox.faults.pending()]
                   for p, s in pipeline.sandboxes.items()}
        reactivated = [c for c in faults.deactivated
                       if _qbo_customer_active(pipeline, LOCKED, c)]
        pipeline.stop()

    assert set(faults.fired) == {"qbo tokens expired", "xero refresh rotated"}, faults.fired
    assert pending == {QBO: [], XERO: []}, f"faults never reached: {pending}"
    assert "closed" in reasons[f"{QBO}:{LOCKED}"], reasons
    assert "grant" in reasons[f"{XERO}:{REVOKED}"].lower(), reasons
    for platform, out in resumed.items():
        assert "parked records written" in out and not out.startswith("0"), (platform, out)
    assert result.unprocessed_events == 0
    assert result.duplicates == 0
    assert not result.dead_letters, result.dead_letter_reasons
    assert result.missing == 0, [str(d) for t in result.tenants.values() for d in t.differences]
    for tenant in result.tenants.values():
        assert tenant.ok, (tenant.tenant_id, [str(d) for d in tenant.differences])
    assert reactivated, "no customer made inactive in QuickBooks was reactivated on replay"
    for platform in (QBO, XERO):
        log_counts = result.platforms[platform].sync_log
        assert set(log_counts) <= {"applied", "already_applied"}, log_counts


def _qbo_customer_active(pipeline: Pipeline, tenant: str, customer_id: str) -> bool:
    sandbox: Any = pipeline.sandboxes[QBO].sandbox
    realm = sandbox.realm(pipeline.sandboxes[QBO].tenants[tenant].sandbox_tenant)
    with sandbox.lock:
        record = realm.entities["Customer"].get(customer_id)
        return bool(record and record.get("Active", True))
