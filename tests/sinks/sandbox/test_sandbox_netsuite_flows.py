"""NetSuite REST sink driven end to end against the NetSuite sandbox with FlowRunner:
TBA-signed requests, create/update/void, payments, credits, refunds, replays and
write-then-drop-response, each checked against the sandbox's ledger report."""

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
    sample_invoice,
    sample_invoice_event,
    sample_ledger_entry,
    sample_payment,
    sample_payment_event,
    sample_refund_event,
)
from schemas.models import CreditDisposition, InvoiceStatus, Op
from sinks.core.contract import FlowRunner, SinkContext, WriteResult
from sinks.core.errors import (
    ConfigurationError,
    PayloadRejectedError,
    ReferenceMissingError,
    UnsupportedEventError,
)
from sinks.core.mapping import TenantConfig, TenantMapping
from sinks.platforms.netsuite import NetSuiteRest
from sinks.sandbox.core import ManualClock, SyncASGITransport
from sinks.sandbox.netsuite import NetSuiteSandbox
from sinks.transport.auth import OAuth1Auth
from sinks.transport.http import HttpExecutor
from sinks.transport.retry import RetryPolicy

ACCOUNT = "1234567_SB1"
HOST = "1234567_sb1"
TENANT = "t1"


def tenant_config(**settings: Any) -> TenantConfig:
    return TenantConfig(
        tenant_id=TENANT, platform="netsuite",
        settings={"account_id": ACCOUNT, **settings},
        mapping=TenantMapping.model_validate({
            "items": {"labor": "10", "parts": "11", "fees": "12", "discounts": "13"},
            "tax_codes": {"TX-AUSTIN": "5"}, "exempt_tax_code": "-7",
            "deposit_accounts": {"card": "1", "default": "2"}}))


class Harness:
    """The sink as production wires it: executor with TBA auth and retries, a runner,
    and the external-id map the runner would persist between events."""

    def __init__(self, sandbox: NetSuiteSandbox, tenant: TenantConfig | None = None) -> None:
        self.sandbox = sandbox
        self.tenant = tenant or tenant_config()
        self.ids: dict[str, str] = {}
        sandbox.register_tba(ACCOUNT, "ck-1", "cs-1", "tk-1", "ts-1")
        clock = sandbox.clock
        self.client = httpx.Client(transport=SyncASGITransport(sandbox.app),
                                   base_url=f"http://sandbox.local/{HOST}")
        self.auth = OAuth1Auth(consumer_key="ck-1", consumer_secret=SecretStr("cs-1"),
                               token="tk-1", token_secret=SecretStr("ts-1"), realm=ACCOUNT,
                               clock=lambda: clock.now().timestamp())
        self.platform = NetSuiteRest()
        self.executor = HttpExecutor(platform="netsuite", tenant_id=TENANT, client=self.client,
                                     auth=self.auth, classify=self.platform.classify_error,
                                     retry=RetryPolicy(max_attempts=4, base_delay=0),
                                     sleep=lambda _: None)
        self.runner = FlowRunner(self.platform, self.executor)

    def write(self, event: Any, *, remember: bool = True) -> WriteResult:
        entry = sample_ledger_entry(event)
        context = SinkContext(tenant_id=TENANT, event_id=event.event_id, tenant=self.tenant,
                              external_ids=dict(self.ids))
        result = self.runner.write(entry, context)
        if remember:
            self.ids.update(result.related)
            key = f"{event.aggregate_type.value.lower()}:{event.aggregate_id}"
            if not result.raw or not result.raw.get("deleted"):
                self.ids[key] = result.external_id
        return result

    def report(self) -> dict[str, Any]:
        return self.sandbox.ledger_report(HOST)


@pytest.fixture
def sandbox() -> NetSuiteSandbox:
    return NetSuiteSandbox(clock=ManualClock())


@pytest.fixture
def ns(sandbox: NetSuiteSandbox) -> Iterator[Harness]:
    harness = Harness(sandbox)
    yield harness
    harness.client.close()


def test_invoice_create_writes_customer_and_invoice_with_crm_totals(ns: Harness) -> None:
    event = sample_invoice_event()
    result = ns.write(event)
    invoice = event.payload
    report = ns.report()
    assert report["duplicates"]["count"] == 0
    [doc] = report["documents"]
    assert doc["number"] == invoice.number and doc["reference"] == "ls-inv-inv1"
    assert Decimal(doc["total"]) == invoice.total  # 281.49 + 7.42 tax = 288.91
    assert result.document_number == invoice.number
    assert result.related["customer:c1"] == doc["customer_id"]
    assert [c["name"] for c in report["customers"]] == ["Zoë Müller-Ramírez"]
    steps = [r.method for r in ns.runner.sent]
    assert steps == ["PUT", "PUT"]  # customer upsert, invoice upsert


def test_replay_of_every_event_creates_nothing_new(ns: Harness) -> None:
    events = [sample_customer_event(), sample_invoice_event(),
              sample_payment_event(amount=Decimal("100.00")),
              sample_credit_note_event()]
    for event in events:
        ns.write(event)
    first = ns.report()
    ns.ids.clear()  # a replay after losing the external-id map entirely
    for event in events:
        ns.write(event)
    second = ns.report()
    assert second["duplicates"]["count"] == 0
    assert second["documents"] == first["documents"]
    assert second["payments"] == first["payments"]
    assert len(second["customers"]) == 1


@pytest.mark.parametrize("mode", ["disconnect", "500"])
def test_dropped_response_after_write_retries_into_the_same_record(
        ns: Harness, sandbox: NetSuiteSandbox, mode: str) -> None:
    ns.write(sample_customer_event())
    sandbox.faults.arm("drop_after_write", 1, mode=mode)  # type: ignore[arg-type]
    result = ns.write(sample_invoice_event())
    report = ns.report()
    assert report["duplicates"]["count"] == 0
    assert len(report["documents"]) == 1
    assert result.external_id == report["documents"][0]["id"]
    puts = [r for r in ns.runner.sent if r.method == "PUT" and "invoice" in r.path]
    assert len(puts) == 1  # the executor retried underneath the flow, same request


def test_invoice_update_replaces_lines_last_write_wins(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    lines = sample_invoice().lines[:2]
    updated = sample_invoice(lines=lines)
    ns.write(sample_invoice_event(op=Op.UPDATE, version=2, invoice=updated))
    [doc] = ns.report()["documents"]
    assert Decimal(doc["total"]) == updated.total
    stored = next(iter(ns.sandbox.account(HOST).records["invoice"].values()))
    assert len(stored["item"]["items"]) == 2  # replace=item, not merged


def test_payment_with_allocation_and_partial_balance(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    ns.write(sample_payment_event(amount=Decimal("100.00")))
    report = ns.report()
    [doc] = report["documents"]
    assert Decimal(doc["balance"]) == Decimal("188.91")
    assert report["applications"] == [{"source_kind": "payment",
                                        "source_id": report["payments"][0]["id"],
                                        "target_id": doc["id"], "amount": "100.00"}]
    assert report["customers"][0]["balance"] == "188.91"


def test_payment_resolves_invoice_by_external_id_when_map_is_empty(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    ns.ids.clear()
    ns.write(sample_payment_event(amount=Decimal("50.00")))
    gets = [r for r in ns.runner.sent if r.method == "GET"]
    assert gets and "eid:ls-inv-inv1" in gets[-1].path
    assert ns.report()["duplicates"]["count"] == 0


def test_payment_for_unsynced_invoice_is_reference_missing(ns: Harness) -> None:
    ns.write(sample_customer_event())
    with pytest.raises(ReferenceMissingError, match="never synced"):
        ns.write(sample_payment_event(invoice_id="nope"))


def test_overpayment_is_rejected_with_vendor_code(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    payment = sample_payment(amount=Decimal("500.00"))
    with pytest.raises(PayloadRejectedError) as info:
        ns.write(sample_payment_event(payment=payment))
    assert info.value.vendor_code == "INVALID_TRANS_AMT"
    assert ns.report()["payments"] == []


def test_refund_of_unapplied_payment(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    payment = sample_payment(amount=Decimal("300.00"),
                             allocations=({"invoice_id": "inv1", "amount": Decimal("288.91")},))
    ns.write(sample_payment_event(payment=payment))
    assert ns.report()["payments"][0]["unapplied"] == "11.09"
    ns.write(sample_refund_event(amount=Decimal("11.09")))
    report = ns.report()
    assert report["payments"][0]["unapplied"] == "0.00"
    assert report["refunds"][0]["amount"] == "11.09"
    assert report["customers"][0]["balance"] == "0.00"
    ns.write(sample_refund_event(amount=Decimal("11.09")))  # replay
    assert len(ns.report()["refunds"]) == 1


def test_refund_beyond_unapplied_is_rejected(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    ns.write(sample_payment_event(amount=Decimal("288.91")))
    with pytest.raises(PayloadRejectedError) as info:
        ns.write(sample_refund_event(amount=Decimal("50.00")))
    assert info.value.vendor_code == "INVALID_REFUND_AMT"


def test_credit_note_credited_applies_to_invoice(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    ns.write(sample_credit_note_event())
    report = ns.report()
    invoice = next(d for d in report["documents"] if d["kind"] == "invoice")
    memo = next(d for d in report["documents"] if d["kind"] == "credit_note")
    assert Decimal(memo["total"]) == Decimal("97.41")  # 89.99 + 7.42 tax
    assert Decimal(invoice["balance"]) == Decimal("288.91") - Decimal("97.41")
    assert memo["balance"] == "0.00"
    assert report["customers"][0]["balance"] == "191.50"


def test_credit_note_refunded_creates_memo_and_refund(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    event = sample_credit_note_event(disposition=CreditDisposition.REFUNDED)
    ns.write(event)
    ns.write(event)  # replay
    report = ns.report()
    memo = next(d for d in report["documents"] if d["kind"] == "credit_note")
    assert memo["balance"] == "0.00"
    assert [r["reference"] for r in report["refunds"]] == ["ls-rfd-cn-cn1"]
    assert report["duplicates"]["count"] == 0


def test_void_deletes_unpaid_invoice_and_replay_is_harmless(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    void = sample_invoice_event(op=Op.UPDATE, version=3,
                                invoice=sample_invoice(status=InvoiceStatus.VOID))
    result = ns.write(void)
    assert not result.already_applied
    assert [d["status"] for d in ns.report()["documents"]] == ["Deleted"]  # getDeleted view
    assert ns.sandbox.account(HOST).records["invoice"] == {}
    again = ns.write(void)
    assert again.already_applied  # 404 on the second delete: already gone


def test_void_of_paid_invoice_is_refused(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    ns.write(sample_payment_event(amount=Decimal("10.00")))
    with pytest.raises(PayloadRejectedError) as info:
        ns.write(sample_invoice_event(op=Op.DELETE, version=4))
    assert info.value.vendor_code == "CANT_DELETE_TRANS"


def test_customer_delete_marks_inactive(ns: Harness) -> None:
    ns.write(sample_customer_event())
    ns.write(sample_customer_event(op=Op.DELETE, version=2))
    assert ns.report()["customers"][0]["active"] is False


def test_closed_period_pauses_the_tenant_with_hint(ns: Harness,
                                                  sandbox: NetSuiteSandbox) -> None:
    ns.write(sample_customer_event())
    sandbox.lock_period(HOST, sample_invoice().issue_date)
    with pytest.raises(ConfigurationError, match="reopen it") as info:
        ns.write(sample_invoice_event())
    assert info.value.vendor_code == "TRAN_PERIOD_CLOSED"
    sandbox.lock_period(HOST, None)
    ns.write(sample_invoice_event())
    assert len(ns.report()["documents"]) == 1


def test_customer_made_inactive_behind_our_back_is_reactivated(
        ns: Harness, sandbox: NetSuiteSandbox) -> None:
    ns.write(sample_invoice_event())
    with sandbox.lock:
        sandbox.deactivate_customer(HOST, ns.ids["customer:c1"])
    result = ns.write(sample_invoice_event(invoice_id="inv2",
                                           invoice=sample_invoice("inv2", number="INV-2")))
    assert any("reactivated" in note for note in result.raw["notes"])
    report = ns.report()
    assert report["customers"][0]["active"] is True and len(report["documents"]) == 2


def test_duplicate_number_from_another_record(ns: Harness) -> None:
    ns.write(sample_invoice_event())
    clash = sample_invoice("inv2", number="INV-INV1")
    with pytest.raises(PayloadRejectedError) as info:
        ns.write(sample_invoice_event(invoice_id="inv2", invoice=clash))
    assert info.value.vendor_code == "DUP_TRANS"
    assert len(ns.report()["documents"]) == 1


def test_record_changed_and_concurrency_limit_are_retried(
        ns: Harness, sandbox: NetSuiteSandbox) -> None:
    ns.write(sample_customer_event())
    sandbox.apply_fault({"kind": "record_changed"})
    sandbox.faults.arm("rate_limit", 1)
    ns.write(sample_invoice_event())
    assert len(ns.report()["documents"]) == 1


def test_unmapped_item_id_pauses_the_tenant(sandbox: NetSuiteSandbox) -> None:
    tenant = tenant_config()
    bad = tenant.model_copy(update={"mapping": tenant.mapping.model_copy(
        update={"items": {**tenant.mapping.items, "fees": "999"}})})
    harness = Harness(sandbox, bad)
    with pytest.raises(ConfigurationError, match=r"item\.items\[2\]\.item"):
        harness.write(sample_invoice_event())


def test_revoked_token_pauses_the_tenant(ns: Harness, sandbox: NetSuiteSandbox) -> None:
    ns.write(sample_customer_event())
    sandbox.revoke_tba(ACCOUNT)
    with pytest.raises(ConfigurationError, match=r"not refreshable.*login rejected"):
        ns.write(sample_invoice_event())


def test_tax_rate_and_tipped_payment_are_unsupported(ns: Harness) -> None:
    from schemas.examples import sample_tax_rate_event

    with pytest.raises(UnsupportedEventError, match="tax codes"):
        ns.write(sample_tax_rate_event())
    ns.write(sample_invoice_event())
    tipped = sample_payment(amount=Decimal("100.00"), tip=Decimal("10.00"),
                            allocations=({"invoice_id": "inv1", "amount": Decimal("90.00")},))
    with pytest.raises(UnsupportedEventError, match="tip"):
        ns.write(sample_payment_event(payment=tipped))
