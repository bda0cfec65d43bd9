"""Zoho Books sandbox behaviours over HTTP (in-process client, manual clock)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sinks.sandbox.core import ManualClock
from sinks.sandbox.zoho_books import UNIQUE_FIELD, ZohoBooksSandbox

ORG = "20001"
Q = {"organization_id": ORG}
ITEM, TAX, BANK = "460000000002001", "460000000001001", "460000000003002"


@pytest.fixture
def zb(clock: ManualClock) -> ZohoBooksSandbox:
    return ZohoBooksSandbox(clock=clock, per_minute=50)


@pytest.fixture
def zc(zb: ZohoBooksSandbox) -> Iterator[httpx.Client]:
    with zb.client(zb.issue_tokens(ORG).access_token) as client:
        yield client


def upsert(client: httpx.Client, module: str, value: str, body: dict[str, Any], *,
           upsert_flag: bool = True, key: str = UNIQUE_FIELD) -> httpx.Response:
    headers = {"X-Unique-Identifier-Key": key, "X-Unique-Identifier-Value": value}
    if upsert_flag:
        headers["X-Upsert"] = "true"
    return client.put(f"/books/v3/{module}", params=Q, headers=headers, json=body)


def contact(client: httpx.Client, crm_id: str = "c1", name: str = "Ada") -> str:
    r = upsert(client, "contacts", crm_id, {"contact_name": name})
    assert r.status_code == 200, r.text
    return str(r.json()["contact"]["contact_id"])


def invoice(client: httpx.Client, crm_id: str, contact_id: str, number: str,
            rate: float = 100.0, **extra: Any) -> httpx.Response:
    return upsert(client, "invoices", crm_id, {
        "customer_id": contact_id, "invoice_number": number, "date": "2025-03-14",
        "line_items": [{"item_id": ITEM, "rate": rate, "quantity": 1, "tax_id": TAX}], **extra})


def test_auth_scheme_expiry_and_organisation(zb: ZohoBooksSandbox, zc: httpx.Client) -> None:
    token = zb.issue_tokens(ORG).access_token
    with zb.client(headers={"Authorization": f"Bearer {token}"}) as bearer:
        r = bearer.get("/books/v3/contacts/1", params=Q)
    assert r.status_code == 401 and r.json()["code"] == 14
    r = zc.get("/books/v3/contacts/1", params={"organization_id": "999"})
    assert r.status_code == 401 and r.json()["code"] == 6041
    r = zc.get("/books/v3/contacts/1")
    assert r.status_code == 400 and r.json()["code"] == 6041
    zb.tokens.expire_access_tokens()
    r = zc.get("/books/v3/contacts/1", params=Q)
    assert r.status_code == 401 and r.json() == {
        "code": 57, "message": "You are not authorized to perform this operation"}


def test_refresh_tokens_do_not_rotate(zb: ZohoBooksSandbox) -> None:
    pair = zb.issue_tokens(ORG)
    with zb.client() as client:
        for _ in range(2):
            r = client.post("/oauth/v2/token", content=(
                f"grant_type=refresh_token&refresh_token={pair.refresh_token}"),
                headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 200, r.text
            assert "refresh_token" not in r.json() and r.json()["access_token"]
            assert r.json()["api_domain"] == "https://www.zohoapis.com"


def test_upsert_creates_once_then_updates(zc: httpx.Client, zb: ZohoBooksSandbox) -> None:
    cid = contact(zc)
    assert contact(zc) == cid
    first = invoice(zc, "inv1", cid, "INV-1")
    assert first.status_code == 200 and first.json()["code"] == 0
    doc = first.json()["invoice"]
    assert doc["status"] == "draft" and doc["total"] == 108.25 and doc["tax_total"] == 8.25
    again = invoice(zc, "inv1", cid, "INV-1", rate=200.0)
    assert again.json()["invoice"]["invoice_id"] == doc["invoice_id"]
    assert again.json()["invoice"]["total"] == 216.5
    assert zb.ledger_report(ORG)["duplicates"]["count"] == 0
    missing = upsert(zc, "invoices", "nope", {"customer_id": cid}, upsert_flag=False)
    assert missing.status_code == 404 and missing.json()["code"] == 1002
    bad_key = upsert(zc, "invoices", "inv1", {"customer_id": cid}, key="cf_other")
    assert bad_key.status_code == 400 and "X-Unique-Identifier-Key" in bad_key.json()["message"]


def test_duplicate_numbers_and_contact_names_are_rejected(zc: httpx.Client) -> None:
    cid = contact(zc)
    assert invoice(zc, "inv1", cid, "INV-1").status_code == 200
    dup = invoice(zc, "inv2", cid, "INV-1")
    assert dup.status_code == 400 and dup.json()["code"] == 1001
    assert "already exists" in dup.json()["message"]
    clash = upsert(zc, "contacts", "c2", {"contact_name": "Ada"})
    assert clash.status_code == 400 and clash.json()["code"] == 1001


def test_validation_errors_use_zoho_shape(zc: httpx.Client) -> None:
    cid = contact(zc)
    r = upsert(zc, "invoices", "x", {"line_items": [{"item_id": ITEM, "rate": 1}]})
    assert r.status_code == 400 and r.json() == {"code": 4, "message": "Customer is mandatory."}
    r = upsert(zc, "invoices", "x", {"customer_id": cid,
                                     "line_items": [{"item_id": "1", "rate": 1}]})
    assert r.status_code == 400 and "item_id" in r.json()["message"]
    r = zc.put("/books/v3/invoices", params=Q, content=b"{not json",
               headers={"X-Unique-Identifier-Key": UNIQUE_FIELD,
                        "X-Unique-Identifier-Value": "x", "X-Upsert": "true"})
    assert r.status_code == 400 and r.json()["code"] == 4


def test_rate_limit_is_429_with_zoho_code_and_no_retry_after(clock: ManualClock) -> None:
    zb = ZohoBooksSandbox(clock=clock, per_minute=2)
    with zb.client(zb.issue_tokens(ORG).access_token) as client:
        assert [client.get("/books/v3/contacts/1", params=Q).status_code
                for _ in range(2)] == [404, 404]
        r = client.get("/books/v3/contacts/1", params=Q)
        assert r.status_code == 429 and r.json()["code"] == 44
        assert "retry-after" not in r.headers
        clock.advance(61)
        assert client.get("/books/v3/contacts/1", params=Q).status_code == 404


def test_drop_after_write_commits(zb: ZohoBooksSandbox, zc: httpx.Client) -> None:
    cid = contact(zc)
    zb.faults.arm("drop_after_write", 1, ORG)
    with pytest.raises(httpx.HTTPError):
        invoice(zc, "inv1", cid, "INV-1")
    assert len(zb.orgs[ORG].invoices) == 1
    assert invoice(zc, "inv1", cid, "INV-1").status_code == 200
    assert len(zb.orgs[ORG].invoices) == 1


def test_lock_date_blocks_back_dated_writes(zb: ZohoBooksSandbox, zc: httpx.Client) -> None:
    cid = contact(zc)
    zb.apply_fault({"kind": "lock_period", "tenant": ORG, "date": "2025-03-31"})
    r = invoice(zc, "inv1", cid, "INV-1")
    assert r.status_code == 400 and r.json()["code"] == 4000
    zb.lock_period(ORG, None)
    assert invoice(zc, "inv1", cid, "INV-1").status_code == 200


def test_payments_void_refunds_and_credits(zb: ZohoBooksSandbox, zc: httpx.Client) -> None:
    cid = contact(zc)
    inv = invoice(zc, "inv1", cid, "INV-1").json()["invoice"]
    pay = upsert(zc, "customerpayments", "pay1", {
        "customer_id": cid, "payment_mode": "cash", "amount": 150, "date": "2025-03-15",
        "account_id": BANK, "invoices": [{"invoice_id": inv["invoice_id"],
                                          "amount_applied": 108.25}]})
    assert pay.status_code == 200, pay.text
    payment = pay.json()["payment"]
    assert payment["unused_amount"] == 41.75
    doc = zc.get(f"/books/v3/invoices/{inv['invoice_id']}", params=Q).json()["invoice"]
    assert doc["status"] == "paid" and doc["balance"] == 0
    refunds = f"/books/v3/customerpayments/{payment['payment_id']}/refunds"
    too_much = zc.post(refunds, params=Q, json={"date": "2025-03-16", "amount": 50,
                                                "from_account_id": BANK})
    assert too_much.status_code == 400
    ok = zc.post(refunds, params=Q, json={"date": "2025-03-16", "amount": 40,
                                          "from_account_id": BANK, "reference_number": "R1"})
    assert ok.status_code == 201 and ok.json()["payment_refund"]["reference_number"] == "R1"
    assert [r["reference_number"] for r in zc.get(refunds, params=Q).json()[
        "payment_refunds"]] == ["R1"]
    void = zc.post(f"/books/v3/invoices/{inv['invoice_id']}/status/void", params=Q)
    assert void.status_code == 200
    report = zb.ledger_report(ORG)
    assert report["documents"][0]["status"] == "VOIDED"
    assert report["payments"][0]["unapplied"] == "110.00"  # 150 - 40 refunded
    edit = invoice(zc, "inv1", cid, "INV-1")
    assert edit.status_code == 400 and "Voided" in edit.json()["message"]


def test_credit_note_apply_and_report_shape(zb: ZohoBooksSandbox, zc: httpx.Client) -> None:
    cid = contact(zc)
    inv = invoice(zc, "inv1", cid, "INV-1").json()["invoice"]
    zc.post(f"/books/v3/invoices/{inv['invoice_id']}/status/sent", params=Q)
    note = upsert(zc, "creditnotes", "cn1", {
        "customer_id": cid, "creditnote_number": "CN-1", "date": "2025-03-20",
        "line_items": [{"item_id": ITEM, "rate": 20, "quantity": 1}]}).json()["creditnote"]
    apply = f"/books/v3/creditnotes/{note['creditnote_id']}/invoices"
    r = zc.post(apply, params=Q, json={"invoices": [{"invoice_id": inv["invoice_id"],
                                                     "amount_applied": 30}]})
    assert r.status_code == 400  # more than the credit note holds
    r = zc.post(apply, params=Q, json={"invoices": [{"invoice_id": inv["invoice_id"],
                                                     "amount_applied": 20}]})
    assert r.status_code == 200
    credits = zc.get(f"/books/v3/invoices/{inv['invoice_id']}/creditsapplied",
                     params=Q).json()["credits"]
    assert [c["creditnote_id"] for c in credits] == [note["creditnote_id"]]
    report = zb.ledger_report(ORG)
    assert set(report) == {"platform", "tenant", "documents", "payments", "applications",
                           "customers", "totals", "duplicates"}
    assert report["customers"][0]["balance"] == "88.25"
    assert {d["status"] for d in report["documents"]} == {"PARTIALLY_PAID", "CLOSED"}


def test_inactive_customer_cannot_be_billed(zb: ZohoBooksSandbox, zc: httpx.Client) -> None:
    cid = contact(zc)
    zb.apply_fault({"kind": "deactivate_customer", "tenant": ORG, "customer_id": cid})
    r = invoice(zc, "inv1", cid, "INV-1")
    assert r.status_code == 400 and "inactive" in r.json()["message"]
    assert zc.post(f"/books/v3/contacts/{cid}/active", params=Q).status_code == 200
    assert invoice(zc, "inv1", cid, "INV-1").status_code == 200


def test_invoice_adjustment_applies_after_tax(zb: ZohoBooksSandbox, zc: httpx.Client) -> None:
    """Zoho's ``adjustment`` (either sign) is added after tax to total and balance."""
    cid = contact(zc)
    lines = [{"item_id": ITEM, "rate": 1.0, "quantity": 1, "tax_id": TAX}] * 10
    r = upsert(zc, "invoices", "inv-adj", {
        "customer_id": cid, "invoice_number": "INV-ADJ", "date": "2025-03-14",
        "line_items": lines, "adjustment": 0.03,
        "adjustment_description": "Rounding adjustment"})
    assert r.status_code == 200, r.text
    record = r.json()["invoice"]
    # item-level (default): 10 x round(0.0825) = 0.80, + 0.03 after tax
    assert (record["tax_total"], record["total"], record["balance"]) == (0.8, 10.83, 10.83)
    assert record["adjustment_description"] == "Rounding adjustment"
    zb.org(ORG).tax_rounding = "entity_level"
    r = upsert(zc, "invoices", "inv-adj", {
        "customer_id": cid, "invoice_number": "INV-ADJ", "date": "2025-03-14",
        "line_items": lines, "adjustment": -0.01})
    record = r.json()["invoice"]
    assert (record["tax_total"], record["total"]) == (0.83, 10.82)
    r = upsert(zc, "invoices", "inv-neg", {
        "customer_id": cid, "invoice_number": "INV-NEG", "date": "2025-03-14",
        "line_items": lines[:1], "adjustment": -5})
    assert r.status_code == 400 and "negative" in r.json()["message"]
