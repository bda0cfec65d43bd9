"""QuickBooks Online sandbox: each documented behaviour, driven over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from sinks.sandbox.core import ManualClock
from sinks.sandbox.quickbooks import QuickBooksSandbox
from tests.sinks.sandbox.conftest import REALM

BASE = f"/v3/company/{REALM}"


def post(client: httpx.Client, entity: str, body: dict[str, Any], **params: str) -> httpx.Response:
    return client.post(f"{BASE}/{entity}", json=body, params=params)


def customer(client: httpx.Client, name: str = "Ann Smith") -> dict[str, Any]:
    response = post(client, "customer", {"DisplayName": name})
    assert response.status_code == 200, response.text
    return dict(response.json()["Customer"])


def invoice_body(customer_id: str, amount: float = 100.0, doc: str | None = "CRM-1",
                 tax: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer_id}, "TxnDate": "2025-01-10",
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": amount,
                  "SalesItemLineDetail": {"ItemRef": {"value": "1"},
                                          "TaxCodeRef": {"value": "TAX"}}}]}
    if doc:
        body["DocNumber"] = doc
    if tax is not None:
        body["TxnTaxDetail"] = {"TotalTax": tax}
    return body


def fault_code(response: httpx.Response) -> str:
    return str(response.json()["Fault"]["Error"][0]["code"])


def test_create_read_and_computed_totals(qclient: httpx.Client) -> None:
    cust = customer(qclient)
    body = invoice_body(cust["Id"], 150.0, tax=12.38)
    body["Line"].append({"DetailType": "DiscountLineDetail", "Amount": 10,
                         "DiscountLineDetail": {"PercentBased": False}})
    created = post(qclient, "invoice", body).json()["Invoice"]
    assert created["TotalAmt"] == 152.38 and created["Balance"] == 152.38
    assert created["SyncToken"] == "0"
    read = qclient.get(f"{BASE}/invoice/{created['Id']}").json()["Invoice"]
    assert read["DocNumber"] == "CRM-1"
    assert qclient.get(f"{BASE}/customer/{cust['Id']}").json()["Customer"]["Balance"] == 152.38
    missing = qclient.get(f"{BASE}/invoice/999")
    assert missing.status_code == 400 and fault_code(missing) == "610"


def test_requestid_replays_without_writing_again(qbo: QuickBooksSandbox,
                                                 qclient: httpx.Client) -> None:
    cust = customer(qclient)
    first = post(qclient, "invoice", invoice_body(cust["Id"]), requestid="req-1")
    again = post(qclient, "invoice", invoice_body(cust["Id"]), requestid="req-1")
    assert first.json() == again.json()
    assert len(qbo.realm(REALM).entities["Invoice"]) == 1


def test_write_then_drop_response_then_retry_with_requestid(qbo: QuickBooksSandbox,
                                                            qclient: httpx.Client) -> None:
    cust = customer(qclient)
    qbo.faults.arm("drop_after_write", tenant=REALM)
    with pytest.raises(httpx.RemoteProtocolError):
        post(qclient, "invoice", invoice_body(cust["Id"]), requestid="evt-42")
    assert len(qbo.realm(REALM).entities["Invoice"]) == 1  # the write committed
    retry = post(qclient, "invoice", invoice_body(cust["Id"]), requestid="evt-42")
    assert retry.status_code == 200
    report = qbo.ledger_report(REALM)
    assert len(report["documents"]) == 1 and report["duplicates"]["count"] == 0


def test_drop_mode_500(qbo: QuickBooksSandbox, qclient: httpx.Client) -> None:
    qbo.faults.arm("drop_after_write", mode="500")
    response = post(qclient, "customer", {"DisplayName": "Bob"})
    assert response.status_code == 500
    assert len(qbo.realm(REALM).entities["Customer"]) == 1


def test_synctoken_increments_and_stale_token_faults(qclient: httpx.Client) -> None:
    cust = customer(qclient)
    inv = post(qclient, "invoice", invoice_body(cust["Id"])).json()["Invoice"]
    sparse = {"Id": inv["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "edited"}
    updated = post(qclient, "invoice", sparse, operation="update").json()["Invoice"]
    assert updated["SyncToken"] == "1" and updated["PrivateNote"] == "edited"
    assert updated["TotalAmt"] == 100.0  # sparse kept the lines
    stale = post(qclient, "invoice", sparse, operation="update")
    assert stale.status_code == 400 and fault_code(stale) == "5010"
    assert stale.json()["Fault"]["Error"][0]["Message"] == "Stale Object Error"
    full = invoice_body(cust["Id"], 80.0) | {"Id": inv["Id"], "SyncToken": "1"}
    assert post(qclient, "invoice", full).json()["Invoice"]["TotalAmt"] == 80.0


def test_duplicate_display_name_and_validation_faults(qclient: httpx.Client) -> None:
    customer(qclient, "Ann")
    dup = post(qclient, "customer", {"DisplayName": "ann"})
    assert fault_code(dup) == "6240"
    assert dup.json()["Fault"]["type"] == "ValidationFault"
    assert set(dup.json()["Fault"]["Error"][0]) == {"Message", "Detail", "code", "element"}
    assert "time" in dup.json()
    too_long = post(qclient, "customer", {"DisplayName": "x" * 501})
    assert fault_code(too_long) == "2050"
    missing = post(qclient, "customer", {"Notes": "no name"})
    assert fault_code(missing) == "2020"
    no_lines = post(qclient, "invoice", {"CustomerRef": {"value": "1"}})
    assert fault_code(no_lines) in ("2020", "610")


def test_duplicate_doc_number_depends_on_company_preference(qbo: QuickBooksSandbox,
                                                            qclient: httpx.Client) -> None:
    cust = customer(qclient)
    assert post(qclient, "invoice", invoice_body(cust["Id"])).status_code == 200
    dup = post(qclient, "invoice", invoice_body(cust["Id"]))
    assert fault_code(dup) == "6140"
    assert dup.json()["Fault"]["Error"][0]["element"] == "DocNumber"
    qbo.set_preferences(REALM, duplicate_doc_number_check=False)
    assert post(qclient, "invoice", invoice_body(cust["Id"])).status_code == 200
    assert qbo.ledger_report(REALM)["duplicates"]["count"] == 1
    assert fault_code(post(qclient, "invoice", invoice_body(cust["Id"], doc="X" * 22))) == "2050"


def test_payment_reduces_balance_and_void_restores(qclient: httpx.Client) -> None:
    cust = customer(qclient)
    inv = post(qclient, "invoice", invoice_body(cust["Id"], 100.0)).json()["Invoice"]
    pay = post(qclient, "payment", {
        "TotalAmt": 60, "CustomerRef": {"value": cust["Id"]}, "PaymentRefNum": "P-1",
        "Line": [{"Amount": 60, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
    }).json()["Payment"]
    assert qclient.get(f"{BASE}/invoice/{inv['Id']}").json()["Invoice"]["Balance"] == 40.0
    over = post(qclient, "payment", {
        "TotalAmt": 50, "CustomerRef": {"value": cust["Id"]},
        "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]})
    assert over.status_code == 400
    voided = post(qclient, "payment", {"Id": pay["Id"], "SyncToken": pay["SyncToken"]},
                  operation="void").json()["Payment"]
    assert voided["TotalAmt"] == 0.0 and voided["PrivateNote"] == "Voided"
    assert qclient.get(f"{BASE}/invoice/{inv['Id']}").json()["Invoice"]["Balance"] == 100.0


def test_credit_memo_applied_through_payment(qbo: QuickBooksSandbox,
                                             qclient: httpx.Client) -> None:
    cust = customer(qclient)
    inv = post(qclient, "invoice", invoice_body(cust["Id"], 100.0)).json()["Invoice"]
    memo = post(qclient, "creditmemo", invoice_body(cust["Id"], 30.0, doc="CM-1")
                ).json()["CreditMemo"]
    assert memo["RemainingCredit"] == 30.0
    post(qclient, "payment", {
        "TotalAmt": 0, "CustomerRef": {"value": cust["Id"]},
        "Line": [{"Amount": 30, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]},
                 {"Amount": 30, "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]})
    assert qclient.get(f"{BASE}/invoice/{inv['Id']}").json()["Invoice"]["Balance"] == 70.0
    assert qclient.get(f"{BASE}/creditmemo/{memo['Id']}").json()["CreditMemo"][
        "RemainingCredit"] == 0.0
    report = qbo.ledger_report(REALM)
    assert report["applications"][0]["source_kind"] == "credit_note"
    assert report["customers"][0]["balance"] == "70.00"


def test_void_and_delete_invoice(qclient: httpx.Client) -> None:
    cust = customer(qclient)
    inv = post(qclient, "invoice", invoice_body(cust["Id"])).json()["Invoice"]
    voided = post(qclient, "invoice", {"Id": inv["Id"], "SyncToken": "0"},
                  operation="void").json()["Invoice"]
    assert voided["TotalAmt"] == 0.0 and voided["Balance"] == 0.0 and voided["SyncToken"] == "1"
    other = post(qclient, "invoice", invoice_body(cust["Id"], doc="CRM-2")).json()["Invoice"]
    deleted = post(qclient, "invoice", {"Id": other["Id"], "SyncToken": "0"},
                   operation="delete").json()["Invoice"]
    assert deleted["status"] == "Deleted"
    assert fault_code(qclient.get(f"{BASE}/invoice/{other['Id']}")) == "610"


def test_customer_cannot_be_deleted_and_inactive_customer_rejected(
        qbo: QuickBooksSandbox, qclient: httpx.Client) -> None:
    cust = customer(qclient)
    refused = post(qclient, "customer", {"Id": cust["Id"], "SyncToken": "0"}, operation="delete")
    assert refused.status_code == 400
    qbo.apply_fault({"kind": "deactivate_customer", "tenant": REALM, "customer_id": cust["Id"]})
    rejected = post(qclient, "invoice", invoice_body(cust["Id"]))
    assert fault_code(rejected) == "610"
    assert "inactive" in rejected.json()["Fault"]["Error"][0]["Detail"]


def test_closed_books_reject_dated_transactions(qbo: QuickBooksSandbox,
                                                qclient: httpx.Client) -> None:
    cust = customer(qclient)
    response = qclient.post("/__sandbox/faults", json={"kind": "lock_period", "tenant": REALM,
                                                       "date": "2025-01-10"})
    assert response.status_code == 200
    closed = post(qclient, "invoice", invoice_body(cust["Id"]))
    assert fault_code(closed) == "6210"
    body = invoice_body(cust["Id"]) | {"TxnDate": "2025-01-11"}
    assert post(qclient, "invoice", body).status_code == 200


def test_query_where_in_and_paging(qclient: httpx.Client) -> None:
    cust = customer(qclient)
    for n in range(5):
        post(qclient, "invoice", invoice_body(cust["Id"], 10.0 * (n + 1), doc=f"D-{n}"))

    def query(text: str) -> dict[str, Any]:
        response = qclient.get(f"{BASE}/query", params={"query": text})
        assert response.status_code == 200, response.text
        return dict(response.json()["QueryResponse"])

    assert [i["DocNumber"] for i in query("select * from Invoice where DocNumber = 'D-3'")[
        "Invoice"]] == ["D-3"]
    found = query("select * from Invoice where DocNumber in ('D-1', 'D-2') and TotalAmt = '20'")
    assert [i["DocNumber"] for i in found["Invoice"]] == ["D-1"]
    page = query("select * from Invoice startposition 2 maxresults 2")
    assert page["startPosition"] == 2 and page["maxResults"] == 2
    assert query("select count(*) from Invoice")["totalCount"] == 5
    assert query("select * from Invoice where DocNumber = 'nope'") == {}
    assert query(f"select * from Customer where DisplayName = '{cust['DisplayName']}'")[
        "Customer"][0]["Id"] == cust["Id"]
    bad = qclient.get(f"{BASE}/query", params={"query": "select from"})
    assert fault_code(bad) == "4000"


def test_batch_items_are_independent(qclient: httpx.Client) -> None:
    cust = customer(qclient)
    response = qclient.post(f"{BASE}/batch", json={"BatchItemRequest": [
        {"bId": "b1", "operation": "create", "Invoice": invoice_body(cust["Id"], doc="B-1")},
        {"bId": "b2", "operation": "create", "Invoice": invoice_body(cust["Id"], doc="B-1")},
        {"bId": "b3", "Query": "select * from Invoice where DocNumber = 'B-1'"}]})
    items = {item["bId"]: item for item in response.json()["BatchItemResponse"]}
    assert items["b1"]["Invoice"]["DocNumber"] == "B-1"
    assert items["b2"]["Fault"]["Error"][0]["code"] == "6140"
    assert len(items["b3"]["QueryResponse"]["Invoice"]) == 1
    too_many = qclient.post(f"{BASE}/batch", json={"BatchItemRequest": [
        {"bId": str(n), "Query": "select * from Item"} for n in range(31)]})
    assert too_many.status_code == 400


def test_token_expiry_refresh_rotation_and_revocation(qbo: QuickBooksSandbox,
                                                      clock: ManualClock) -> None:
    tokens = qbo.issue_tokens(REALM)
    with qbo.client(tokens.access_token) as client:
        assert client.get(f"{BASE}/query", params={"query": "select * from Item"}).is_success
        clock.advance(3601)
        expired = client.get(f"{BASE}/query", params={"query": "select * from Item"})
    assert expired.status_code == 401
    assert expired.json()["fault"]["error"][0]["code"] == "3200"
    assert expired.json()["fault"]["type"] == "AUTHENTICATION"
    with qbo.client() as anon:
        first = anon.post("/oauth2/v1/tokens/bearer", data={
            "grant_type": "refresh_token", "refresh_token": tokens.refresh_token})
        assert first.status_code == 200 and first.json()["token_type"] == "bearer"
        reused = anon.post("/oauth2/v1/tokens/bearer", data={
            "grant_type": "refresh_token", "refresh_token": tokens.refresh_token})
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        fresh = first.json()
        ok = anon.get(f"{BASE}/query", params={"query": "select * from Item"},
                      headers={"Authorization": f"Bearer {fresh['access_token']}"})
        assert ok.status_code == 200
        anon.post("/__sandbox/faults", json={"kind": "expire_tokens"})
        assert anon.get(f"{BASE}/query", params={"query": "select * from Item"}, headers={
            "Authorization": f"Bearer {fresh['access_token']}"}).status_code == 401
        anon.post("/__sandbox/faults", json={"kind": "revoke_grant"})
        revoked = anon.post("/oauth2/v1/tokens/bearer", data={
            "grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]})
        assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"


def test_rate_limit_per_minute_and_injected(clock: ManualClock) -> None:
    qbo = QuickBooksSandbox(clock=clock, per_minute=3)
    tokens = qbo.issue_tokens(REALM)
    with qbo.client(tokens.access_token) as client:
        url = f"{BASE}/query?query=select * from Item"
        assert [client.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]
        throttled = client.get(url)
        assert throttled.json()["fault"]["error"][0]["code"] == "003001"
        assert "Retry-After" not in throttled.headers
        clock.advance(61)
        assert client.get(url).status_code == 200
        qbo.faults.arm("rate_limit", count=1)
        qbo.faults.arm("server_error", count=1, status=503)
        assert client.get(url).status_code == 429
        assert client.get(url).status_code == 503
        assert client.get(url).status_code == 429  # faulted calls still count: 3/3 used


def test_concurrency_limit(clock: ManualClock) -> None:
    qbo = QuickBooksSandbox(clock=clock, max_concurrent=2)
    tokens = qbo.issue_tokens(REALM)
    qbo.faults.arm("latency", count=3, seconds=0.2)

    async def burst() -> list[int]:
        async with qbo.async_client(tokens.access_token) as client:
            calls = [client.get(f"{BASE}/query", params={"query": "select * from Item"})
                     for _ in range(3)]
            return sorted(r.status_code for r in await asyncio.gather(*calls))

    assert asyncio.run(burst()) == [200, 200, 429]


def test_token_for_other_realm_forbidden(qbo: QuickBooksSandbox) -> None:
    tokens = qbo.issue_tokens("other-realm")
    with qbo.client(tokens.access_token) as client:
        assert client.get(f"{BASE}/query", params={"query": "select * from Item"}
                          ).status_code == 403


def test_serve_over_loopback(qbo: QuickBooksSandbox) -> None:
    handle = qbo.serve()
    try:
        tokens = qbo.issue_tokens(REALM)
        response = httpx.post(f"{handle.url}{BASE}/customer", json={"DisplayName": "Net"},
                              headers={"Authorization": f"Bearer {tokens.access_token}"})
        assert response.status_code == 200
        report = httpx.get(f"{handle.url}/__sandbox/ledger/{REALM}").json()
        assert report["customers"][0]["name"] == "Net"
    finally:
        handle.stop()
