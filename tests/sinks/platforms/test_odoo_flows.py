"""Odoo flows driven end to end against the Odoo sandbox with FlowRunner (through the
contract harness's Books, i.e. as the runner would), every request validated against
the Odoo field table."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from schemas.examples import sample_customer, sample_invoice, sample_payment, sample_tax_rate
from schemas.models import AggregateType, LineKind, Op
from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    PayloadRejectedError,
    ReferenceMissingError,
    TransientError,
    UnsupportedEventError,
)
from sinks.platforms.common.reconcile import expected_ledger, format_differences, reconcile
from sinks.platforms.odoo import Odoo
from sinks.sandbox.odoo import OdooSandbox
from sinks.transport.rpc import (
    SECRET_PLACEHOLDER,
    RpcProtocol,
    RpcTarget,
    fill_secret,
    rpc_call,
)
from tests.sinks.contract.harness import Books, SandboxTransport, open_books
from tests.sinks.contract.harness_odoo import ODOO, odoo_tenant
from tests.sinks.corpus import SCENARIOS, Story, line, pay

pytestmark = pytest.mark.skipif(ODOO.validator is None, reason="platforms-B.md (Odoo field "
                                "table source) not present in /work/shared/research")


@pytest.fixture
def sandbox() -> OdooSandbox:
    sb = ODOO.make_sandbox()
    assert isinstance(sb, OdooSandbox)
    return sb


@pytest.fixture
def books(sandbox: OdooSandbox) -> Books:
    return open_books(ODOO, Odoo(), sandbox)


def db(sandbox: OdooSandbox, books: Books) -> str:
    return ODOO.sandbox_tenant(books.tenant)


def agree(sandbox: OdooSandbox, books: Books, story: Story) -> None:
    diffs = reconcile(expected_ledger(story.entries),
                      sandbox.ledger_report(db(sandbox, books)), books.ids)
    assert not diffs, format_differences(diffs)


def methods(books: Books, start: int = 0) -> list[str]:
    return [r.path.removeprefix("/json/2/") for r in books.transport.sent[start:]]


def test_invoice_is_looked_up_created_and_posted_and_only_reads_carry_keys(
        sandbox: OdooSandbox, books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    story.invoice(sample_invoice("inv1", "c1"))
    result = books.write(story.entries[0])
    assert methods(books) == ["res.partner/search_read", "res.partner/create",
                              "account.move/search_read", "account.move/create",
                              "account.move/action_post", "account.move/read"]
    for request in books.transport.sent:
        read = request.path.endswith(("search_read", "/read"))
        assert (request.idempotency_key is not None) == read, request.path
    assert result.document_number == "INV/2025/00001"
    assert result.version is not None and result.related == {"customer:c1": "1"}
    agree(sandbox, books, story)


def test_unchanged_posted_invoice_is_not_rewritten(sandbox: OdooSandbox, books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"))
    story.invoice(sample_invoice("inv1", "c1"))
    for entry in story.entries:
        books.write(entry)
    mark = len(books.transport.sent)
    books.write(story.entries[1])
    assert not [p for p in methods(books, mark) if not p.endswith(("read", "search_read"))]


def test_edit_after_payment_re_applies_the_payment(sandbox: OdooSandbox, books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    invoice = story.invoice(sample_invoice("inv1", "c1"))
    story.payment(pay("pay1", invoice, D("100.00")))
    edited = invoice.model_copy(update={"lines": (*invoice.lines, line(
        "l9", LineKind.PART, "Hose clamp", "2", "3.50"))})
    edited = edited.model_copy(update={"subtotal": edited.subtotal + D("7.00"),
                                       "total": edited.total + D("7.00")})
    story.invoice(edited, op=Op.UPDATE)
    results = [books.write(entry) for entry in story.entries]
    notes = results[-1].raw["notes"]
    assert any("re-posted" in n and "re-applied" in n for n in notes), notes
    agree(sandbox, books, story)


def test_lost_post_response_is_retried_by_lookup_without_duplicate(
        sandbox: OdooSandbox, books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    story.invoice(sample_invoice("inv1", "c1"))
    sandbox.faults.arm("drop_after_write", 1, db(sandbox, books))
    with pytest.raises(TransientError):
        books.write(story.entries[0])  # the partner create was lost
    sandbox.faults.arm("drop_after_write", 3, db(sandbox, books))
    books.write(story.entries[0], retries=3)
    report = sandbox.ledger_report(db(sandbox, books))
    assert report["duplicates"]["count"] == 0 and len(report["customers"]) == 1
    agree(sandbox, books, story)


def test_payment_leaving_money_unallocated_on_an_open_invoice_is_unsupported(
        sandbox: OdooSandbox, books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    invoice = story.invoice(sample_invoice("inv1", "c1"))
    story.payment(pay("pay1", invoice, D("100.00"), allocated=D("40.00")))
    books.write(story.entries[0])
    with pytest.raises(UnsupportedEventError, match="reconciles as much"):
        books.write(story.entries[1])


def test_tax_rate_events_are_unsupported(books: Books) -> None:
    story = Story()
    story._emit(AggregateType.TAX_RATE, "TX-AUSTIN", sample_tax_rate(), Op.CREATE, "c1",
                "created")
    with pytest.raises(UnsupportedEventError, match=r"account\.tax"):
        books.write(story.entries[0])


def test_customer_update_and_delete_archive_the_partner(sandbox: OdooSandbox,
                                                        books: Books) -> None:
    story = Story()
    customer = story.customer(sample_customer("c1"))
    story._emit(AggregateType.CUSTOMER, "c1", customer.model_copy(
        update={"display_name": "Renamed"}), Op.UPDATE, "c1", "updated")
    story._emit(AggregateType.CUSTOMER, "c1", None, Op.DELETE, "c1", "deleted")
    for entry in story.entries[:2]:
        books.write(entry)
    partner = sandbox.database(db(sandbox, books)).partners[int(books.ids["customer:c1"])]
    assert partner["name"] == "Renamed" and partner["active"]
    books.write(story.entries[2])
    assert partner["active"] is False


def test_payment_delete_cancels_it_and_reopens_the_invoice(sandbox: OdooSandbox,
                                                           books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    invoice = story.invoice(sample_invoice("inv1", "c1"))
    story.payment(pay("pay1", invoice, D("100.00")))
    story._emit(AggregateType.PAYMENT, "pay1", None, Op.DELETE, "c1", "deleted")
    for entry in story.entries:
        books.write(entry)
    report = sandbox.ledger_report(db(sandbox, books))
    (doc,) = report["documents"]
    assert doc["balance"] == doc["total"]
    assert [p["status"] for p in report["payments"]] == ["VOIDED"]
    again = books.write(story.entries[-1])
    assert again.already_applied


def test_refunded_credit_note_is_paid_out_by_an_outbound_payment(sandbox: OdooSandbox,
                                                                 books: Books) -> None:
    from schemas.examples import sample_credit_note
    from schemas.models import CreditDisposition

    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    story.invoice(sample_invoice("inv1", "c1"))
    story.credit_note(sample_credit_note("cn1", "c1", disposition=CreditDisposition.REFUNDED))
    for entry in story.entries:
        books.write(entry)
    payments = sandbox.database(db(sandbox, books)).payments.values()
    assert [(p["payment_type"], p["memo"]) for p in payments] == [("outbound", "CN-CN1")]
    agree(sandbox, books, story)


def test_two_moves_with_our_ref_are_reported_not_guessed(sandbox: OdooSandbox,
                                                         books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"))
    invoice = story.invoice(sample_invoice("inv1", "c1"))
    books.write(story.entries[0])
    books.write(story.entries[1])
    database = sandbox.database(db(sandbox, books))
    with sandbox.lock:  # someone keys in an invoice with the same reference in Odoo
        sandbox._create_move(database, {"vals_list": [{
            "move_type": "out_invoice", "partner_id": int(books.ids["customer:c1"]),
            "ref": invoice.number, "invoice_date": "2025-03-01", "invoice_line_ids": []}]})
    with pytest.raises(PayloadRejectedError, match="carry ref"):
        books.write(story.entries[1], remember=False)


def test_payment_of_a_voided_invoice_stays_as_credit(sandbox: OdooSandbox,
                                                     books: Books) -> None:
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    invoice = story.invoice(sample_invoice("inv1", "c1"))
    story.void(invoice)
    story.payment(sample_payment("pay1", "c1", amount=D("50.00")))
    results = [books.write(entry) for entry in story.entries]
    assert any("cancel" in n for n in results[-1].raw["notes"])
    agree(sandbox, books, story)


# --------------------------------------------------------------------------- Odoo 18


class ExecuteKwTransport(SandboxTransport):
    """The JSON-RPC path: the API key goes into the ``execute_kw`` envelope, as the
    connection layer does with :func:`sinks.transport.rpc.fill_secret`."""

    def __init__(self, sandbox: OdooSandbox, database: str) -> None:
        super().__init__(sandbox.client(), "", None)
        self.key = sandbox.issue_tokens(database).access_token

    def __call__(self, request: PlatformRequest) -> PlatformResponse:
        assert request.path == "/jsonrpc"
        assert SECRET_PLACEHOLDER in json.dumps(request.json)
        return super().__call__(fill_secret(request, self.key))


@pytest.mark.parametrize("scenario", ["labor_parts_invoice", "over_payment", "refund_payment",
                                      "credit_note_refunded", "void_after_payment",
                                      "edit_after_sending"])
def test_odoo_18_execute_kw_over_jsonrpc(sandbox: OdooSandbox, scenario: str) -> None:
    tenant = odoo_tenant(sandbox, "v18")
    tenant = tenant.model_copy(update={"settings": {
        **tenant.settings, "version": 18, "protocol": "jsonrpc", "uid": 2}})
    database = str(tenant.settings["database"])
    books = Books(Odoo(), ExecuteKwTransport(sandbox, database), tenant)
    entries = SCENARIOS[scenario].entries()
    for entry in entries:
        books.write(entry)
    sandbox.faults.arm("drop_after_write", 2, database)
    for entry in entries:  # replay, with lost responses on the way
        books.write(entry, retries=3)
    report = sandbox.ledger_report(database)
    assert report["duplicates"]["count"] == 0
    diffs = reconcile(expected_ledger(entries), report, books.ids)
    assert not diffs, format_differences(diffs)


def test_jsonrpc_errors_come_inside_a_200(sandbox: OdooSandbox) -> None:
    tenant = odoo_tenant(sandbox, "v18")
    database = str(tenant.settings["database"])
    transport = ExecuteKwTransport(sandbox, database)
    target = RpcTarget(RpcProtocol.JSONRPC, database, 2)
    response = transport(rpc_call(target, "account.move", "read", purpose="t", ids=[999],
                                  params={"fields": ["name"]}))
    assert response.status == 200
    assert isinstance(Odoo().classify_error(response), ReferenceMissingError)
    transport.key = "wrong"
    denied = transport(rpc_call(target, "res.partner", "search_read", purpose="t",
                                params={"domain": []}))
    assert isinstance(Odoo().classify_error(denied), AuthExpiredError)
