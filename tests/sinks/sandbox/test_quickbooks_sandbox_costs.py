"""QuickBooks sandbox shortcuts that keep a write and a query from costing O(realm):
creates skip the rollback snapshot (they validate before inserting), new documents get
their derived amounts without a full recompute, queries copy only the page. Each must
leave the simulated behaviour exactly as before."""

from __future__ import annotations

import httpx

from sinks.sandbox.quickbooks import QuickBooksSandbox
from tests.sinks.sandbox.conftest import REALM
from tests.sinks.sandbox.test_sandbox_quickbooks import (
    BASE,
    customer,
    fault_code,
    invoice_body,
    post,
)


def test_a_refused_create_leaves_the_realm_unchanged(qbo: QuickBooksSandbox,
                                                      qclient: httpx.Client) -> None:
    cust = customer(qclient)
    assert post(qclient, "invoice", invoice_body(cust["Id"], doc="D-1")).status_code == 200
    before = {e: dict(r) for e, r in qbo.realm(REALM).entities.items()}
    refused = post(qclient, "invoice", invoice_body(cust["Id"], doc="D-1"))
    assert refused.status_code == 400 and fault_code(refused) == "6140"
    bad_item = invoice_body(cust["Id"], doc="D-2")
    bad_item["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = "999"
    assert post(qclient, "invoice", bad_item).status_code == 400
    assert {e: dict(r) for e, r in qbo.realm(REALM).entities.items()} == before


def test_new_documents_and_payments_keep_their_derived_amounts(qclient: httpx.Client) -> None:
    cust = customer(qclient)
    inv = post(qclient, "invoice", invoice_body(cust["Id"], 80.0, doc="D-3")).json()["Invoice"]
    assert inv["Balance"] == 80.0 and "LinkedTxn" not in inv
    pay = post(qclient, "payment", {
        "CustomerRef": {"value": cust["Id"]}, "TotalAmt": 30.0,
        "Line": [{"Amount": 30.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
    })
    assert pay.status_code == 200, pay.text
    read = qclient.get(f"{BASE}/invoice/{inv['Id']}").json()["Invoice"]
    assert read["Balance"] == 50.0 and read["LinkedTxn"][0]["TxnType"] == "Payment"


def test_query_results_are_copies_and_customer_balance_stays_queryable(
        qclient: httpx.Client) -> None:
    cust = customer(qclient, "Query Person")
    post(qclient, "invoice", invoice_body(cust["Id"], 40.0, doc="D-4"))
    rows = qclient.get(f"{BASE}/query", params={
        "query": "select * from Invoice where DocNumber = 'D-4'"}).json()["QueryResponse"]
    assert [r["DocNumber"] for r in rows["Invoice"]] == ["D-4"]
    found = qclient.get(f"{BASE}/query", params={
        "query": "select * from Customer where Balance > '0'"}).json()["QueryResponse"]
    assert [c["DisplayName"] for c in found["Customer"]] == ["Query Person"]
    by_name = qclient.get(f"{BASE}/query", params={
        "query": "select * from Customer where DisplayName = 'Query Person'"}).json()
    assert by_name["QueryResponse"]["Customer"][0]["Balance"] == 40.0
