"""NetSuite sandbox: each documented behaviour, driven over HTTP (REST and SOAP)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sinks.sandbox.core import ManualClock, SyncASGITransport
from sinks.sandbox.netsuite import NetSuiteSandbox
from sinks.transport.auth import OAuth1Auth

ACCOUNT = "555_SB1"
HOST = "555_sb1"
REST = f"/{HOST}/services/rest/record/v1"


@pytest.fixture
def sandbox() -> NetSuiteSandbox:
    sb = NetSuiteSandbox(clock=ManualClock())
    sb.register_tba(ACCOUNT, "ck", "cs", "tk", "ts")
    return sb


def tba(sandbox: NetSuiteSandbox, **overrides: Any) -> OAuth1Auth:
    args: dict[str, Any] = {
        "consumer_key": "ck", "consumer_secret": SecretStr("cs"), "token": "tk",
        "token_secret": SecretStr("ts"), "realm": ACCOUNT,
        "clock": lambda: sandbox.clock.now().timestamp()}
    args.update(overrides)
    return OAuth1Auth(**args)


class Signed(httpx.Auth):
    def __init__(self, auth: OAuth1Auth) -> None:
        self.auth = auth

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        self.auth.apply(request)
        yield request


@pytest.fixture
def client(sandbox: NetSuiteSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(transport=SyncASGITransport(sandbox.app), base_url="http://sandbox.local",
                      auth=Signed(tba(sandbox))) as c:
        yield c


def customer(client: httpx.Client, eid: str = "c1", **extra: Any) -> str:
    response = client.put(f"{REST}/customer/eid:{eid}",
                          json={"companyName": "Acme Repairs", **extra})
    assert response.status_code == 204, response.text
    return response.headers["location"].rsplit("/", 1)[-1]


def invoice_body(customer_id: str, **extra: Any) -> dict[str, Any]:
    return {"entity": {"id": customer_id}, "tranDate": "2025-01-10", "tranId": "INV-1",
            "item": {"items": [{"item": {"id": "10"}, "quantity": 2, "rate": 50,
                                "taxCode": {"id": "5"}}]}, **extra}


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"type", "title", "status", "o:errorDetails"}
    assert body["status"] == response.status_code
    return dict(body["o:errorDetails"][0])


def test_upsert_creates_then_updates_the_same_record(client: httpx.Client) -> None:
    cid = customer(client)
    assert customer(client, companyName="Acme Repairs Ltd") == cid
    got = client.get(f"{REST}/customer/eid:c1").json()
    assert got["id"] == cid and got["companyName"] == "Acme Repairs Ltd"
    assert client.get(f"{REST}/customer/{cid}").json()["externalId"] == "c1"


def test_invoice_totals_tax_and_location(client: httpx.Client) -> None:
    cid = customer(client)
    response = client.put(f"{REST}/invoice/eid:i1", json=invoice_body(cid))
    assert response.status_code == 204
    assert response.headers["location"].startswith(
        f"http://sandbox.local/{HOST}/services/rest/record/v1/invoice/")
    got = client.get(f"{REST}/invoice/eid:i1").json()
    assert (got["subtotal"], got["taxTotal"], got["total"]) == (100.0, 8.25, 108.25)
    assert got["amountRemaining"] == 108.25 and got["status"] == "Open"


def test_replace_item_versus_merge(client: httpx.Client) -> None:
    cid = customer(client)
    client.put(f"{REST}/invoice/eid:i1", json=invoice_body(cid))
    client.put(f"{REST}/invoice/eid:i1", json=invoice_body(cid))  # no replace: lines merge
    assert client.get(f"{REST}/invoice/eid:i1").json()["total"] == 216.5
    client.put(f"{REST}/invoice/eid:i1", params={"replace": "item"}, json=invoice_body(cid))
    assert client.get(f"{REST}/invoice/eid:i1").json()["total"] == 108.25


@pytest.mark.parametrize(("mutate", "code", "path"), [
    (lambda b: b.update(entity={"id": "999"}), "INVALID_KEY_OR_REF", "entity"),
    (lambda b: b.pop("tranDate"), "MISSING_REQD_FLD", "tranDate"),
    (lambda b: b["item"]["items"][0].update(item={"id": "404"}), "INVALID_KEY_OR_REF",
     "item.items[0].item"),
    (lambda b: b["item"]["items"][0].update(taxCode={"id": "X"}), "INVALID_KEY_OR_REF",
     "item.items[0].taxCode"),
    (lambda b: b.update(item={"items": []}), "USER_ERROR", "item"),
    (lambda b: b.update(lines=[]), "USER_ERROR", "lines"),
])
def test_validation_errors_in_the_nserror_shape(client: httpx.Client, mutate: Any, code: str,
                                                path: str) -> None:
    body = invoice_body(customer(client))
    mutate(body)
    response = client.put(f"{REST}/invoice/eid:i1", json=body)
    assert response.status_code == 400
    detail = error_of(response)
    assert (detail["o:errorCode"], detail.get("o:errorPath")) == (code, path)
    assert client.get(f"{REST}/invoice/eid:i1").status_code == 404  # nothing half-written


def test_put_without_external_id_and_unknown_record(client: httpx.Client) -> None:
    assert error_of(client.put(f"{REST}/invoice/12", json={}))["o:errorCode"] == "USER_ERROR"
    assert client.get(f"{REST}/salesorder/1").status_code == 404


def test_duplicate_transaction_number(client: httpx.Client) -> None:
    cid = customer(client)
    client.put(f"{REST}/invoice/eid:i1", json=invoice_body(cid))
    response = client.put(f"{REST}/invoice/eid:i2", json=invoice_body(cid))
    assert error_of(response)["o:errorCode"] == "DUP_TRANS"


def test_closed_period_blocks_writes_and_deletes(client: httpx.Client,
                                                 sandbox: NetSuiteSandbox) -> None:
    cid = customer(client)
    client.put(f"{REST}/invoice/eid:i1", json=invoice_body(cid))
    sandbox.apply_fault({"kind": "lock_period", "tenant": HOST, "date": "2025-01-31"})
    for response in (client.put(f"{REST}/invoice/eid:i2", json=invoice_body(cid, tranId="2")),
                     client.delete(f"{REST}/invoice/eid:i1")):
        assert error_of(response)["o:errorCode"] == "TRAN_PERIOD_CLOSED"
    later = invoice_body(cid, tranId="3", tranDate="2025-02-01")
    assert client.put(f"{REST}/invoice/eid:i3", json=later).status_code == 204


def test_record_changed_fault(client: httpx.Client, sandbox: NetSuiteSandbox) -> None:
    cid = customer(client)
    sandbox.apply_fault({"kind": "record_changed", "count": 1})
    first = client.put(f"{REST}/invoice/eid:i1", json=invoice_body(cid))
    assert error_of(first)["o:errorCode"] == "RCRD_HAS_BEEN_CHANGED"
    assert client.put(f"{REST}/invoice/eid:i1", json=invoice_body(cid)).status_code == 204


def test_payment_application_and_delete_rules(client: httpx.Client) -> None:
    cid = customer(client)
    client.put(f"{REST}/invoice/eid:i1", json=invoice_body(cid))
    iid = client.get(f"{REST}/invoice/eid:i1").json()["id"]
    pay = {"customer": {"id": cid}, "tranDate": "2025-01-12", "payment": 50,
           "account": {"id": "1"}, "apply": {"items": [{"doc": {"id": iid}, "apply": True,
                                                        "amount": 50}]}}
    assert client.put(f"{REST}/customerPayment/eid:p1", json=pay).status_code == 204
    assert client.get(f"{REST}/invoice/{iid}").json()["amountRemaining"] == 58.25
    assert error_of(client.delete(f"{REST}/invoice/{iid}"))["o:errorCode"] == \
        "CANT_DELETE_TRANS"
    too_much = {**pay, "payment": 500,
                "apply": {"items": [{"doc": {"id": iid}, "apply": True, "amount": 500}]}}
    assert error_of(client.put(f"{REST}/customerPayment/eid:p2", json=too_much))[
        "o:errorCode"] == "INVALID_TRANS_AMT"
    assert client.delete(f"{REST}/customerPayment/eid:p1").status_code == 204
    assert client.delete(f"{REST}/invoice/{iid}").status_code == 204
    assert client.delete(f"{REST}/invoice/{iid}").status_code == 404


def test_tba_rejections(sandbox: NetSuiteSandbox) -> None:
    def status(auth: OAuth1Auth, **kw: Any) -> httpx.Response:
        # a client closes its transport (and its event loop): one transport per client
        with httpx.Client(transport=SyncASGITransport(sandbox.app),
                          base_url="http://sandbox.local",
                          auth=Signed(auth)) as c:
            return c.get(f"{REST}/customer/eid:nobody", **kw)

    assert status(tba(sandbox)).status_code == 404  # authenticated, record missing
    bad = [tba(sandbox, token_secret=SecretStr("wrong")), tba(sandbox, realm="OTHER"),
           tba(sandbox, consumer_key="ck2"), tba(sandbox, signature_method="HMAC-SHA1"),
           tba(sandbox, clock=lambda: sandbox.clock.now().timestamp() - 3600)]
    for auth in bad:
        response = status(auth)
        assert response.status_code == 401
        assert error_of(response)["o:errorCode"] == "INVALID_LOGIN"
    fixed = tba(sandbox, nonce=lambda: "same-nonce-1")
    assert status(fixed).status_code == 404
    assert status(fixed).status_code == 401  # replayed nonce
    sandbox.revoke_tba(ACCOUNT)
    assert status(tba(sandbox)).status_code == 401


def test_oauth2_bearer_tokens_and_expiry(sandbox: NetSuiteSandbox) -> None:
    tokens = sandbox.issue_tokens(HOST)
    with sandbox.client(tokens.access_token) as c:
        assert c.get(f"{REST}/customer/eid:x").status_code == 404
        sandbox.apply_fault({"kind": "expire_tokens"})
        assert error_of(c.get(f"{REST}/customer/eid:x"))["o:errorCode"] == "INVALID_LOGIN"
    other = sandbox.issue_tokens("999").access_token
    with sandbox.client(other) as c:
        assert c.get(f"{REST}/customer/eid:x").status_code == 403


def test_concurrency_429_has_no_retry_after(client: httpx.Client,
                                            sandbox: NetSuiteSandbox) -> None:
    sandbox.faults.arm("rate_limit", 1)
    response = client.get(f"{REST}/customer/eid:x")
    assert response.status_code == 429 and "retry-after" not in response.headers
    assert error_of(response)["o:errorCode"] == "CONCURRENCY_LIMIT_EXCEEDED"
    assert client.get(f"{REST}/customer/eid:x").status_code == 404


def test_write_then_drop_response_commits(client: httpx.Client,
                                          sandbox: NetSuiteSandbox) -> None:
    sandbox.faults.arm("drop_after_write", 1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.put(f"{REST}/customer/eid:c1", json={"companyName": "Acme"})
    assert client.get(f"{REST}/customer/eid:c1").status_code == 200


def test_ledger_report_shape_and_duplicates(client: httpx.Client,
                                            sandbox: NetSuiteSandbox) -> None:
    cid = customer(client)
    client.put(f"{REST}/invoice/eid:i1", json=invoice_body(cid))
    report = sandbox.ledger_report(HOST)
    assert set(report) >= {"platform", "tenant", "documents", "payments", "applications",
                           "customers", "totals", "duplicates"}
    assert report["duplicates"] == {"count": 0, "groups": []}
    assert report["customers"] == [{"id": cid, "name": "Acme Repairs", "active": True,
                                    "balance": "108.25"}]
    sandbox.deactivate_customer(HOST, cid)
    assert sandbox.ledger_report(HOST)["customers"][0]["active"] is False


def test_soap_rejects_missing_passport_with_a_fault(sandbox: NetSuiteSandbox) -> None:
    envelope = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
                b'<soapenv:Header/><soapenv:Body/></soapenv:Envelope>')
    with httpx.Client(transport=SyncASGITransport(sandbox.app),
                      base_url="http://sandbox.local") as c:
        response = c.post(f"/{HOST}/services/NetSuitePort_2023_2", content=envelope,
                          headers={"SOAPAction": '"upsert"', "Content-Type": "text/xml"})
    assert response.status_code == 500
    assert b"invalidSessionFault" in response.content
    assert b"INVALID_LOGIN_ATTEMPT" in response.content
