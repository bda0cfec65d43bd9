"""The verdict of a pipeline run (the demo's exit status): documented platform
limitations are expected dead letters, anything else fails the run."""

from __future__ import annotations

from decimal import Decimal

from ledgerstream.demo import DemoSummary
from ledgerstream.pipeline import DeadLetterInfo, PipelineResult, TenantResult
from sinks.platforms.common.reconcile import Difference
from sinks.platforms.limitations import DOCUMENTED_UNSUPPORTED, documented_limitation
from sinks.platforms.registry import all_platforms

ZERO = Decimal("0.00")
TIP = ("business-central: payment PAY-00021 includes a tip of 5.0000; a BC customer "
       "payment line can only credit the customer, the tip needs a G/L journal line")


def tenant(tenant_id: str, platform: str, *differences: Difference) -> TenantResult:
    return TenantResult(tenant_id, platform, list(differences), 1, ZERO, ZERO, 1, ZERO,
                        ZERO, 0)


def letter(tenant_id: str, error_class: str, reason: str) -> DeadLetterInfo:
    return DeadLetterInfo("sink.dlq", "sink.write", error_class, reason, tenant_id, "e1")


def result(tenants: list[TenantResult], letters: list[DeadLetterInfo],
           dead_keys: dict[str, set[str]] | None = None) -> PipelineResult:
    return PipelineResult(
        run_id="r", duration_s=1.0, events_produced=3, ledger_entries=3, platforms={},
        tenants={t.tenant_id: t for t in tenants}, dead_letters=letters, latencies_ms=[1.0],
        dead_lettered_keys=dead_keys or {},
        assignment={t.tenant_id: t.platform for t in tenants})


PAYMENT_MISSING = Difference("missing", "payment:pay-21", "a payment", None)
BALANCE = Difference("customer balance", "customer:c1", "0.00", "5.00")


def test_every_registered_platform_has_an_entry() -> None:
    assert set(DOCUMENTED_UNSUPPORTED) == {p.spec.name for p in all_platforms()}


def test_a_documented_limitation_is_expected_and_explains_its_tenants_books() -> None:
    run = result([tenant("t1", "business-central", PAYMENT_MISSING, BALANCE),
                  tenant("t2", "xero")],
                 [letter("t1", "UnsupportedEventError", TIP)],
                 {"t1": {"payment:pay-21"}})
    assert run.limitation_of(run.dead_letters[0]) == "tip_and_fee"
    assert run.limitations("t1") == ["tip_and_fee"] and run.limitations("t2") == []
    assert run.unexpected_dead_letters == [] and run.unexplained_missing == []
    assert run.ok
    text = DemoSummary(ok=run.ok, result=run).text(width=400)
    assert "documented: tip_and_fee" in text and "except where" in text and "t1" in text


def test_the_same_reason_on_a_platform_that_can_record_it_is_unexpected() -> None:
    run = result([tenant("t1", "quickbooks-online", PAYMENT_MISSING)],
                 [letter("t1", "UnsupportedEventError", TIP)], {"t1": {"payment:pay-21"}})
    assert run.limitation_of(run.dead_letters[0]) is None
    assert not run.ok
    assert "unexpected" in DemoSummary(ok=False, result=run).text(width=400)


def test_other_error_classes_are_never_documented_limitations() -> None:
    assert documented_limitation("business-central", "PayloadRejectedError", TIP) is None
    run = result([tenant("t1", "business-central")],
                 [letter("t1", "PayloadRejectedError", TIP)])
    assert not run.ok


def test_a_cascade_counts_only_when_its_document_was_dead_lettered() -> None:
    cascade = letter("t1", "ReferenceMissingError",
                     "credit_note cn-9 was never synced to Business Central")
    lettered = result([tenant("t1", "business-central")],
                      [letter("t1", "UnsupportedEventError", TIP), cascade],
                      {"t1": {"credit_note:cn-9", "payment:pay-21"}})
    assert lettered.limitation_of(cascade) == "cascade" and lettered.ok
    alone = result([tenant("t1", "business-central")], [cascade])
    assert alone.limitation_of(cascade) is None and not alone.ok


def test_books_that_differ_without_a_documented_dead_letter_fail_the_run() -> None:
    run = result([tenant("t1", "business-central", BALANCE)], [])
    assert not run.books_ok(run.tenants["t1"]) and not run.ok


def test_a_lost_document_fails_the_run_even_beside_a_documented_limitation() -> None:
    lost = Difference("missing", "invoice:inv-3", "120.00", None)
    run = result([tenant("t1", "business-central", PAYMENT_MISSING, lost)],
                 [letter("t1", "UnsupportedEventError", TIP)], {"t1": {"payment:pay-21"}})
    assert run.unexplained_missing == [lost] and not run.ok


def test_latency_is_reported_per_platform_too() -> None:
    run = result([tenant("t1", "xero"), tenant("t2", "quickbooks-online")], [])
    run.latencies_ms = [100.0, 200.0, 30_000.0, 60_000.0]
    run.latencies_by_platform = {"quickbooks-online": [100.0, 200.0],
                                 "xero": [30_000.0, 60_000.0]}
    assert run.latency_ms(0.5, platform="quickbooks-online") == 150.0
    assert run.latency_ms(0.5, platform="xero") == 45_000.0
    assert run.latency_ms(0.5, platform="odoo") is None
    assert run.latency_ms(0.5) == 15_100.0
