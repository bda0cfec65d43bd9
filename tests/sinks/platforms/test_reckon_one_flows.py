"""Reckon One flows driven end to end against the Reckon One sandbox with FlowRunner.

Every request goes through the contract harness's transport, which validates it
against the Reckon One v2 OpenAPI file first (and refuses an idempotency key).
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest

from schemas.examples import (
    sample_credit_note,
    sample_customer,
    sample_invoice,
    sample_ledger_entry,
    sample_payment,
    sample_refund_event,
    sample_tax_rate_event,
)
from schemas.models import CreditDisposition, LedgerEntry, PaymentKind
from sinks.core.contract import FlowRunner, PlatformRequest, PlatformResponse, steps_of
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    RateLimitedError,
    TransientError,
    UnsupportedEventError,
)
from sinks.platforms import get_platform
from sinks.platforms.common.reconcile import expected_ledger, format_differences, reconcile
from sinks.platforms.reckon_one import ReckonOne
from sinks.sandbox.core import ManualClock
from sinks.sandbox.reckon_one import ReckonOneSandbox
from tests.sinks.contract.harness import Books, SandboxTransport, connect, open_books
from tests.sinks.contract.harness_reckon_one import RECKON_ONE, SPEC_FILE
from tests.sinks.corpus import SCENARIOS, Story, pay

D = Decimal
pytestmark = pytest.mark.skipif(not SPEC_FILE.exists(),
                                reason=f"vendor spec {SPEC_FILE} absent")


@pytest.fixture
def sandbox() -> ReckonOneSandbox:
    return ReckonOneSandbox(clock=ManualClock())


@pytest.fixture
def books(sandbox: ReckonOneSandbox) -> Books:
    return open_books(RECKON_ONE, ReckonOne(), sandbox)


def book_of(books: Books) -> str:
    return str(books.tenant.settings["book_id"])


def agree(sandbox: ReckonOneSandbox, books: Books, entries: list[LedgerEntry]) -> None:
    report = sandbox.ledger_report(book_of(books))
    diffs = reconcile(expected_ledger(entries), report, books.ids)
    assert not diffs, format_differences(diffs)
    assert report["duplicates"]["count"] == 0


class LosingTransport:
    """Forwards every request, but loses the response of the ``nth`` write (the
    platform committed it; the client sees a transport error)."""

    def __init__(self, inner: SandboxTransport, nth: int) -> None:
        self.inner, self.nth, self.writes = inner, nth, 0

    def __call__(self, request: PlatformRequest) -> PlatformResponse:
        response = self.inner(request)
        if request.method != "GET":
            self.writes += 1
            if self.writes == self.nth:
                raise TransientError("connection reset after the write", platform="test")
        return response


def write_losing(books: Books, entry: LedgerEntry, nth: int) -> None:
    """The runner's behaviour: the flow fails, the whole flow is run again."""
    context = books.context(entry)
    with contextlib.suppress(TransientError):
        FlowRunner(books.platform, LosingTransport(books.transport, nth)).write(entry, context)
    books.record(entry, FlowRunner(books.platform, books.transport).write(entry, context))


def test_registered_and_declares_no_idempotency_key() -> None:
    platform = get_platform("reckon-one")
    assert isinstance(platform, ReckonOne)
    assert not platform.spec.supports_idempotency_key and not platform.spec.supports_upsert


def test_invoice_lookup_then_create_update_then_void(sandbox: ReckonOneSandbox,
                                                     books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"))
    invoice = story.invoice(sample_invoice("inv1", "c1"))
    story.void(invoice)
    entries = story.entries
    books.write(entries[0])
    books.transport.sent.clear()
    created = books.write(entries[1])
    book = book_of(books)
    assert steps_of(books.transport.sent) == [
        f"GET /{book}/invoices", f"GET /{book}/customers/{books.ids['customer:c1']}",
        f"POST /{book}/invoices", f"GET /{book}/invoices/{created.external_id}"]
    assert all(r.idempotency_key is None for r in books.transport.sent)
    assert created.document_number == "INV-000001"
    books.transport.sent.clear()
    voided = books.write(entries[2])
    assert voided.external_id == created.external_id and voided.raw["deleted"]
    methods = [r.method for r in books.transport.sent]
    assert methods[-2:] == ["PATCH", "DELETE"]  # tombstone first, then the hard delete
    notes = sandbox.book(book).customers[books.ids["customer:c1"]]["notes"]
    assert f"crm:deleted:invoice:inv1={created.external_id}" in notes.splitlines()
    agree(sandbox, books, entries)


def test_void_after_payment_unlinks_the_receipt_and_keeps_the_money(
        sandbox: ReckonOneSandbox, books: Books) -> None:
    entries = SCENARIOS["void_after_payment"].entries()
    for entry in entries:
        books.write(entry)
    book = book_of(books)
    assert any(r.method == "DELETE" and "/transactionlinks/" in r.path
               for r in books.transport.sent)
    report = sandbox.ledger_report(book)
    assert [p["unapplied"] for p in report["payments"]] == ["100.00"]
    agree(sandbox, books, entries)


@pytest.mark.parametrize("scenario", ["void_after_payment", "void_unpaid",
                                      "credit_note_applied", "edit_after_sending"])
def test_replay_after_losing_the_id_map_finds_documents_and_tombstones(
        sandbox: ReckonOneSandbox, books: Books, scenario: str) -> None:
    entries = SCENARIOS[scenario].entries()
    for entry in entries:
        books.write(entry)
    fresh = Books(books.platform, books.transport, books.tenant)
    results = [fresh.write(entry) for entry in entries]
    assert all(r.already_applied for r in results if r.raw and "deleted" in r.raw)
    assert fresh.ids == books.ids
    posts = [r for r in books.transport.sent if r.method == "POST"]
    assert len(posts) == len({(r.path, str(r.json)) for r in posts})
    agree(sandbox, books, entries)


def test_lookup_pages_through_the_whole_collection(sandbox: ReckonOneSandbox) -> None:
    tenant = RECKON_ONE.setup_tenant(sandbox, "paging")
    tenant = tenant.model_copy(update={"settings": {**tenant.settings, "page_size": 2}})
    books = Books(ReckonOne(), connect(RECKON_ONE, sandbox, tenant), tenant)
    story = Story()
    for i in range(5):
        story.customer(sample_customer(f"c{i}", display_name=f"Customer {i}"))
        story.invoice(sample_invoice(f"inv{i}", f"c{i}").model_copy(
            update={"number": f"INV-{i}"}))
    for entry in story.entries:
        books.write(entry)
    fresh = Books(books.platform, books.transport, books.tenant)
    books.transport.sent.clear()
    for entry in story.entries:
        fresh.write(entry)
    assert fresh.ids == books.ids
    pages = {r.query["page"] for r in books.transport.sent if r.path.endswith("/invoices")}
    assert pages == {"1", "2", "3"}
    agree(sandbox, books, story.entries)


@pytest.mark.parametrize("scenario", ["tip_and_fee", "credit_note_applied", "void_after_payment",
                                      "over_payment", "edit_after_sending"])
@pytest.mark.parametrize("nth", [1, 2, 3])
def test_every_lost_write_is_found_on_the_rerun(sandbox: ReckonOneSandbox, books: Books,
                                                scenario: str, nth: int) -> None:
    entries = SCENARIOS[scenario].entries()
    for entry in entries:
        write_losing(books, entry, nth)
    agree(sandbox, books, entries)


def test_tip_is_income_not_customer_credit(sandbox: ReckonOneSandbox, books: Books) -> None:
    entries = SCENARIOS["tip_and_fee"].entries()
    for entry in entries:
        books.write(entry)
    receipt = sandbox.ledger_report(book_of(books))["payments"][0]
    assert receipt["unapplied"] == "0.00"
    agree(sandbox, books, entries)


def test_allocation_beyond_the_balance_stays_as_credit(sandbox: ReckonOneSandbox,
                                                      books: Books) -> None:
    entries = SCENARIOS["over_payment"].entries()
    for entry in entries:
        books.write(entry)
    report = sandbox.ledger_report(book_of(books))
    invoice = report["documents"][0]
    assert invoice["balance"] == "0.00"
    unapplied = sum(D(p["unapplied"]) for p in report["payments"])
    assert unapplied == D("350.00") - D(invoice["total"]) > 0  # capped links, rest is credit
    agree(sandbox, books, entries)


def test_same_display_name_is_disambiguated(sandbox: ReckonOneSandbox, books: Books) -> None:
    entries = SCENARIOS["duplicate_display_names"].entries()
    for entry in entries:
        books.write(entry)
    names = sorted(c["name"] for c in sandbox.book(book_of(books)).customers.values())
    assert names == ["Alex Kim", "Alex Kim (c2)"]
    # an update of c2 keeps the disambiguated name instead of colliding again
    books.write(entries[1])
    names = sorted(c["name"] for c in sandbox.book(book_of(books)).customers.values())
    assert names == ["Alex Kim", "Alex Kim (c2)"]
    agree(sandbox, books, entries)


def test_credit_note_links_once(sandbox: ReckonOneSandbox, books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"))
    story.invoice(sample_invoice("inv1", "c1"))
    story.credit_note(sample_credit_note("cn1", "c1", invoice_id="inv1"))
    for entry in story.entries:
        books.write(entry)
    books.write(story.entries[-1])
    links = [r for r in books.transport.sent if r.path.endswith("/transactionLinks")]
    assert len(links) == 1 and links[0].json["transactionType"] == "Invoice"
    agree(sandbox, books, story.entries)


def test_unsupported_events_say_why_and_send_nothing(books: Books) -> None:
    refund = sample_ledger_entry(sample_refund_event())
    refunded_note = sample_credit_note("cn1", "c1", invoice_id=None,
                                       disposition=CreditDisposition.REFUNDED)
    story = Story()
    story.credit_note(refunded_note)
    tax = sample_ledger_entry(sample_tax_rate_event())
    for entry, reason in ((refund, "no customer-refund endpoint"),
                          (story.entries[-1], "refunded in cash"),
                          (tax, "tax rates are configured")):
        with pytest.raises(UnsupportedEventError, match=reason):
            books.write(entry)
    assert books.transport.sent == []


def test_euro_invoice_is_unsupported(books: Books) -> None:
    entries = SCENARIOS["multi_currency"].entries()
    books.write(entries[0])
    with pytest.raises(UnsupportedEventError, match="EUR"):
        books.write(entries[1])


def test_lock_off_date_pauses_and_inactive_customer_is_reactivated(
        sandbox: ReckonOneSandbox, books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"))
    first = story.invoice(sample_invoice("inv1", "c1"))
    story.payment(pay("p1", first, D("10.00")))
    entries = story.entries
    books.write(entries[0])
    sandbox.lock_period(book_of(books), first.issue_date)
    with pytest.raises(ConfigurationError, match="lock-off"):
        books.write(entries[1])
    sandbox.lock_period(book_of(books), None)
    books.write(entries[1])
    sandbox.deactivate_customer(book_of(books), books.ids["customer:c1"])
    result = books.write(entries[2])
    assert any("reactivated" in note for note in result.raw["notes"])
    agree(sandbox, books, entries)


def test_expired_token_and_throttle_surface_as_retryable_errors() -> None:
    sandbox = ReckonOneSandbox(clock=ManualClock(), per_minute=1)
    books = open_books(RECKON_ONE, ReckonOne(), sandbox)
    story = Story()
    story.customer(sample_customer("c1"))
    with pytest.raises(RateLimitedError) as throttled:
        books.write(story.entries[0])  # lookup + create exceed 1/minute
    assert throttled.value.retry_after and throttled.value.retry_after > 0
    assert isinstance(sandbox.clock, ManualClock)
    sandbox.clock.advance(4 * 3600)  # access tokens live 180 minutes
    with pytest.raises(AuthExpiredError):
        books.write(story.entries[0])


def test_refund_payment_kind_is_checked_before_anything(books: Books) -> None:
    refund = sample_payment("r1", "c1", invoice_id="inv1", amount=D("5.00"),
                            kind=PaymentKind.REFUND, refund_of="p1")
    story = Story()
    story.payment(refund)
    with pytest.raises(UnsupportedEventError, match="/payments is read-only"):
        books.write(story.entries[-1])
    assert books.transport.sent == []



def test_spec_validator_catches_what_it_caught_in_development() -> None:
    from tests.sinks.contract.harness_reckon_one import SpecViolation, reckon_spec

    book = "5af6572c-9771-4b86-995d-3374d3bc683c"
    line: dict[str, Any] = {"lineNumber": 1, "taxAmount": 1.0,
                            "accountDetails": {"ledgerAccount": "4-1000", "amount": 10.0}}
    good: dict[str, Any] = {"customer": "c", "invoiceDate": "2025-03-14T00:00:00Z",
                            "amountTaxStatus": "Exclusive", "lineItems": [line]}
    validate = reckon_spec().validate
    validate(PlatformRequest("POST", f"/{book}/invoices", "t", json=good))
    bad_cases = [
        ({**good, "lineItems": [{**line, "taxIsModified": True}]}, "read-only"),
        ({**good, "invoiceDate": "2025-03-14T00:00:00"}, "date-time"),
        ({**good, "currency": "EUR"}, "body.currency"),
    ]
    for body, why in bad_cases:
        with pytest.raises(SpecViolation, match=why):
            validate(PlatformRequest("POST", f"/{book}/invoices", "t", json=body))
    with pytest.raises(SpecViolation, match="no such path"):
        validate(PlatformRequest("POST", f"/{book}/creditnotes", "t", json={}))
    with pytest.raises(SpecViolation, match="no idempotency key"):
        validate(PlatformRequest("GET", f"/{book}/invoices", "t", idempotency_key="k"))


def test_find_by_reference(books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"))
    invoice = story.invoice(sample_invoice("inv1", "c1"))
    for entry in story.entries:
        books.write(entry)
    context = books.context(story.entries[-1])
    runner = FlowRunner(books.platform, books.transport)
    found = runner.find(invoice.number, context)
    assert found is not None and found.external_id == books.ids["invoice:inv1"]
    assert runner.find("NOT-THERE", context) is None
