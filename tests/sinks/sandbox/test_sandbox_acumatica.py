"""The Acumatica sandbox over HTTP: cookie sessions and the licence's session cap,
value-wrapped PUT upserts, 422 entity errors, 412 preconditions, release actions with
202 + Location, PX business errors as 500, closed periods, throttling, lost responses."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from sinks.sandbox.acumatica import COOKIE, ENDPOINT, AcumaticaSandbox
from sinks.sandbox.core import ManualClock
from sinks.transport.session_rest import wrap_values

COMPANY = "Redback"


@pytest.fixture
def sandbox() -> AcumaticaSandbox:
    return AcumaticaSandbox(clock=ManualClock())


@pytest.fixture
def client(sandbox: AcumaticaSandbox) -> httpx.Client:
    cookie = sandbox.login(COMPANY)
    return sandbox.client(headers={"Cookie": f"{COOKIE}={cookie}"})


def customer(client: httpx.Client, key: str = "CC1") -> None:
    response = client.put(f"{ENDPOINT}/Customer", json=wrap_values(
        {"CustomerID": key, "CustomerName": f"Customer {key}"}))
    assert response.status_code == 200, response.text


def invoice(client: httpx.Client, **extra: Any) -> httpx.Response:
    return client.put(f"{ENDPOINT}/Invoice", json=wrap_values({
        "Type": "Invoice", "Customer": "CC1", "Date": "2025-03-14", "CustomerOrder": "inv1",
        "Details": [{"TransactionDescription": "Labour", "Account": "40000", "Qty": 1.5,
                     "UnitPrice": 95.0, "TaxCategory": "TAXABLE"}],
        "TaxDetails": [{"TaxID": "AUSTINTX", "TaxableAmount": 142.5, "TaxAmount": 11.76}],
        **extra}))


def value(record: dict[str, Any], name: str) -> Any:
    return record[name]["value"]


def test_login_sets_a_cookie_and_the_licence_caps_sessions(sandbox: AcumaticaSandbox) -> None:
    with sandbox.client() as anonymous:
        assert anonymous.get(f"{ENDPOINT}/Customer").status_code == 401
        body = {"name": "api-user", "password": "secret", "company": COMPANY}
        first = anonymous.post("/entity/auth/login", json=body)
        assert first.status_code == 204 and COOKIE in first.cookies
        assert anonymous.post("/entity/auth/login", json=body).status_code == 204
        refused = anonymous.post("/entity/auth/login", json=body)
        assert refused.status_code == 429 and refused.json()["message"] == "API Login Limit"
        anonymous.cookies.set(COOKIE, first.cookies[COOKIE])
        assert anonymous.post("/entity/auth/logout").status_code == 204
        assert anonymous.post("/entity/auth/login", json=body).status_code == 204
        wrong = anonymous.post("/entity/auth/login", json={**body, "password": "x"})
        assert wrong.status_code == 500 and wrong.json()["exceptionType"].startswith("PX.")


def test_idle_session_expires(sandbox: AcumaticaSandbox, client: httpx.Client) -> None:
    assert client.get(f"{ENDPOINT}/Customer").status_code == 200
    assert isinstance(sandbox.clock, ManualClock)
    sandbox.clock.advance(1201)
    assert client.get(f"{ENDPOINT}/Customer").status_code == 401


def test_put_upserts_by_key_and_preconditions(client: httpx.Client) -> None:
    customer(client)
    customer(client)
    listed = client.get(f"{ENDPOINT}/Customer").json()
    assert len(listed) == 1 and value(listed[0], "CustomerName") == "Customer CC1"
    again = client.put(f"{ENDPOINT}/Customer", headers={"If-None-Match": "*"},
                       json=wrap_values({"CustomerID": "CC1", "CustomerName": "x"}))
    assert again.status_code == 412
    missing = client.put(f"{ENDPOINT}/Customer", headers={"If-Match": "*"},
                         json=wrap_values({"CustomerID": "NOPE", "CustomerName": "x"}))
    assert missing.status_code == 412


def test_invoice_numbers_filter_and_422_entity_errors(client: httpx.Client) -> None:
    customer(client)
    created = invoice(client)
    assert created.status_code == 200
    doc = created.json()
    assert (value(doc, "ReferenceNbr"), value(doc, "Status"), value(doc, "Amount")) == (
        "AR000001", "Balanced", 154.26)
    found = client.get(f"{ENDPOINT}/Invoice",
                       params={"$filter": "Type eq 'Invoice' and CustomerOrder eq 'inv1'"})
    assert [value(r, "ReferenceNbr") for r in found.json()] == ["AR000001"]
    assert client.get(f"{ENDPOINT}/Invoice", params={"$filter": "CustomerOrder eq 'x'"}
                      ).json() == []
    bad = invoice(client, Customer="NOBODY", Details=[{"Account": "99999", "Qty": 1,
                                                       "UnitPrice": 1}])
    assert bad.status_code == 422
    body = bad.json()
    assert "cannot be found" in body["Customer"]["error"]
    assert "Account '99999'" in body["Details"][0]["Account"]["error"]
    assert body["error"]


def test_release_answers_202_with_a_location_to_poll(client: httpx.Client) -> None:
    customer(client)
    invoice(client)
    action = client.post(f"{ENDPOINT}/Invoice/ReleaseInvoice", json={"entity": wrap_values(
        {"Type": "Invoice", "ReferenceNbr": "AR000001"})})
    assert action.status_code == 202
    location = action.headers["Location"]
    assert client.get(location).status_code == 202
    assert client.get(location).status_code == 204
    doc = client.get(f"{ENDPOINT}/Invoice/Invoice/AR000001").json()
    assert value(doc, "Status") == "Open"
    edit = invoice(client, ReferenceNbr="AR000001")
    assert edit.status_code == 500 and edit.json()["exceptionType"] == "PX.Data.PXException"
    delete = client.delete(f"{ENDPOINT}/Invoice/Invoice/AR000001")
    assert delete.status_code == 500 and "released" in delete.json()["exceptionMessage"]


def test_payment_release_applies_and_over_application_is_a_px_error(
        sandbox: AcumaticaSandbox, client: httpx.Client) -> None:
    customer(client)
    invoice(client)
    client.post(f"{ENDPOINT}/Invoice/ReleaseInvoice", json={"entity": wrap_values(
        {"Type": "Invoice", "ReferenceNbr": "AR000001"})})
    payment = client.put(f"{ENDPOINT}/Payment", json=wrap_values({
        "Type": "Payment", "CustomerID": "CC1", "PaymentMethod": "CASH", "CashAccount": "10200",
        "PaymentAmount": 200.0, "ApplicationDate": "2025-03-15", "ExternalRef": "pay1",
        "DocumentsToApply": [{"DocType": "Invoice", "ReferenceNbr": "AR000001",
                              "AmountPaid": 200.0}]}))
    assert payment.status_code == 200
    release = client.post(f"{ENDPOINT}/Payment/ReleasePayment", json={"entity": wrap_values(
        {"Type": "Payment", "ReferenceNbr": "PMT000001"})})
    assert release.status_code == 500 and "exceeds" in release.json()["exceptionMessage"]
    assert sandbox.company(COMPANY).invoices[("Invoice", "AR000001")]["Balance"] == 154.26


def test_closed_period_is_a_field_error(sandbox: AcumaticaSandbox, client: httpx.Client
                                        ) -> None:
    customer(client)
    sandbox.lock_period(COMPANY, date(2025, 3, 31))
    closed = invoice(client)
    assert closed.status_code == 422
    assert "financial period is closed" in closed.json()["Date"]["error"]


def test_throttle_has_retry_after(sandbox: AcumaticaSandbox) -> None:
    small = AcumaticaSandbox(clock=sandbox.clock, per_minute=1)
    cookie = small.login(COMPANY)
    with small.client(headers={"Cookie": f"{COOKIE}={cookie}"}) as client:
        assert client.get(f"{ENDPOINT}/Customer").status_code == 200
        throttled = client.get(f"{ENDPOINT}/Customer")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "60"


def test_drop_after_write_commits_and_report_has_shared_shape(
        sandbox: AcumaticaSandbox, client: httpx.Client) -> None:
    customer(client)
    sandbox.faults.arm("drop_after_write", 1, COMPANY)
    with pytest.raises(httpx.RemoteProtocolError):
        invoice(client)
    report = client.get(f"/__sandbox/ledger/{COMPANY}").json()
    assert set(report) == {"platform", "tenant", "documents", "payments", "applications",
                           "customers", "totals", "duplicates"}
    assert [d["reference"] for d in report["documents"]] == ["inv1"]
    invoice(client)  # a blind retry without lookup would duplicate: the report shows it
    assert sandbox.ledger_report(COMPANY)["duplicates"]["count"] == 1
