"""The CRM-vs-platform comparison: what the CRM implies, and that differences show."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from schemas.examples import sample_credit_note, sample_customer, sample_invoice, sample_payment
from schemas.models import CreditDisposition, PaymentKind
from sinks.platforms.common.reconcile import expected_ledger, format_differences, reconcile
from tests.sinks.corpus import SCENARIOS, Story, pay

TOTAL = D("288.91")


def _story() -> Story:
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    return story


def test_refund_reopens_and_refunded_credit_settles_itself() -> None:
    story = _story()
    invoice = story.invoice(sample_invoice("inv1"))
    story.payment(pay("pay1", invoice, TOTAL))
    story.payment(sample_payment("ref1", amount=D("50.00"), kind=PaymentKind.REFUND,
                                 refund_of="pay1"))
    story.credit_note(sample_credit_note("cn1", invoice_id="inv1",
                                         disposition=CreditDisposition.REFUNDED))
    ledger = expected_ledger(story.entries)
    assert ledger.invoices["inv1"].open_balance == D("50.00")
    assert ledger.credit_notes["cn1"].remaining == 0
    assert ledger.customers["c1"] == D("50.00")


def test_over_application_becomes_credit_and_void_releases_payments() -> None:
    over = expected_ledger(SCENARIOS["over_payment"].entries())
    assert over.invoices["inv1"].open_balance == 0
    assert over.customers["c1"] == TOTAL - D("350.00")
    voided = expected_ledger(SCENARIOS["void_after_payment"].entries())
    assert voided.invoices["inv1"].voided
    assert voided.customers["c1"] == D("-100.00")


def _report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "documents": [{"kind": "invoice", "id": "9", "number": "INV-INV1", "status": "Open",
                       "customer_id": "5", "total": "288.91", "balance": "188.91"}],
        "payments": [{"id": "11", "customer_id": "5", "amount": "100.00", "unapplied": "0.00",
                      "status": "Active"}],
        "customers": [{"id": "5", "name": "Zoë"}],
        "duplicates": {"count": 0, "groups": []},
    }
    report.update(overrides)
    return report


IDS = {"invoice:inv1": "9", "customer:c1": "5", "payment:pay1": "11"}


def test_agreeing_books_have_no_differences() -> None:
    expected = expected_ledger(SCENARIOS["partial_payment"].entries())
    assert reconcile(expected, _report(), IDS) == []
    assert format_differences([]) == "books agree"


def test_every_kind_of_disagreement_is_reported() -> None:
    expected = expected_ledger(SCENARIOS["partial_payment"].entries())
    wrong_total = _report(documents=[{**_report()["documents"][0], "total": "290.00",
                                      "balance": "190.00"}])
    diffs = reconcile(expected, wrong_total, IDS)
    assert {d.what for d in diffs} == {"total", "open balance", "customer balance"}
    stray = _report(documents=[*_report()["documents"], {
        "kind": "invoice", "id": "10", "number": "INV-INV1", "status": "Open",
        "customer_id": "5", "total": "288.91", "balance": "288.91"}],
        duplicates={"count": 1, "groups": [{"ids": ["9", "10"]}]},
        customers=[{"id": "5", "name": "Zoë"}, {"id": "6", "name": "Zoë (c1)"}])
    whats = {d.what for d in reconcile(expected, stray, IDS)}
    assert {"unexpected document", "duplicates", "unexpected customer"} <= whats
    assert reconcile(expected, stray, IDS, only_ours=False)[0].what == "customer balance"
    missing = reconcile(expected, _report(documents=[], payments=[]), IDS)
    assert {(d.what, d.key) for d in missing} >= {("missing", "invoice:inv1"),
                                                   ("missing", "payment:pay1")}
    assert "invoice:inv1: missing: CRM 288.91" in format_differences(missing)


def test_a_voided_invoice_may_be_gone_but_not_left_open() -> None:
    """Platforms delete a never-released document instead of voiding it (Acumatica,
    Business Central): absent is as good as voided; still open is a difference."""
    expected = expected_ledger(SCENARIOS["void_after_payment"].entries())
    assert expected.invoices["inv1"].voided
    gone = reconcile(expected, _report(documents=[]), IDS)
    assert not [d for d in gone if d.key == "invoice:inv1"]
    still_open = reconcile(expected, _report(), IDS)
    assert ("voided", "invoice:inv1") in {(d.what, d.key) for d in still_open}
