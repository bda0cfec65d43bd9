"""Reckon One sandbox behaviour over HTTP: gateway key, bearer expiry and rotation,
ErrorResponse validation shape, 201/204 answers, paging, case-insensitive paths, links
and balances, refused deletes, lock-off date, unique names, 429 + Retry-After,
write-then-drop-response, and the ledger report."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from sinks.sandbox.core import ManualClock, SyncASGITransport
from sinks.sandbox.reckon_one import SUBSCRIPTION_KEY, ReckonOneSandbox

BOOK = "5af6572c-9771-4b86-995d-3374d3bc683c"


@pytest.fixture
def sandbox() -> ReckonOneSandbox:
    sb = ReckonOneSandbox(clock=ManualClock())
    sb.book(BOOK)
    return sb


@pytest.fixture
def api(sandbox: ReckonOneSandbox) -> httpx.Client:
    return sandbox.client(sandbox.issue_tokens(BOOK).access_token)


def customer(api: httpx.Client, name: str = "Alex Kim") -> str:
    response = api.post(f"/{BOOK}/customers", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def invoice_body(customer_id: str, amount: float = 100.0, **extra: Any) -> dict[str, Any]:
    return {"customer": customer_id, "invoiceDate": "2025-03-14T00:00:00Z",
            "amountTaxStatus": "Exclusive", "reference": "INV-1",
            "lineItems": [{"lineNumber": 1, "description": "Labour",
                           "accountDetails": {"ledgerAccount": "4-1000", "quantity": 1,
                                              "amount": amount},
                           "taxRate": "GST"}], **extra}


def invoice(api: httpx.Client, customer_id: str, **extra: Any) -> str:
    response = api.post(f"/{BOOK}/invoices", json=invoice_body(customer_id, **extra))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_every_call_needs_the_subscription_key(sandbox: ReckonOneSandbox) -> None:
    token = sandbox.issue_tokens(BOOK).access_token
    bare = httpx.Client(transport=SyncASGITransport(sandbox.app),
                        base_url="http://sandbox.local",
                        headers={"Authorization": f"Bearer {token}"})
    response = bare.get(f"/{BOOK}/customers")
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401 and "subscription key" in response.json()["message"]
    wrong = sandbox.client(token, headers={"Ocp-Apim-Subscription-Key": "nope"})
    assert "invalid subscription key" in wrong.get(f"/{BOOK}/customers").json()["message"]


def test_bearer_expiry_and_rotating_refresh(sandbox: ReckonOneSandbox) -> None:
    pair = sandbox.issue_tokens(BOOK)
    api = sandbox.client(pair.access_token)
    assert api.get(f"/{BOOK}/customers").status_code == 200
    assert isinstance(sandbox.clock, ManualClock)
    sandbox.clock.advance(181 * 60)
    expired = api.get(f"/{BOOK}/customers")
    assert expired.status_code == 401 and expired.json()["code"] == 401
    form = {"grant_type": "refresh_token", "refresh_token": pair.refresh_token}
    fresh = api.post("/connect/token", data=form).json()
    assert fresh["refresh_token"] != pair.refresh_token
    assert api.post("/connect/token", data=form).status_code == 400  # spent: rotated
    again = sandbox.client(fresh["access_token"]).get(f"/{BOOK}/customers")
    assert again.status_code == 200


def test_validation_errors_have_reckons_shape(api: httpx.Client) -> None:
    cid = customer(api)
    body = invoice_body(cid)
    body["lineItems"][0]["accountDetails"]["amount"] = "lots"
    response = api.post(f"/{BOOK}/invoices", json=body)
    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": "The request is invalid.", "errors": [
        {"location": "lineItems[0].accountDetails.amount", "message": "A number is required."}]}
    missing = api.post(f"/{BOOK}/invoices", json={"customer": cid})
    assert missing.json()["errors"][0]["location"] == "invoiceDate"
    long_ref = api.post(f"/{BOOK}/invoices", json=invoice_body(cid, reference="R" * 51))
    assert long_ref.json()["errors"][0]["location"] == "reference"
    modified = invoice_body(cid)
    modified["lineItems"][0]["taxIsModified"] = True
    assert api.post(f"/{BOOK}/invoices", json=modified).status_code == 400


def test_create_201_update_204_and_case_insensitive_paths(api: httpx.Client) -> None:
    cid = customer(api)
    iid = invoice(api, cid)
    got = api.get(f"/{BOOK}/Invoices/{iid}").json()
    assert got["totalAmount"] == 110.0 and got["balance"] == 110.0
    assert got["invoiceNumber"] == "INV-000001" and got["status"] == "Approved"
    put = api.put(f"/{BOOK}/invoices/{iid}", json=invoice_body(cid, amount=200.0))
    assert put.status_code == 204 and put.content == b""
    assert api.get(f"/{BOOK}/invoices/{iid}").json()["totalAmount"] == 220.0
    note = api.post(f"/{BOOK}/creditNotes", json={
        "customer": cid, "creditNoteDate": "2025-03-15T00:00:00Z",
        "amountTaxStatus": "NonTaxed", "lineItems": [
            {"lineNumber": 1, "accountDetails": {"ledgerAccount": "4-1000", "amount": 20}}]})
    assert note.status_code == 201
    listed = api.get(f"/{BOOK}/creditnotes").json()["list"]
    assert [n["id"] for n in listed] == [note.json()["id"]]


def test_explicit_tax_amount_wins(api: httpx.Client) -> None:
    cid = customer(api)
    body = invoice_body(cid)
    body["lineItems"][0]["taxAmount"] = 9.99
    iid = api.post(f"/{BOOK}/invoices", json=body).json()["id"]
    got = api.get(f"/{BOOK}/invoices/{iid}").json()
    assert got["totalAmount"] == 109.99 and got["lineItems"][0]["taxIsModified"] is True


def test_paging_has_no_filter(api: httpx.Client) -> None:
    for i in range(5):
        customer(api, f"Customer {i}")
    first = api.get(f"/{BOOK}/customers", params={"page": 1, "perPage": 2}).json()["list"]
    third = api.get(f"/{BOOK}/customers", params={"page": 3, "perPage": 2}).json()["list"]
    assert [c["name"] for c in first] == ["Customer 0", "Customer 1"]
    assert [c["name"] for c in third] == ["Customer 4"]
    ignored = api.get(f"/{BOOK}/customers", params={"filter": "name eq 'Customer 4'"})
    assert len(ignored.json()["list"]) == 5


def test_receipt_links_never_exceed_the_balance(api: httpx.Client) -> None:
    cid = customer(api)
    iid = invoice(api, cid)
    over = api.post(f"/{BOOK}/receipts", json={
        "customer": cid, "receiptDate": "2025-03-20T00:00:00Z", "totalAmount": 200,
        "transactionLinks": [{"transactionId": iid, "transactionAmount": 150,
                              "transactionType": "Invoice"}]})
    assert over.status_code == 400
    assert over.json()["errors"][0]["location"] == "transactionLinks[0].transactionAmount"
    ok = api.post(f"/{BOOK}/receipts", json={
        "customer": cid, "receiptDate": "2025-03-20T00:00:00Z", "totalAmount": 200,
        "ledgerAccount": "1-1100", "transactionLinks": [
            {"transactionId": iid, "transactionAmount": 110, "transactionType": "Invoice"}]})
    assert ok.status_code == 201
    got = api.get(f"/{BOOK}/invoices/{iid}").json()
    assert got["balance"] == 0.0 and got["status"] == "Paid"
    assert got["transactionLinks"][0]["transactionType"] == "Receipt"


def test_linked_invoice_must_be_unlinked_before_delete(sandbox: ReckonOneSandbox,
                                                       api: httpx.Client) -> None:
    cid = customer(api)
    iid = invoice(api, cid)
    rid = api.post(f"/{BOOK}/receipts", json={
        "customer": cid, "receiptDate": "2025-03-20T00:00:00Z", "totalAmount": 50,
        "transactionLinks": [{"transactionId": iid, "transactionAmount": 50,
                              "transactionType": "Invoice"}]}).json()["id"]
    refused = api.delete(f"/{BOOK}/invoices/{iid}")
    assert refused.status_code == 400 and "linked transactions" in refused.json()["message"]
    link = api.get(f"/{BOOK}/invoices/{iid}").json()["transactionLinks"][0]["linkId"]
    assert api.delete(f"/{BOOK}/invoices/{iid}/transactionlinks/{link}").status_code == 204
    assert api.delete(f"/{BOOK}/invoices/{iid}").status_code == 204
    assert api.get(f"/{BOOK}/invoices/{iid}").status_code == 404
    assert api.get(f"/{BOOK}/invoices").json()["list"] == []
    report = sandbox.ledger_report(BOOK)
    assert report["documents"][0]["status"] == "DELETED"
    assert report["payments"] == [{"id": rid, "customer_id": cid, "amount": "50.00",
                                   "unapplied": "50.00", "status": "ACTIVE",
                                   "date": "2025-03-20", "reference": None}]


def test_lock_off_date_and_inactive_customer(sandbox: ReckonOneSandbox,
                                            api: httpx.Client) -> None:
    cid = customer(api)
    sandbox.lock_period(BOOK, date(2025, 3, 31))
    locked = api.post(f"/{BOOK}/invoices", json=invoice_body(cid))
    assert locked.status_code == 400 and "lock-off date 2025-03-31" in locked.json()["message"]
    sandbox.lock_period(BOOK, None)
    assert api.patch(f"/{BOOK}/customers/{cid}", json={"status": "Inactive"}).status_code == 204
    inactive = api.post(f"/{BOOK}/invoices", json=invoice_body(cid))
    assert inactive.status_code == 400 and "inactive" in inactive.json()["message"]


def test_customer_names_are_unique(api: httpx.Client) -> None:
    customer(api, "Alex Kim")
    dup = api.post(f"/{BOOK}/customers", json={"name": "alex kim"})
    assert dup.status_code == 400 and "already exists" in dup.json()["message"]
    long = api.post(f"/{BOOK}/customers", json={"name": "x" * 101})
    assert long.json()["errors"][0]["location"] == "name"


def test_throttle_answers_like_api_management() -> None:
    sandbox = ReckonOneSandbox(clock=ManualClock(), per_minute=2)
    api = sandbox.client(sandbox.issue_tokens(BOOK).access_token)
    assert [api.get(f"/{BOOK}/customers").status_code for _ in range(2)] == [200, 200]
    throttled = api.get(f"/{BOOK}/customers")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    assert throttled.json()["statusCode"] == 429
    assert "Try again in" in throttled.json()["message"]


def test_write_then_drop_response(sandbox: ReckonOneSandbox, api: httpx.Client) -> None:
    sandbox.faults.arm("drop_after_write", 1, BOOK)
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(f"/{BOOK}/customers", json={"name": "Committed"})
    names = [c["name"] for c in api.get(f"/{BOOK}/customers").json()["list"]]
    assert names == ["Committed"]


def test_report_counts_live_duplicates_by_reference(sandbox: ReckonOneSandbox,
                                                    api: httpx.Client) -> None:
    cid = customer(api)
    invoice(api, cid)
    invoice(api, cid)
    report = sandbox.ledger_report(BOOK)
    assert report["duplicates"]["count"] == 1
    assert report["duplicates"]["groups"][0]["field"] == "reference"
    assert report["customers"][0]["balance"] == "220.00"


def test_sandbox_key_constant_is_what_clients_send(sandbox: ReckonOneSandbox) -> None:
    assert sandbox.client().headers["Ocp-Apim-Subscription-Key"] == SUBSCRIPTION_KEY
