"""Balances: identities and order/duplicate independence for ANY event history, checked
against the independent oracle; plus examples pinning each business rule."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.examples import (
    SAMPLE_TAX_CODE,
    sample_credit_note_event,
    sample_customer_event,
    sample_invoice_event,
    sample_payment_event,
    sample_refund_event,
    sample_tax_rate_event,
)
from schemas.models import (
    CreditDisposition,
    CustomerBalance,
    FinancialEvent,
    InvoiceStatus,
    Op,
)
from stream_processors.balances import (
    CustomerLedger,
    Verdict,
    aging_bucket,
    compute_balances,
)
from stream_processors.engine import (
    Park,
    Result,
    TaxBook,
    apply_customer_event,
    process_financial_event,
)
from stream_processors.tax import TaxPolicy
from tests.stream_processors.oracle import expected_balances
from tests.stream_processors.strategies import TENANT, customer_key, histories

D = Decimal
NOW = datetime(2025, 6, 1, tzinfo=UTC)
BOOK = TaxBook().apply(sample_tax_rate_event())[0]
ROWS = {c: apply_customer_event(None, sample_customer_event(TENANT, c))[0]
        for c in ("c1", "c2")}


def run(events: list[FinancialEvent]) -> tuple[dict[str, CustomerLedger], list[Result]]:
    ledgers: dict[str, CustomerLedger] = {}
    results = []
    for ev in events:
        customer = customer_key(ev)
        out = process_financial_event(
            ev, customer_id=customer, customer=ROWS[customer],
            ledger=ledgers.get(customer, CustomerLedger()),
            tax_book=lambda code: BOOK if code == SAMPLE_TAX_CODE else None,
            policy=TaxPolicy(), processed_at=NOW,
        )
        assert isinstance(out, Result), out
        ledgers[customer] = out.ledger
        results.append(out)
    return ledgers, results


def final(ledgers: dict[str, CustomerLedger]) -> dict[tuple[str, str], CustomerBalance]:
    """Every non-zero balance (a zero balance and no balance mean the same)."""
    out = {}
    for customer, ledger in ledgers.items():
        for currency, b in compute_balances(ledger, TENANT, customer, "x").customers.items():
            if any((b.invoiced, b.paid, b.credited, b.refunded, b.unapplied_credit)):
                out[(customer, currency)] = b
    return out


@settings(max_examples=200, deadline=None)
@given(history=histories(), data=st.data())
def test_any_order_with_duplicates_gives_the_oracles_balances(
    history: list[FinancialEvent], data: st.DataObject
) -> None:
    dupes = data.draw(st.lists(st.sampled_from(history), max_size=8)) if history else []
    shuffled = data.draw(st.permutations(history + dupes))
    in_order, _ = run(history)
    ledgers, results = run(shuffled)
    got = final(ledgers)
    assert got == final(in_order)  # order and duplicates change nothing
    oracle = expected_balances(history)
    for (tenant, customer, currency), exp in oracle.items():
        b = got.get((customer, currency))
        if b is None:  # only deleted documents in that currency
            assert exp.invoiced == exp.paid == exp.credited == exp.refunded == 0
            continue
        assert (b.invoiced, b.paid, b.credited, b.refunded) == (
            exp.invoiced, exp.paid, exp.credited, exp.refunded)
        assert b.outstanding == exp.outstanding == (
            b.invoiced - b.paid - b.credited + b.refunded)
        assert b.unapplied_credit == exp.unapplied
        aging = b.aging
        assert (aging.current + aging.d1_30 + aging.d31_60 + aging.d61_90 + aging.d90_plus
                == sum(exp.open_by_invoice.values(), start=D(0)))
        invoices = compute_balances(ledgers[customer], tenant, customer, "x").invoices
        for inv_id, open_ in exp.open_by_invoice.items():
            assert invoices[inv_id].open_balance == open_
    applied = sum(r.verdict is Verdict.APPLIED for r in results)
    assert applied <= len(history)
    assert all(r.entry is None for r in results if r.verdict is not Verdict.APPLIED)


@settings(max_examples=100, deadline=None)
@given(history=histories())
def test_replaying_everything_twice_changes_nothing(history: list[FinancialEvent]) -> None:
    once, _ = run(history)
    twice, results = run(history + history)
    assert final(twice) == final(once)
    assert all(r.verdict is Verdict.DUPLICATE for r in results[len(history):])


# ----------------------------------------------------------------- examples


def _process(events: list[FinancialEvent]) -> Result:
    _, results = run(events)
    return results[-1]


def _customer_balance(events: list[FinancialEvent]) -> CustomerBalance:
    ledgers, _ = run(events)
    return final(ledgers)[("c1", "USD")]


INV = sample_invoice_event()  # total 288.91, due 2025-04-13


def test_partial_payment_then_overpayment_leaves_unapplied_credit() -> None:
    partial = sample_payment_event(payment_id="p1", amount=D("100.00"))
    result = _process([INV, partial])
    (inv,) = result.entry.invoice_balances if result.entry else ()
    assert (inv.paid, inv.open_balance, inv.status) == (
        D("100.00"), D("188.91"), InvoiceStatus.PARTIALLY_PAID)
    over = sample_payment_event(payment_id="p2", amount=D("200.00"))
    b = _customer_balance([INV, partial, over])
    assert (b.outstanding, b.unapplied_credit) == (D("-11.09"), D("11.09"))


def test_refund_payment_reopens_the_invoice() -> None:
    paid = sample_payment_event(amount=D("288.91"))
    refund = sample_refund_event(amount=D("50.00"))
    result = _process([INV, paid, refund])
    (inv,) = result.entry.invoice_balances if result.entry else ()
    assert (inv.open_balance, inv.status) == (D("50.00"), InvoiceStatus.PARTIALLY_PAID)


def test_refunded_credit_note_does_not_reopen_but_credited_one_applies() -> None:
    paid = sample_payment_event(amount=D("288.91"))
    refunded = sample_credit_note_event(disposition=CreditDisposition.REFUNDED, invoice_id=None)
    b = _customer_balance([INV, paid, refunded])
    assert (b.credited, b.refunded, b.outstanding, b.unapplied_credit) == (
        D("97.41"), D("97.41"), D(0), D(0))
    credited = sample_credit_note_event(credit_note_id="cn2")
    b = _customer_balance([INV, paid, credited])
    assert (b.outstanding, b.unapplied_credit) == (D("-97.41"), D("97.41"))


def test_void_and_delete_reverse_exactly_once() -> None:
    paid = sample_payment_event(amount=D("100.00"))
    void = sample_invoice_event(op=Op.UPDATE, version=2, invoice=INV.payload.model_copy(  # type: ignore[union-attr]
        update={"status": InvoiceStatus.VOID}))
    b = _customer_balance([INV, paid, void, void])
    assert (b.invoiced, b.paid, b.outstanding, b.unapplied_credit) == (
        D(0), D("100.00"), D("-100.00"), D("100.00"))
    delete = sample_invoice_event(op=Op.DELETE, version=3)
    b2 = _customer_balance([INV, paid, void, delete, delete])
    assert b2 == b.model_copy(update={"as_of": b2.as_of})


def test_older_version_after_newer_is_stale_and_ignored() -> None:
    v2 = sample_invoice_event(op=Op.UPDATE, version=2, invoice=INV.payload.model_copy(  # type: ignore[union-attr]
        update={"total": D("10.00")}))
    ledgers, results = run([v2, INV])
    assert results[-1].verdict is Verdict.STALE
    assert results[-1].ledger.stale_events == 1
    assert final(ledgers)[("c1", "USD")].invoiced == D("10.00")


def test_aging_uses_event_time_not_the_wall_clock() -> None:
    assert [aging_bucket(d) for d in (-3, 0, 1, 30, 31, 60, 61, 90, 91)] == [
        "current", "current", "d1_30", "d1_30", "d31_60", "d31_60", "d61_90", "d61_90",
        "d90_plus"]
    late = sample_payment_event(payment_id="p9", amount=D("8.91"),
                                occurred_at=datetime(2025, 6, 1, tzinfo=UTC))
    b = _customer_balance([INV, late])
    days = (date(2025, 6, 1) - date(2025, 4, 13)).days  # 49
    assert aging_bucket(days) == "d31_60"
    assert (b.aging.d31_60, b.as_of) == (D("280.00"), datetime(2025, 6, 1, tzinfo=UTC))


def test_unknown_customer_and_unknown_tax_code_park() -> None:
    out = process_financial_event(
        INV, customer_id="c1", customer=None, ledger=CustomerLedger(),
        tax_book=lambda c: BOOK, policy=TaxPolicy(), processed_at=NOW)
    assert isinstance(out, Park) and out.error_class == "UnknownCustomer"
    out = process_financial_event(
        INV, customer_id="c1", customer=ROWS["c1"], ledger=CustomerLedger(),
        tax_book=lambda c: None, policy=TaxPolicy(), processed_at=NOW)
    assert isinstance(out, Park) and out.error_class == "UnknownTaxCode"


def test_ledger_round_trips_through_bytes() -> None:
    ledgers, _ = run([INV, sample_payment_event(amount=D("1.00"))])
    ledger = ledgers["c1"]
    assert CustomerLedger.from_bytes(ledger.to_bytes()) == ledger


@settings(max_examples=100, deadline=None)
@given(history=histories(), data=st.data())
def test_limiting_invoice_balances_changes_no_figure(
    history: list[FinancialEvent], data: st.DataObject
) -> None:
    """The processor asks only for the invoices an event touched; every figure must be
    what the full computation gives."""
    ledgers, _ = run(history)
    for customer, ledger in ledgers.items():
        full = compute_balances(ledger, TENANT, customer, "x")
        some = data.draw(st.lists(st.sampled_from(sorted(full.invoices) or ["none"])))
        limited = compute_balances(ledger, TENANT, customer, "x", invoice_ids=some)
        assert limited.customers == full.customers
        assert limited.invoices == {i: full.invoices[i] for i in some if i in full.invoices}
