"""Odoo JSON-2 sandbox behaviours over HTTP (in-process client, manual clock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from sinks.sandbox.core import ManualClock
from sinks.sandbox.odoo import BANK_JOURNAL, OdooSandbox

DB = "shop-test"


@pytest.fixture
def osb(clock: ManualClock) -> OdooSandbox:
    sandbox = OdooSandbox(clock=clock, per_minute=30)
    sandbox.database(DB)
    return sandbox


@pytest.fixture
def oc(osb: OdooSandbox) -> Iterator[httpx.Client]:
    with osb.client(osb.issue_tokens(DB).access_token,
                    headers={"X-Odoo-Database": DB}) as client:
        yield client


def call(client: httpx.Client, model: str, method: str, **body: Any) -> httpx.Response:
    return client.post(f"/json/2/{model}/{method}", json=body)


def ok(client: httpx.Client, model: str, method: str, **body: Any) -> Any:
    response = call(client, model, method, **body)
    assert response.status_code == 200, response.text
    return response.json()


def partner(client: httpx.Client, ref: str = "c1") -> int:
    (pid,) = ok(client, "res.partner", "create",
                vals_list=[{"name": "Ada", "ref": ref, "customer_rank": 1}])
    return int(pid)


def invoice(client: httpx.Client, pid: int, ref: str = "INV-1", price: float = 100.0,
            when: str = "2025-03-01", **extra: Any) -> int:
    (mid,) = ok(client, "account.move", "create", vals_list=[{
        "move_type": "out_invoice", "partner_id": pid, "ref": ref, "invoice_date": when,
        "date": when, "invoice_line_ids": [[0, 0, {
            "name": "Labor", "quantity": 1.0, "price_unit": price, "account_id": 400,
            "tax_ids": [[6, 0, [1]]]}]], **extra}])
    return int(mid)


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["name"], body["message"]


def test_auth_and_database_are_required(osb: OdooSandbox, oc: httpx.Client) -> None:
    with osb.client(headers={"X-Odoo-Database": DB}) as anonymous:
        status, name, _ = error_of(call(anonymous, "res.partner", "search_read", domain=[]))
    assert (status, name) == (401, "werkzeug.exceptions.Unauthorized")
    response = oc.post("/json/2/res.partner/search_read", json={"domain": []},
                       headers={"X-Odoo-Database": "nope"})
    assert response.status_code in (401, 404)


def test_unknown_method_and_field_errors_have_odoo_shape(oc: httpx.Client) -> None:
    status, name, _ = error_of(call(oc, "account.move", "unlink", ids=[1]))
    assert (status, name) == (404, "werkzeug.exceptions.NotFound")
    status, name, message = error_of(call(oc, "res.partner", "create",
                                          vals_list=[{"nmae": "x"}]))
    assert status == 422 and "Invalid field 'nmae'" in message
    status, name, _ = error_of(call(oc, "account.move", "read", ids=[999], fields=["name"]))
    assert (status, name) == (404, "odoo.exceptions.MissingError")


def test_invoice_taxes_post_and_sequence(oc: httpx.Client) -> None:
    pid = partner(oc)
    mid = invoice(oc, pid, price=95.0)
    (draft,) = ok(oc, "account.move", "read", ids=[mid], fields=["state", "name",
                                                                 "amount_total"])
    assert (draft["state"], draft["name"], draft["amount_total"]) == ("draft", "/", 102.84)
    ok(oc, "account.move", "action_post", ids=[mid])
    (posted,) = ok(oc, "account.move", "search_read", domain=[["ref", "=", "INV-1"]],
                   fields=["state", "name", "partner_id", "amount_residual"])
    assert posted["state"] == "posted" and posted["name"] == "INV/2025/00001"
    assert posted["partner_id"] == [pid, "Ada"] and posted["amount_residual"] == 102.84
    status, _, message = error_of(call(oc, "account.move", "action_post", ids=[mid]))
    assert status == 422 and "already posted" in message


def test_posted_move_refuses_line_edits_until_reset(oc: httpx.Client) -> None:
    mid = invoice(oc, partner(oc))
    ok(oc, "account.move", "action_post", ids=[mid])
    edit = {"invoice_line_ids": [[5, 0, 0]]}
    status, name, _ = error_of(call(oc, "account.move", "write", ids=[mid], vals=edit))
    assert (status, name) == (422, "odoo.exceptions.UserError")
    assert ok(oc, "account.move", "write", ids=[mid], vals={"ref": "INV-1b"}) is True
    status, _, message = error_of(call(oc, "account.move", "button_cancel", ids=[mid]))
    assert status == 422 and "draft" in message
    ok(oc, "account.move", "button_draft", ids=[mid])
    ok(oc, "account.move", "button_cancel", ids=[mid])


def test_duplicate_number_in_a_journal_is_rejected(oc: httpx.Client) -> None:
    pid = partner(oc)
    first = invoice(oc, pid, name="SHOP/0001")
    second = invoice(oc, pid, ref="INV-2", name="SHOP/0001")
    ok(oc, "account.move", "action_post", ids=[first])
    status, name, message = error_of(call(oc, "account.move", "action_post", ids=[second]))
    assert (status, name) == (422, "odoo.exceptions.ValidationError")
    assert "same name" in message


def test_lock_date_refuses_posting(osb: OdooSandbox, oc: httpx.Client) -> None:
    mid = invoice(oc, partner(oc), when="2025-03-01")
    osb.lock_period(DB, date(2025, 12, 31))
    status, name, message = error_of(call(oc, "account.move", "action_post", ids=[mid]))
    assert (status, name) == (422, "odoo.exceptions.UserError")
    assert "lock date 12/31/2025" in message
    osb.lock_period(DB, None)
    ok(oc, "account.move", "action_post", ids=[mid])


def test_archived_partner_hidden_unless_active_test_false(osb: OdooSandbox,
                                                          oc: httpx.Client) -> None:
    pid = partner(oc)
    with osb.lock:
        osb.deactivate_customer(DB, str(pid))
    assert ok(oc, "res.partner", "search_read", domain=[["ref", "=", "c1"]]) == []
    rows = ok(oc, "res.partner", "search_read", domain=[["ref", "=", "c1"]],
              fields=["active"], context={"active_test": False})
    assert rows == [{"id": pid, "active": False}]


def test_payment_reconciliation_partial_and_unreconcile_on_reset(oc: httpx.Client) -> None:
    pid = partner(oc)
    mid = invoice(oc, pid, price=100.0)  # 108.25 with tax
    ok(oc, "account.move", "action_post", ids=[mid])
    (pay,) = ok(oc, "account.payment", "create", vals_list=[{
        "payment_type": "inbound", "partner_type": "customer", "partner_id": pid,
        "amount": 200.0, "date": "2025-03-02", "journal_id": BANK_JOURNAL, "memo": "PAY-1"}])
    ok(oc, "account.payment", "action_post", ids=[pay])
    (line,) = ok(oc, "account.move.line", "search_read",
                 domain=[["payment_id", "=", pay], ["account_type", "=", "asset_receivable"]],
                 fields=["amount_residual"])
    assert line["amount_residual"] == -200.0
    ok(oc, "account.move", "js_assign_outstanding_line", ids=[mid], line_id=line["id"])
    (after,) = ok(oc, "account.move.line", "search_read", domain=[["id", "=", line["id"]]],
                  fields=["amount_residual"])
    assert after["amount_residual"] == -91.75  # the rest stays as outstanding credit
    partials = ok(oc, "account.partial.reconcile", "search_read",
                  domain=[["credit_move_id", "=", line["id"]]], fields=["amount"])
    assert [p["amount"] for p in partials] == [108.25]
    ok(oc, "account.move", "button_draft", ids=[mid])
    assert ok(oc, "account.partial.reconcile", "search_read", domain=[]) == []


def test_throttle_is_429_with_retry_after(osb: OdooSandbox, oc: httpx.Client) -> None:
    osb.faults.arm("rate_limit", 1, DB)
    response = call(oc, "res.partner", "search_read", domain=[])
    assert response.status_code == 429 and response.headers["retry-after"]
    assert response.json()["name"] == "werkzeug.exceptions.TooManyRequests"


def test_write_then_drop_response_commits_the_write(osb: OdooSandbox,
                                                    oc: httpx.Client) -> None:
    osb.faults.arm("drop_after_write", 1, DB)
    with pytest.raises(httpx.RemoteProtocolError):
        partner(oc)
    # reads are not writes: the fault is consumed by the create only
    assert len(ok(oc, "res.partner", "search_read", domain=[["ref", "=", "c1"]])) == 1


def test_ledger_report_shape(osb: OdooSandbox, oc: httpx.Client) -> None:
    pid = partner(oc)
    mid = invoice(oc, pid)
    ok(oc, "account.move", "action_post", ids=[mid])
    report = osb.ledger_report(DB)
    assert report["platform"] == "odoo" and report["duplicates"] == {"count": 0, "groups": []}
    (doc,) = report["documents"]
    assert (doc["kind"], doc["status"], doc["reference"], doc["total"]) == (
        "invoice", "POSTED", "INV-1", "108.25")
    assert report["customers"][0]["balance"] == "108.25"
