"""NetSuite SOAP sink (upsert by externalId, tokenPassport header) end to end against the
sandbox's SOAP endpoint: create, pay, credit, void, replay, drop-after-write."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from schemas.examples import (
    sample_credit_note_event,
    sample_customer_event,
    sample_invoice_event,
    sample_ledger_entry,
    sample_payment_event,
)
from schemas.models import Op
from sinks.core.contract import FlowRunner, SinkContext, WriteResult
from sinks.core.errors import ConfigurationError, ReferenceMissingError
from sinks.platforms.netsuite.soap import NetSuiteSoap, token_passport_factory
from sinks.sandbox.core import ManualClock, SyncASGITransport
from sinks.sandbox.netsuite import NetSuiteSandbox
from sinks.transport.http import HttpExecutor
from sinks.transport.retry import RetryPolicy
from sinks.transport.soap import SoapHeaderAuth
from tests.sinks.sandbox.test_sandbox_netsuite_flows import ACCOUNT, HOST, TENANT, tenant_config


class SoapHarness:
    def __init__(self, sandbox: NetSuiteSandbox) -> None:
        self.sandbox = sandbox
        self.tenant = tenant_config(api="soap")
        self.ids: dict[str, str] = {}
        sandbox.register_tba(ACCOUNT, "ck-1", "cs-1", "tk-1", "ts-1")
        clock = sandbox.clock
        self.client = httpx.Client(transport=SyncASGITransport(sandbox.app),
                                   base_url=f"http://sandbox.local/{HOST}")
        self.auth = SoapHeaderAuth(token_passport_factory(
            account=ACCOUNT, consumer_key="ck-1", consumer_secret=SecretStr("cs-1"),
            token="tk-1", token_secret=SecretStr("ts-1"),
            clock=lambda: clock.now().timestamp()))
        self.platform = NetSuiteSoap()
        self.executor = HttpExecutor(platform="netsuite-soap", tenant_id=TENANT,
                                     client=self.client, auth=self.auth,
                                     classify=self.platform.classify_error,
                                     retry=RetryPolicy(max_attempts=4, base_delay=0),
                                     sleep=lambda _: None)
        self.runner = FlowRunner(self.platform, self.executor)

    def write(self, event: Any) -> WriteResult:
        context = SinkContext(tenant_id=TENANT, event_id=event.event_id, tenant=self.tenant,
                              external_ids=dict(self.ids))
        result = self.runner.write(sample_ledger_entry(event), context)
        self.ids.update(result.related)
        if not (result.raw or {}).get("deleted"):
            self.ids[f"{event.aggregate_type.value.lower()}:{event.aggregate_id}"] = \
                result.external_id
        return result

    def report(self) -> dict[str, Any]:
        return self.sandbox.ledger_report(HOST)


@pytest.fixture
def sandbox() -> NetSuiteSandbox:
    return NetSuiteSandbox(clock=ManualClock())


@pytest.fixture
def ns(sandbox: NetSuiteSandbox) -> Iterator[SoapHarness]:
    harness = SoapHarness(sandbox)
    yield harness
    harness.client.close()


def test_soap_invoice_payment_credit_and_replay(ns: SoapHarness) -> None:
    events = [sample_invoice_event(), sample_payment_event(amount=Decimal("100.00")),
              sample_credit_note_event()]
    for event in events:
        ns.write(event)
    first = ns.report()
    [invoice] = [d for d in first["documents"] if d["kind"] == "invoice"]
    assert invoice["total"] == "288.91"
    assert invoice["balance"] == "91.50"  # 288.91 - 100.00 - 97.41
    assert all(r.headers["SOAPAction"] in ('"upsert"', '"get"') for r in ns.runner.sent)
    for event in events:
        ns.ids.clear()
        ns.write(event)  # replay with an empty id map: lookups by externalId, upserts
    second = ns.report()
    assert second["duplicates"]["count"] == 0
    assert second["documents"] == first["documents"]
    assert any(r.headers["SOAPAction"] == '"get"' for r in ns.runner.sent)


def test_soap_drop_after_write_retries_into_same_record(ns: SoapHarness,
                                                        sandbox: NetSuiteSandbox) -> None:
    ns.write(sample_customer_event())
    sandbox.faults.arm("drop_after_write", 1)
    ns.write(sample_invoice_event())
    report = ns.report()
    assert len(report["documents"]) == 1 and report["duplicates"]["count"] == 0


def test_soap_void_then_replayed_void(ns: SoapHarness) -> None:
    ns.write(sample_invoice_event())
    deleted = ns.write(sample_invoice_event(op=Op.DELETE, version=2))
    assert not deleted.already_applied
    assert [d["status"] for d in ns.report()["documents"]] == ["Deleted"]
    again = ns.write(sample_invoice_event(op=Op.DELETE, version=2))
    assert again.already_applied  # RCRD_DSNT_EXIST on delete: already gone


def test_soap_failures_map_to_the_taxonomy(ns: SoapHarness, sandbox: NetSuiteSandbox) -> None:
    ns.write(sample_invoice_event())
    sandbox.lock_period(HOST, sample_invoice_event().payload.issue_date)  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError) as info:
        ns.write(sample_payment_event(amount=Decimal("10.00")))
    assert info.value.vendor_code == "TRAN_PERIOD_CLOSED"
    sandbox.lock_period(HOST, None)
    with pytest.raises(ReferenceMissingError):
        ns.write(sample_payment_event(payment_id="p9", invoice_id="missing"))
    sandbox.faults.arm("rate_limit", 1)  # ExceededConcurrentRequestLimitFault, retried
    ns.write(sample_payment_event(amount=Decimal("10.00")))
    sandbox.revoke_tba(ACCOUNT)
    with pytest.raises(ConfigurationError):
        ns.write(sample_payment_event(payment_id="p2", amount=Decimal("1.00")))
