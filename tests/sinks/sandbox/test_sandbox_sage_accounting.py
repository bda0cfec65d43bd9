"""The Sage Accounting sandbox over HTTP: error shapes, idempotency_id, validation,
duplicate numbers, lock date, voids, throttling, token rotation, lost responses."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from sinks.sandbox.sage_accounting import BASE, SageSandbox
from tests.sinks.platforms.sage_accounting_support import BUSINESS, sage, sage_client

__all__ = ["sage", "sage_client"]


def contact(client: httpx.Client, ref: str = "c1", **extra: Any) -> dict[str, Any]:
    response = client.post(f"{BASE}/contacts", json={"contact": {
        "name": f"Customer {ref}", "contact_type_ids": ["CUSTOMER"], "reference": ref, **extra}})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def invoice_body(contact_id: str, number: str = "INV-1", **extra: Any) -> dict[str, Any]:
    return {"sales_invoice": {
        "contact_id": contact_id, "date": "2025-03-14", "invoice_number": number,
        "reference": number.lower(),
        "invoice_lines": [{"description": "Labour", "ledger_account_id": "LA-LABOR",
                           "quantity": 1.5, "unit_price": 95.0, "tax_rate_id": "US_AUSTIN"}],
        **extra}}


def assert_sage_error(response: httpx.Response, status: int, code: str,
                      source: str | None = None) -> None:
    assert response.status_code == status, response.text
    [entry] = response.json()
    assert set(entry) == {"$severity", "$dataCode", "$message", "$source"}
    assert entry["$dataCode"] == code
    if source is not None:
        assert entry["$source"] == source


def test_auth_errors_have_sage_shape(sage: SageSandbox) -> None:
    with sage.client("nope", headers={"X-Business": BUSINESS}) as client:
        assert_sage_error(client.get(f"{BASE}/contacts"), 401, "AuthorizationFailure")
    tokens = sage.issue_tokens("other-business")
    with sage.client(tokens.access_token, headers={"X-Business": BUSINESS}) as client:
        assert_sage_error(client.get(f"{BASE}/contacts"), 403, "AccessDenied")


def test_invoice_is_computed_and_listed_with_search(sage_client: httpx.Client) -> None:
    c = contact(sage_client)
    created = sage_client.post(f"{BASE}/sales_invoices", json=invoice_body(c["id"]))
    assert created.status_code == 201
    doc = created.json()
    assert (doc["net_amount"], doc["tax_amount"], doc["total_amount"]) == (142.5, 11.76, 154.26)
    assert doc["status"]["id"] == "UNPAID" and doc["contact"]["id"] == c["id"]
    listed = sage_client.get(f"{BASE}/sales_invoices", params={"search": "inv-1"}).json()
    assert listed["$total"] == 1 and listed["$items"][0]["id"] == doc["id"]
    assert sage_client.get(f"{BASE}/sales_invoices", params={"search": "zzz"}).json()[
        "$items"] == []


def test_idempotency_id_returns_the_first_response(sage: SageSandbox,
                                                   sage_client: httpx.Client) -> None:
    c = contact(sage_client)
    body = invoice_body(c["id"])
    body["sales_invoice"]["idempotency_id"] = "a" * 32
    first = sage_client.post(f"{BASE}/sales_invoices", json=body)
    second = sage_client.post(f"{BASE}/sales_invoices", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(sage.business(BUSINESS).sales_invoices) == 1


def test_validation_duplicate_number_and_unknown_ids(sage_client: httpx.Client) -> None:
    c = contact(sage_client)
    missing = sage_client.post(f"{BASE}/sales_invoices", json={"sales_invoice": {
        "contact_id": c["id"], "invoice_lines": [{"description": "x"}]}})
    assert_sage_error(missing, 422, "RecordInvalid", "date")
    assert sage_client.post(f"{BASE}/sales_invoices", json=invoice_body(c["id"])
                            ).status_code == 201
    dup = sage_client.post(f"{BASE}/sales_invoices", json=invoice_body(c["id"]))
    assert_sage_error(dup, 422, "RecordInvalid", "invoice_number")
    assert "taken" in dup.json()[0]["$message"]
    bad_account = invoice_body(c["id"], "INV-2")
    bad_account["sales_invoice"]["invoice_lines"][0]["ledger_account_id"] = "LA-NOPE"
    assert_sage_error(sage_client.post(f"{BASE}/sales_invoices", json=bad_account), 422,
                      "RecordInvalid", "ledger_account_id")
    assert_sage_error(sage_client.post(f"{BASE}/sales_invoices",
                                       json=invoice_body("nobody", "INV-3")),
                      422, "RecordInvalid", "contact_id")
    assert_sage_error(sage_client.get(f"{BASE}/sales_invoices/nope"), 404, "RecordNotFound")
    dup_ref = sage_client.post(f"{BASE}/contacts", json={"contact": {
        "name": "again", "contact_type_ids": ["CUSTOMER"], "reference": "c1"}})
    assert_sage_error(dup_ref, 422, "RecordInvalid", "reference")


def test_lock_date_rejects_documents_in_the_closed_period(sage: SageSandbox,
                                                          sage_client: httpx.Client) -> None:
    c = contact(sage_client)
    sage.lock_period(BUSINESS, date(2025, 3, 31))
    locked = sage_client.post(f"{BASE}/sales_invoices", json=invoice_body(c["id"]))
    assert_sage_error(locked, 422, "RecordInvalid", "date")
    assert "lock date" in locked.json()[0]["$message"]
    sage.lock_period(BUSINESS, None)
    assert sage_client.post(f"{BASE}/sales_invoices", json=invoice_body(c["id"])
                            ).status_code == 201


def test_void_needs_a_reason_and_no_payments(sage_client: httpx.Client) -> None:
    c = contact(sage_client)
    doc = sage_client.post(f"{BASE}/sales_invoices", json=invoice_body(c["id"])).json()
    receipt = sage_client.post(f"{BASE}/contact_payments", json={"contact_payment": {
        "transaction_type_id": "CUSTOMER_RECEIPT", "contact_id": c["id"],
        "bank_account_id": "BA-CHECKING", "date": "2025-03-15", "total_amount": 50.0,
        "allocated_artefacts": [{"artefact_id": doc["id"], "amount": 50.0}]}})
    assert receipt.status_code == 201
    assert sage_client.get(f"{BASE}/sales_invoices/{doc['id']}").json()["status"][
        "id"] == "PART_PAID"
    assert_sage_error(sage_client.delete(f"{BASE}/sales_invoices/{doc['id']}"), 422,
                      "RecordInvalid", "void_reason")
    assert_sage_error(sage_client.delete(f"{BASE}/sales_invoices/{doc['id']}",
                                         params={"void_reason": "x"}), 422, "RecordInvalid")
    assert sage_client.delete(f"{BASE}/contact_payments/{receipt.json()['id']}"
                              ).status_code == 204
    voided = sage_client.delete(f"{BASE}/sales_invoices/{doc['id']}",
                                params={"void_reason": "x"})
    assert voided.status_code == 200 and voided.json()["status"]["id"] == "VOID"
    assert_sage_error(sage_client.put(f"{BASE}/sales_invoices/{doc['id']}",
                                      json=invoice_body(c["id"])), 422, "RecordInvalid")


def test_over_allocation_is_rejected_without_side_effects(sage: SageSandbox,
                                                         sage_client: httpx.Client) -> None:
    c = contact(sage_client)
    doc = sage_client.post(f"{BASE}/sales_invoices", json=invoice_body(c["id"])).json()
    too_much = sage_client.post(f"{BASE}/contact_payments", json={"contact_payment": {
        "transaction_type_id": "CUSTOMER_RECEIPT", "contact_id": c["id"],
        "bank_account_id": "BA-CHECKING", "date": "2025-03-15", "total_amount": 500.0,
        "allocated_artefacts": [{"artefact_id": doc["id"], "amount": 500.0}]}})
    assert_sage_error(too_much, 422, "RecordInvalid", "amount")
    assert sage.business(BUSINESS).sales_invoices[doc["id"]]["outstanding_amount"] == 154.26


def test_throttle_is_429_with_retry_after(sage: SageSandbox) -> None:
    small = SageSandbox(clock=sage.clock, per_minute=2)
    tokens = small.issue_tokens(BUSINESS)
    with small.client(tokens.access_token, headers={"X-Business": BUSINESS}) as client:
        assert client.get(f"{BASE}/contacts").status_code == 200
        assert client.get(f"{BASE}/contacts").status_code == 200
        throttled = client.get(f"{BASE}/contacts")
    assert_sage_error(throttled, 429, "TooManyRequests")
    assert int(throttled.headers["Retry-After"]) == 60


def test_refresh_tokens_rotate_strictly(sage: SageSandbox) -> None:
    pair = sage.issue_tokens(BUSINESS)
    with sage.client() as client:
        form = {"grant_type": "refresh_token", "refresh_token": pair.refresh_token}
        first = client.post("/token", data=form)
        assert first.status_code == 200 and first.json()["refresh_token"] != pair.refresh_token
        reused = client.post("/token", data=form)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    sage.tokens.expire_access_tokens()
    with sage.client(first.json()["access_token"], headers={"X-Business": BUSINESS}) as c:
        assert_sage_error(c.get(f"{BASE}/contacts"), 401, "AuthorizationFailure")


def test_drop_after_write_commits_the_document(sage: SageSandbox,
                                               sage_client: httpx.Client) -> None:
    c = contact(sage_client)
    body = invoice_body(c["id"])
    body["sales_invoice"]["idempotency_id"] = "b" * 32
    sage.faults.arm("drop_after_write", 1, BUSINESS)
    with pytest.raises(httpx.RemoteProtocolError):
        sage_client.post(f"{BASE}/sales_invoices", json=body)
    retried = sage_client.post(f"{BASE}/sales_invoices", json=body)
    assert retried.status_code == 201
    report = sage.ledger_report(BUSINESS)
    assert report["duplicates"]["count"] == 0 and len(report["documents"]) == 1


def test_ledger_report_has_the_shared_shape(sage: SageSandbox,
                                            sage_client: httpx.Client) -> None:
    c = contact(sage_client)
    doc = sage_client.post(f"{BASE}/sales_invoices", json=invoice_body(c["id"])).json()
    sage_client.post(f"{BASE}/contact_payments", json={"contact_payment": {
        "transaction_type_id": "CUSTOMER_RECEIPT", "contact_id": c["id"],
        "bank_account_id": "BA-CHECKING", "date": "2025-03-15", "total_amount": 54.26,
        "allocated_artefacts": [{"artefact_id": doc["id"], "amount": 54.26}]}})
    report = sage_client.get(f"/__sandbox/ledger/{BUSINESS}").json()
    assert set(report) == {"platform", "tenant", "documents", "payments", "applications",
                           "customers", "totals", "duplicates"}
    assert report["customers"] == [{"id": c["id"], "name": "Customer c1", "active": True,
                                    "balance": "100.00"}]
    assert report["applications"][0]["amount"] == "54.26"
    sage.deactivate_customer(BUSINESS, c["id"])
    assert sage.ledger_report(BUSINESS)["customers"][0]["active"] is False
    assert_sage_error(sage_client.post(f"{BASE}/sales_invoices",
                                       json=invoice_body(c["id"], "INV-9")),
                      422, "RecordInvalid", "contact_id")
