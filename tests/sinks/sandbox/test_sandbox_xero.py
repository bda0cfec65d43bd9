"""Xero sandbox: each documented behaviour, driven over HTTP."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from sinks.sandbox.core import ManualClock
from sinks.sandbox.xero import XeroSandbox
from tests.sinks.sandbox.conftest import TENANT

API = "/api.xro/2.0"


def contact(client: httpx.Client, name: str = "Ann Smith") -> str:
    response = client.put(f"{API}/Contacts", json={"Contacts": [{"Name": name}]})
    assert response.status_code == 200, response.text
    return str(response.json()["Contacts"][0]["ContactID"])


def invoice(contact_id: str, reference: str = "CRM-1", amount: float = 100.0,
            status: str = "AUTHORISED", **extra: Any) -> dict[str, Any]:
    return {"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "Reference": reference,
            "Date": "2025-01-10", "Status": status,
            "LineItems": [{"Description": "Labour", "Quantity": 1, "UnitAmount": amount,
                           "AccountCode": "200", "TaxType": "OUTPUT"}], **extra}


def put_invoice(client: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return client.put(f"{API}/Invoices", json={"Invoices": [body]}, headers=headers)


def pay(client: httpx.Client, invoice_id: str, amount: float) -> httpx.Response:
    return client.put(f"{API}/Payments", json={"Payments": [{
        "Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Date": "2025-01-12",
        "Amount": amount, "Reference": f"PAY-{invoice_id[:4]}"}]})


def test_tenant_header_required(xero: XeroSandbox) -> None:
    tokens = xero.issue_tokens(TENANT)
    with xero.client(tokens.access_token) as client:
        assert client.get(f"{API}/Invoices").status_code == 403


def test_invoice_totals_for_each_line_amount_type(xclient: httpx.Client) -> None:
    cid = contact(xclient)
    totals = {}
    for kind in ("Exclusive", "Inclusive", "NoTax"):
        body = invoice(cid, f"R-{kind}", 115.0, LineAmountTypes=kind)
        created = put_invoice(xclient, body).json()["Invoices"][0]
        totals[kind] = (created["SubTotal"], created["TotalTax"], created["Total"])
        assert created["AmountDue"] == created["Total"]
        assert created["UpdatedDateUTC"].startswith("/Date(")
    assert totals == {"Exclusive": (115.0, 17.25, 132.25), "Inclusive": (100.0, 15.0, 115.0),
                      "NoTax": (115.0, 0.0, 115.0)}


def test_invoice_number_unique_and_validation_exception_shape(xclient: httpx.Client) -> None:
    cid = contact(xclient)
    assert put_invoice(xclient, invoice(cid, InvoiceNumber="INV-9")).status_code == 200
    dup = put_invoice(xclient, invoice(cid, "CRM-2", InvoiceNumber="INV-9"))
    assert dup.status_code == 400
    body = dup.json()
    assert (body["ErrorNumber"], body["Type"], body["Message"]) == (
        10, "ValidationException", "A validation exception occurred")
    assert body["Elements"][0]["ValidationErrors"][0]["Message"] == "Invoice # must be unique."


def test_summarize_errors_false_returns_per_element_errors(xero: XeroSandbox,
                                                           xclient: httpx.Client) -> None:
    cid = contact(xclient)
    bad = invoice(cid, "CRM-bad")
    bad["LineItems"][0]["AccountCode"] = "999"
    response = xclient.post(f"{API}/Invoices", params={"summarizeErrors": "false"},
                            json={"Invoices": [invoice(cid, "CRM-ok"), bad]})
    assert response.status_code == 200
    ok, failed = response.json()["Invoices"]
    assert "HasErrors" not in ok and ok["InvoiceID"]
    assert failed["HasErrors"] is True and "999" in failed["ValidationErrors"][0]["Message"]
    # default summarizeErrors: nothing from a failing batch is saved
    again = xclient.put(f"{API}/Invoices", json={"Invoices": [invoice(cid, "CRM-x"), bad]})
    assert again.status_code == 400
    assert len(xero.org(TENANT).invoices) == 1


def test_post_creates_or_updates_and_put_only_creates(xclient: httpx.Client) -> None:
    cid = contact(xclient)
    created = put_invoice(xclient, invoice(cid, status="DRAFT")).json()["Invoices"][0]
    updated = xclient.post(f"{API}/Invoices", json={"Invoices": [{
        "InvoiceID": created["InvoiceID"], "Reference": "CRM-1b"}]}).json()["Invoices"][0]
    assert updated["Reference"] == "CRM-1b" and updated["InvoiceID"] == created["InvoiceID"]
    again = put_invoice(xclient, {"InvoiceID": created["InvoiceID"], **invoice(cid)})
    assert again.status_code == 400


def test_payment_marks_paid_and_paid_invoice_is_locked(xclient: httpx.Client) -> None:
    cid = contact(xclient)
    inv = put_invoice(xclient, invoice(cid, amount=100.0)).json()["Invoices"][0]
    assert pay(xclient, inv["InvoiceID"], 200.0).status_code == 400  # over the amount due
    payment = pay(xclient, inv["InvoiceID"], 115.0).json()["Payments"][0]
    assert payment["Status"] == "AUTHORISED"
    paid = xclient.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert paid["Status"] == "PAID" and paid["AmountDue"] == 0.0 and paid["AmountPaid"] == 115.0
    edit = xclient.post(f"{API}/Invoices/{inv['InvoiceID']}",
                        json={"Invoices": [{"Reference": "changed"}]})
    assert edit.status_code == 400
    void = xclient.post(f"{API}/Invoices/{inv['InvoiceID']}",
                        json={"Invoices": [{"Status": "VOIDED"}]})
    assert void.status_code == 400
    assert "payment" in void.json()["Elements"][0]["ValidationErrors"][0]["Message"]
    deleted = xclient.post(f"{API}/Payments/{payment['PaymentID']}",
                           json={"Payments": [{"Status": "DELETED"}]})
    assert deleted.json()["Payments"][0]["Status"] == "DELETED"
    reopened = xclient.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert reopened["Status"] == "AUTHORISED" and reopened["AmountDue"] == 115.0
    voided = xclient.post(f"{API}/Invoices/{inv['InvoiceID']}",
                          json={"Invoices": [{"Status": "VOIDED"}]}).json()["Invoices"][0]
    assert voided["Status"] == "VOIDED"
    assert xclient.post(f"{API}/Invoices/{inv['InvoiceID']}", json={"Invoices": [{
        "Reference": "x"}]}).status_code == 400


def test_credit_note_allocation(xero: XeroSandbox, xclient: httpx.Client) -> None:
    cid = contact(xclient)
    inv = put_invoice(xclient, invoice(cid, amount=100.0)).json()["Invoices"][0]
    note = xclient.put(f"{API}/CreditNotes", json={"CreditNotes": [{
        "Type": "ACCRECCREDIT", "Contact": {"ContactID": cid}, "Date": "2025-01-11",
        "Status": "AUTHORISED", "Reference": "CN-CRM-1", "LineItems": [{
            "Description": "refund", "Quantity": 1, "UnitAmount": 20, "AccountCode": "200",
            "TaxType": "OUTPUT"}]}]}).json()["CreditNotes"][0]
    assert note["RemainingCredit"] == 23.0
    too_much = xclient.put(f"{API}/CreditNotes/{note['CreditNoteID']}/Allocations", json={
        "Allocations": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": 50,
                         "Date": "2025-01-12"}]})
    assert too_much.status_code == 400
    alloc = xclient.put(f"{API}/CreditNotes/{note['CreditNoteID']}/Allocations", json={
        "Allocations": [{"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": 23,
                         "Date": "2025-01-12"}]})
    assert alloc.status_code == 200, alloc.text
    after = xclient.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert after["AmountCredited"] == 23.0 and after["AmountDue"] == 92.0
    note_after = xclient.get(f"{API}/CreditNotes/{note['CreditNoteID']}").json()["CreditNotes"][0]
    assert note_after["Status"] == "PAID" and note_after["RemainingCredit"] == 0.0
    report = xero.ledger_report(TENANT)
    assert report["customers"][0]["balance"] == "92.00"
    assert {a["source_kind"] for a in report["applications"]} == {"credit_note"}


def test_idempotency_key(xero: XeroSandbox, xclient: httpx.Client) -> None:
    cid = contact(xclient)
    first = put_invoice(xclient, invoice(cid), **{"Idempotency-Key": "k-1"})
    second = put_invoice(xclient, invoice(cid), **{"Idempotency-Key": "k-1"})
    assert first.json() == second.json() and len(xero.org(TENANT).invoices) == 1
    mismatch = put_invoice(xclient, invoice(cid, "other"), **{"Idempotency-Key": "k-1"})
    assert mismatch.status_code == 400
    assert len(xero.org(TENANT).invoices) == 1


def test_write_then_drop_then_retry_with_key(xero: XeroSandbox, xclient: httpx.Client) -> None:
    cid = contact(xclient)
    xclient.post("/__sandbox/faults", json={"kind": "drop_after_write", "tenant": TENANT})
    with pytest.raises(httpx.RemoteProtocolError):
        put_invoice(xclient, invoice(cid), **{"Idempotency-Key": "evt-7"})
    retry = put_invoice(xclient, invoice(cid), **{"Idempotency-Key": "evt-7"})
    assert retry.status_code == 200
    report = xclient.get(f"/__sandbox/ledger/{TENANT}").json()
    assert len(report["documents"]) == 1 and report["duplicates"]["count"] == 0


def test_duplicate_reference_is_counted(xclient: httpx.Client) -> None:
    cid = contact(xclient)
    put_invoice(xclient, invoice(cid, "CRM-dup"))
    put_invoice(xclient, invoice(cid, "CRM-dup"))
    report = xclient.get(f"/__sandbox/ledger/{TENANT}").json()
    assert report["duplicates"]["count"] == 1
    assert report["duplicates"]["groups"][0]["field"] == "reference"


def test_lookup_by_where_and_if_modified_since(clock: ManualClock,
                                               xclient: httpx.Client) -> None:
    cid = contact(xclient)
    put_invoice(xclient, invoice(cid, "CRM-old"))
    clock.advance(600)  # within the 30-minute access token
    put_invoice(xclient, invoice(cid, "CRM-new"))
    found = xclient.get(f"{API}/Invoices", params={"where": 'Reference=="CRM-new"'}).json()
    assert [i["Reference"] for i in found["Invoices"]] == ["CRM-new"]
    both = xclient.get(f"{API}/Invoices", params={
        "where": f'Type=="ACCREC" AND Contact.ContactID==guid("{cid}")'}).json()
    assert len(both["Invoices"]) == 2
    since = xclient.get(f"{API}/Invoices", headers={
        "If-Modified-Since": "2025-01-15T12:05:00Z"}).json()
    assert [i["Reference"] for i in since["Invoices"]] == ["CRM-new"]
    assert xclient.get(f"{API}/Invoices", params={"where": "Total > 5"}).status_code == 400


def test_archived_contact_and_lock_date(xero: XeroSandbox, xclient: httpx.Client) -> None:
    cid = contact(xclient)
    xero.lock_period(TENANT, date(2025, 1, 10))
    locked = put_invoice(xclient, invoice(cid))
    assert locked.status_code == 400 and "lock date" in locked.text
    xero.lock_period(TENANT, None)
    xero.apply_fault({"kind": "deactivate_customer", "tenant": TENANT, "customer_id": cid})
    archived = put_invoice(xclient, invoice(cid))
    assert archived.status_code == 400 and "archived" in archived.text


def test_contact_name_unique(xclient: httpx.Client) -> None:
    contact(xclient, "Dup")
    again = xclient.put(f"{API}/Contacts", json={"Contacts": [{"Name": "Dup"}]})
    assert again.status_code == 400
    assert again.json()["Elements"][0]["HasValidationErrors"] is True


def test_rate_limits_minute_day_concurrent(clock: ManualClock) -> None:
    xero = XeroSandbox(clock=clock, per_minute=2, per_day=3)
    tokens = xero.issue_tokens(TENANT)
    with xero.client(tokens.access_token, headers={"xero-tenant-id": TENANT}) as client:
        first = client.get(f"{API}/Accounts")
        assert first.headers["X-MinLimit-Remaining"] == "1"
        assert first.headers["X-DayLimit-Remaining"] == "2"
        client.get(f"{API}/Accounts")
        minute = client.get(f"{API}/Accounts")
        assert minute.status_code == 429
        assert minute.headers["X-Rate-Limit-Problem"] == "minute"
        assert int(minute.headers["Retry-After"]) == 60
        clock.advance(60)
        client.get(f"{API}/Accounts")
        day = client.get(f"{API}/Accounts")
        assert day.headers["X-Rate-Limit-Problem"] == "day"
        assert int(day.headers["Retry-After"]) > 3600
    concurrent = XeroSandbox(clock=clock, max_concurrent=0)
    tokens = concurrent.issue_tokens(TENANT)
    with concurrent.client(tokens.access_token, headers={"xero-tenant-id": TENANT}) as client:
        assert client.get(f"{API}/Accounts").headers["X-Rate-Limit-Problem"] == "concurrent"


def test_oauth_rotation_and_expiry(xero: XeroSandbox, clock: ManualClock) -> None:
    tokens = xero.issue_tokens(TENANT)
    with xero.client(tokens.access_token, headers={"xero-tenant-id": TENANT}) as client:
        clock.advance(1800)
        expired = client.get(f"{API}/Invoices")
        assert expired.status_code == 401 and "TokenExpired" in expired.json()["Detail"]
        rotated = client.post("/connect/token", data={"grant_type": "refresh_token",
                                                      "refresh_token": tokens.refresh_token})
        assert rotated.status_code == 200
        assert rotated.json()["refresh_token"] != tokens.refresh_token
        reuse = client.post("/connect/token", data={"grant_type": "refresh_token",
                                                    "refresh_token": tokens.refresh_token})
        assert reuse.status_code == 400 and reuse.json() == {"error": "invalid_grant"}
        ok = client.get(f"{API}/Invoices", headers={
            "Authorization": f"Bearer {rotated.json()['access_token']}"})
        assert ok.status_code == 200


def test_seeded_settings(xclient: httpx.Client) -> None:
    rates = xclient.get(f"{API}/TaxRates").json()["TaxRates"]
    assert {r["TaxType"] for r in rates} >= {"OUTPUT", "NONE"}
    accounts = xclient.get(f"{API}/Accounts").json()["Accounts"]
    assert any(a["Type"] == "BANK" for a in accounts)
