"""Sage Accounting flows driven end to end against the Sage sandbox with FlowRunner;
every request the platform built is validated against Sage's swagger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from schemas.examples import (
    sample_credit_note_event,
    sample_customer_event,
    sample_invoice,
    sample_invoice_event,
    sample_ledger_entry,
    sample_payment,
    sample_payment_event,
    sample_refund_event,
    sample_tax_rate_event,
)
from schemas.models import CreditDisposition, InvoiceStatus, LedgerEntry, Op
from sinks.core.errors import (
    ConfigurationError,
    PayloadRejectedError,
    ReferenceMissingError,
    UnsupportedEventError,
)
from tests.sinks.platforms.sage_accounting_support import (
    BUSINESS,
    Harness,
    harness,
    load_swagger,
    request_errors,
    sage,
    sage_client,
)

__all__ = ["harness", "sage", "sage_client"]  # fixtures re-exported for pytest

D = Decimal
#: Total of the sample invoice: 281.49 + 8.25 % of the 89.99 part (7.42).
TOTAL = D("288.91")


def report(h: Harness) -> dict[str, Any]:
    return h.sandbox.ledger_report(BUSINESS)


def invoice_entry(version: int = 1, op: Op = Op.CREATE, **invoice_overrides: Any) -> LedgerEntry:
    invoice = sample_invoice(**invoice_overrides) if invoice_overrides else None
    return sample_ledger_entry(sample_invoice_event(op=op, version=version, invoice=invoice))


def test_invoice_create_finds_or_creates_contact_and_matches_crm_totals(harness: Harness) -> None:
    result = harness.write(invoice_entry())
    assert result.document_number == "INV-INV1"
    assert harness.external_ids["customer:c1"]
    rep = report(harness)
    [doc] = rep["documents"]
    assert doc["total"] == "288.91" and doc["reference"] == "inv1"
    assert rep["duplicates"]["count"] == 0
    # a second invoice for the same customer reuses the contact
    harness.write(sample_ledger_entry(sample_invoice_event(invoice_id="inv2")))
    assert len(report(harness)["customers"]) == 1


def test_replay_of_every_event_creates_nothing_twice(harness: Harness) -> None:
    entries = [
        sample_ledger_entry(sample_customer_event()),
        invoice_entry(),
        sample_ledger_entry(sample_payment_event(amount=D("100.00"), payment=sample_payment(
            amount=D("100.00"), processor_fee=D("3.20"), tip=D(0)))),
    ]
    for entry in entries:
        harness.write(entry)
    before = report(harness)
    fresh = Harness(harness.sandbox, harness.client)  # external-id map lost: pure replay
    for entry in entries:
        assert fresh.write(entry).external_id
    after = report(harness)
    assert after["duplicates"]["count"] == 0
    assert after["documents"] == before["documents"]
    assert after["payments"] == before["payments"]
    assert len(harness.sandbox.business(BUSINESS).other_payments) == 1


@pytest.mark.parametrize("event", ["customer", "invoice", "payment", "credit_note"])
def test_drop_after_write_is_retried_with_the_same_key(harness: Harness, event: str) -> None:
    harness.write(invoice_entry())
    entries = {
        "customer": sample_ledger_entry(sample_customer_event(
            customer_id="c2", event_id="7c6c1a46-3b1b-4a59-8a5d-0ec4c9e0a001")),
        "invoice": sample_ledger_entry(sample_invoice_event(invoice_id="inv2")),
        "payment": sample_ledger_entry(sample_payment_event(amount=D("50.00"))),
        "credit_note": sample_ledger_entry(sample_credit_note_event()),
    }
    entry = entries[event]
    harness.sandbox.faults.arm("drop_after_write", 1, BUSINESS)
    harness.write(entry)
    assert not harness.sandbox.faults.pending()
    rep = report(harness)
    assert rep["duplicates"]["count"] == 0
    if event == "customer":
        assert sorted(c["balance"] for c in rep["customers"]) == ["0.00", "288.91"]
    if event == "customer":
        # the retry finds the contact by reference and updates it instead
        assert [r.method for r in harness.sent if r.path.startswith("/contacts")][-2:] == [
            "GET", "PUT"]
    else:
        keys = [r.idempotency_key for r in harness.sent if r.method == "POST"]
        assert len(keys) > len(set(keys)), "the lost write was not retried with its key"


def test_drop_after_write_on_every_step_of_a_payment(harness: Harness) -> None:
    harness.write(invoice_entry())
    payment = sample_payment(amount=D("120.00"), tip=D("20.00"), processor_fee=D("3.78"),
                             allocations=())
    payment = payment.model_copy(update={"allocations": (
        sample_payment().allocations[0].model_copy(update={"amount": D("100.00")}),)})
    entry = sample_ledger_entry(sample_payment_event(payment=payment))
    harness.sandbox.faults.arm("drop_after_write", 3, BUSINESS)
    harness.write(entry, retries=5)
    biz = harness.sandbox.business(BUSINESS)
    assert len(biz.contact_payments) == 1
    assert len(biz.other_payments) == 2  # one tip, one fee
    [pay] = report(harness)["payments"]
    assert pay["amount"] == "100.00" and pay["unapplied"] == "0.00"
    [inv] = report(harness)["documents"]
    assert inv["balance"] == "188.91"


def test_invoice_update_and_stale_version(harness: Harness) -> None:
    harness.write(invoice_entry())
    lines = sample_invoice().lines
    bigger = lines[0].model_copy(update={"quantity": D("2"), "amount": D("190.00")})
    invoice = sample_invoice(lines=(bigger, *lines[1:]))
    result = harness.write(sample_ledger_entry(sample_invoice_event(
        op=Op.UPDATE, version=2, invoice=invoice)))
    assert not result.already_applied
    assert report(harness)["documents"][0]["total"] == "336.41"
    # same update replayed: the document already says so, no PUT is sent
    puts = sum(r.method == "PUT" for r in harness.sent)
    again = harness.write(sample_ledger_entry(sample_invoice_event(
        op=Op.UPDATE, version=2, invoice=invoice)))
    assert again.already_applied and sum(r.method == "PUT" for r in harness.sent) == puts
    # a bookkeeper edits it in Sage; our next update must not clobber the edit
    harness.sandbox.edit_document(BUSINESS, harness.external_ids["invoice:inv1"],
                                  notes="edited in Sage")
    with pytest.raises(PayloadRejectedError, match="changed in Sage"):
        harness.write(invoice_entry(version=3, op=Op.UPDATE))


def test_void_invoice_and_replay_of_the_void(harness: Harness) -> None:
    harness.write(invoice_entry())
    void = invoice_entry(version=2, op=Op.UPDATE, status=InvoiceStatus.VOID)
    harness.write(void)
    [doc] = report(harness)["documents"]
    assert doc["status"] == "VOIDED"
    assert harness.write(void).already_applied
    deleted = sample_ledger_entry(sample_invoice_event(op=Op.DELETE, version=3))
    assert harness.write(deleted).already_applied


def test_void_refused_while_paid_is_a_rejection(harness: Harness) -> None:
    harness.write(invoice_entry())
    harness.write(sample_ledger_entry(sample_payment_event(amount=D("10.00"))))
    with pytest.raises(UnsupportedEventError, match="voids only unallocated"):
        harness.write(sample_ledger_entry(sample_invoice_event(op=Op.DELETE, version=2)))
    assert report(harness)["documents"][0]["status"] != "VOIDED"


def test_payment_delete_releases_the_invoice(harness: Harness) -> None:
    harness.write(invoice_entry())
    harness.write(sample_ledger_entry(sample_payment_event(amount=TOTAL)))
    assert report(harness)["documents"][0]["balance"] == "0.00"
    from schemas.examples import _event
    from schemas.models import AggregateType, EventSource

    delete = _event("t1", AggregateType.PAYMENT, "pay1", None, op=Op.DELETE, version=2,
                    event_type="payment.deleted", event_id=None, occurred_at=None,
                    source=EventSource.OUTBOX)
    harness.write(sample_ledger_entry(delete))
    harness.write(sample_ledger_entry(delete))  # replay: 404 is the same outcome
    assert report(harness)["documents"][0]["balance"] == "288.91"
    assert report(harness)["payments"] == []


def test_credited_credit_note_is_allocated_to_the_invoice(harness: Harness) -> None:
    harness.write(invoice_entry())
    harness.write(sample_ledger_entry(sample_credit_note_event()))
    assert harness.write(sample_ledger_entry(sample_credit_note_event())).already_applied
    rep = report(harness)
    inv = next(d for d in rep["documents"] if d["kind"] == "invoice")
    note = next(d for d in rep["documents"] if d["kind"] == "credit_note")
    assert note["total"] == "97.41" and note["balance"] == "0.00"
    assert inv["balance"] == "191.50"
    assert [a["source_kind"] for a in rep["applications"]] == ["credit_note"]


def test_refunded_credit_note_gets_a_customer_refund(harness: Harness) -> None:
    harness.write(invoice_entry())
    harness.write(sample_ledger_entry(sample_credit_note_event(
        invoice_id=None, disposition=CreditDisposition.REFUNDED)))
    biz = harness.sandbox.business(BUSINESS)
    [refund] = biz.contact_payments.values()
    assert refund["transaction_type"]["id"] == "CUSTOMER_REFUND"
    note = next(d for d in report(harness)["documents"] if d["kind"] == "credit_note")
    assert note["balance"] == "0.00"


def test_refund_payment_is_a_customer_refund(harness: Harness) -> None:
    harness.write(invoice_entry())
    harness.write(sample_ledger_entry(sample_payment_event(amount=TOTAL)))
    with pytest.raises(UnsupportedEventError, match="re-opens invoice"):
        harness.write(sample_ledger_entry(sample_refund_event()))
    harness.write(refund_on_account())
    types = sorted(p["transaction_type"]["id"]
                   for p in harness.sandbox.business(BUSINESS).contact_payments.values())
    assert types == ["CUSTOMER_RECEIPT", "CUSTOMER_REFUND"]


def refund_on_account() -> LedgerEntry:
    """A refund of money held on account: no allocation."""
    event = sample_refund_event()
    payment = event.payload
    assert payment is not None
    return sample_ledger_entry(event.model_copy(update={
        "payload": payment.model_copy(update={"allocations": ()})}))


def test_unsynced_references_and_unsupported_events(harness: Harness) -> None:
    with pytest.raises(ReferenceMissingError, match="has not reached Sage"):
        harness.write(sample_ledger_entry(sample_payment_event(invoice_id="never")))
    with pytest.raises(UnsupportedEventError, match="tax rates are Sage settings"):
        harness.write(sample_ledger_entry(sample_tax_rate_event()))
    with pytest.raises(UnsupportedEventError, match="refuses to delete a contact"):
        harness.write(sample_ledger_entry(sample_customer_event(op=Op.DELETE, version=2)))


def test_locked_period_pauses_the_tenant(harness: Harness) -> None:
    from datetime import date

    harness.sandbox.lock_period(BUSINESS, date(2025, 3, 31))
    with pytest.raises(ConfigurationError, match="period closed in Sage") as caught:
        harness.write(invoice_entry())
    assert caught.value.action.value == "pause_tenant"
    harness.sandbox.lock_period(BUSINESS, None)
    assert harness.write(invoice_entry()).external_id


def test_over_payment_replayed_with_its_id_keeps_the_cap(harness: Harness) -> None:
    """Rewriting a capped over-payment (replay, or an update) re-caps it at what the
    invoice can take including this payment's own allocation, instead of asking Sage
    for the uncapped amount (which it refuses)."""
    harness.write(invoice_entry())
    over = TOTAL + D("50.00")
    payment = sample_payment(amount=over)
    payment = payment.model_copy(update={"allocations": (
        payment.allocations[0].model_copy(update={"amount": over}),)})
    entry = sample_ledger_entry(sample_payment_event(payment=payment))
    harness.write(entry)
    again = harness.write(entry)  # the id map knows the payment: a PUT
    assert D(str(again.raw["allocated_artefacts"][0]["amount"])) == TOTAL
    assert report(harness)["documents"][0]["balance"] == "0.00"
    assert len(harness.sandbox.business(BUSINESS).contact_payments) == 1


def test_duplicate_number_from_another_document_is_rejected(harness: Harness) -> None:
    harness.write(invoice_entry())
    other = sample_invoice("inv9", number="INV-INV1")
    with pytest.raises(PayloadRejectedError, match="already used in Sage"):
        harness.write(sample_ledger_entry(sample_invoice_event(invoice_id="inv9",
                                                               invoice=other)))


def test_duplicate_number_of_our_own_invoice_is_already_applied(harness: Harness) -> None:
    """The idempotency window lapsed (or the key was lost) but the invoice is there."""
    harness.write(invoice_entry())
    harness.sandbox.business(BUSINESS).idempotent.clear()
    fresh = Harness(harness.sandbox, harness.client)
    result = fresh.write(invoice_entry())
    assert result.already_applied
    assert report(harness)["duplicates"]["count"] == 0


def test_rate_limit_and_token_expiry_are_classified(harness: Harness) -> None:
    from sinks.core.errors import AuthExpiredError, RateLimitedError

    harness.sandbox.faults.arm("rate_limit", 1, BUSINESS)
    with pytest.raises(RateLimitedError) as limited:
        harness.write(invoice_entry(), retries=0)
    assert limited.value.retry_after == 60
    harness.sandbox.tokens.expire_access_tokens()
    with pytest.raises(AuthExpiredError):
        harness.write(invoice_entry(), retries=0)


def test_every_request_built_validates_against_the_swagger(harness: Harness) -> None:
    swagger = load_swagger()
    harness.write(sample_ledger_entry(sample_customer_event()))
    harness.write(sample_ledger_entry(sample_customer_event(op=Op.UPDATE, version=2)))
    harness.write(invoice_entry())
    harness.write(invoice_entry(version=2, op=Op.UPDATE, notes="changed"))
    harness.write(sample_ledger_entry(sample_invoice_event(invoice_id="inv2")))
    harness.write(sample_ledger_entry(sample_payment_event(payment=sample_payment(
        amount=D("298.91"), tip=D("10.00"), allocations=(
            sample_payment().allocations[0].model_copy(update={"amount": TOTAL}),))), ))
    harness.write(sample_ledger_entry(sample_credit_note_event(invoice_id="inv2")))
    harness.write(sample_ledger_entry(sample_credit_note_event(
        credit_note_id="cn2", invoice_id=None, disposition=CreditDisposition.REFUNDED)))
    harness.write(refund_on_account())
    harness.write(sample_ledger_entry(sample_invoice_event(
        invoice_id="inv3", invoice=sample_invoice("inv3"))))
    harness.write(sample_ledger_entry(sample_invoice_event(invoice_id="inv3", op=Op.DELETE,
                                                           version=2)))
    methods = {(r.method, r.path.split("/")[1]) for r in harness.sent}
    assert {("POST", "contacts"), ("PUT", "contacts"), ("POST", "sales_invoices"),
            ("PUT", "sales_invoices"), ("DELETE", "sales_invoices"),
            ("POST", "contact_payments"), ("POST", "sales_credit_notes"),
            ("POST", "contact_allocations"), ("POST", "other_payments")} <= methods
    problems = [p for r in harness.sent for p in request_errors(swagger, r)]
    assert problems == []


@pytest.mark.xfail(strict=True, raises=PayloadRejectedError, reason=(
    "known defect (docs/platforms/sage-accounting.md): Sage cannot tell an unrecorded "
    "write of ours from a bookkeeper's, so replaying a superseded update is StaleVersion"))
def test_replay_of_an_update_superseded_by_an_unrecorded_later_update(
        harness: Harness) -> None:
    """The shape the crash-injection e2e met: two updates of one invoice written from
    one batch, the sink killed before recording either; the earlier one is replayed
    first, against the stored version of the create."""
    harness.write(invoice_entry())
    lines = sample_invoice().lines
    bigger = lines[0].model_copy(update={"quantity": D("2"), "amount": D("190.00")})
    v2 = sample_ledger_entry(sample_invoice_event(
        op=Op.UPDATE, version=2, invoice=sample_invoice(lines=(bigger, *lines[1:]))))
    v3 = sample_ledger_entry(sample_invoice_event(
        op=Op.UPDATE, version=3, invoice=sample_invoice(notes="v3")))
    recorded = (dict(harness.external_ids), dict(harness.versions))
    for entry in (v2, v3):
        harness.sandbox.clock_tick()
        harness.write(entry)
    harness.external_ids, harness.versions = dict(recorded[0]), dict(recorded[1])  # killed
    harness.sandbox.clock_tick()
    harness.write(v2)  # the replay: should be recognised as superseded, not dead-lettered
