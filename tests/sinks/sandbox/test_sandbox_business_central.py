"""Business Central sandbox behaviours, over HTTP with an in-process client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from sinks.sandbox.business_central import BusinessCentralSandbox
from sinks.sandbox.core import ManualClock

COMPANY = "5d1e2f3a-0000-4000-8000-00000000c0b2"
JOURNAL = "7e0b1c2d-0000-4000-8000-0000000000b1"
ROOT = f"/v2.0/contoso/production/api/v2.0/companies({COMPANY})"


@pytest.fixture
def sb() -> BusinessCentralSandbox:
    sandbox = BusinessCentralSandbox(clock=ManualClock(), per_five_minutes=50)
    sandbox.configure(COMPANY, tax_rates={"TAXABLE": Decimal("0.0825"),
                                          "NONTAXABLE": Decimal(0)},
                      accounts={"40100", "40200"}, journals={JOURNAL})
    return sandbox


@pytest.fixture
def bc(sb: BusinessCentralSandbox) -> Iterator[httpx.Client]:
    with sb.client(sb.issue_tokens().access_token) as client:
        yield client


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def customer(bc: httpx.Client, number: str = "C1", **extra: Any) -> dict[str, Any]:
    response = bc.post(f"{ROOT}/customers", json={"number": number, "displayName": "Zoë",
                                                  **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def invoice(bc: httpx.Client, customer_id: str, number: str = "INV-1",
            day: str = "2025-03-14") -> dict[str, Any]:
    response = bc.post(f"{ROOT}/salesInvoices", json={
        "externalDocumentNumber": number, "invoiceDate": day, "postingDate": day,
        "customerId": customer_id, "salesInvoiceLines": [
            {"lineType": "Account", "lineObjectNumber": "40100", "description": "Labor",
             "quantity": 1.5, "unitPrice": 95, "taxCode": "NONTAXABLE"},
            {"lineType": "Account", "lineObjectNumber": "40200", "description": "Pump",
             "quantity": 1, "unitPrice": 89.99, "taxCode": "TAXABLE"}]})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_client_credentials_token_endpoint(sb: BusinessCentralSandbox) -> None:
    with sb.client() as anon:
        form = {"grant_type": "client_credentials", "client_id": "ledgerstream",
                "client_secret": "s3cret",
                "scope": "https://api.businesscentral.dynamics.com/.default"}
        ok = anon.post("/contoso/oauth2/v2.0/token", data=form)
        assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer"
        assert "refresh_token" not in ok.json()
        bad = anon.post("/contoso/oauth2/v2.0/token", data={**form, "client_secret": "x"})
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
        scope = anon.post("/contoso/oauth2/v2.0/token", data={**form, "scope": "x"})
        assert scope.json()["error"] == "invalid_scope"
        token = ok.json()["access_token"]
        assert anon.get(f"{ROOT}/customers",
                        headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_missing_and_expired_tokens_are_401(sb: BusinessCentralSandbox,
                                            bc: httpx.Client) -> None:
    with sb.client() as anon:
        assert error(anon.get(f"{ROOT}/customers")) == (401,
                                                       "Authentication_InvalidCredentials")
    sb.tokens.expire_access_tokens()
    response = bc.get(f"{ROOT}/customers")
    assert error(response) == (401, "Authentication_InvalidCredentials")
    assert "expired" in response.json()["error"]["message"]
    assert "www-authenticate" in response.headers


def test_duplicate_customer_number_is_rejected(bc: httpx.Client) -> None:
    customer(bc)
    again = bc.post(f"{ROOT}/customers", json={"number": "C1", "displayName": "Other"})
    assert error(again) == (400, "Internal_EntityWithSameKeyExists")


def test_etag_rules(bc: httpx.Client) -> None:
    record = customer(bc)
    path = f"{ROOT}/customers({record['id']})"
    assert error(bc.patch(path, json={"displayName": "A"})) == (400, "Request_IfMatchMissing")
    assert error(bc.patch(path, json={"displayName": "A"}, headers={"If-Match": 'W/"old"'})
                 ) == (412, "Request_EntityChanged")
    ok = bc.patch(path, json={"displayName": "A"}, headers={"If-Match": record["@odata.etag"]})
    assert ok.status_code == 200 and ok.json()["@odata.etag"] != record["@odata.etag"]
    assert ok.headers["etag"] == ok.json()["@odata.etag"]
    stale = bc.patch(path, json={"displayName": "B"}, headers={"If-Match": record["@odata.etag"]})
    assert error(stale) == (412, "Request_EntityChanged")


def test_deep_insert_totals_filter_and_expand(bc: httpx.Client) -> None:
    doc = invoice(bc, customer(bc)["id"])
    assert doc["status"] == "Draft"
    assert (doc["totalAmountExcludingTax"], doc["totalTaxAmount"],
            doc["totalAmountIncludingTax"]) == (232.49, 7.42, 239.91)
    found = bc.get(f"{ROOT}/salesInvoices", params={
        "$filter": "externalDocumentNumber eq 'INV-1'", "$expand": "salesInvoiceLines"})
    [only] = found.json()["value"]
    assert only["id"] == doc["id"] and len(only["salesInvoiceLines"]) == 2
    none = bc.get(f"{ROOT}/salesInvoices", params={"$filter": "externalDocumentNumber eq 'X'"})
    assert none.json()["value"] == []
    bad = bc.get(f"{ROOT}/salesInvoices", params={"$filter": "contains(number,'1')"})
    assert error(bad) == (400, "BadRequest")


def test_validation_faults_in_bc_shape(bc: httpx.Client) -> None:
    cid = customer(bc)["id"]
    long_ref = bc.post(f"{ROOT}/salesInvoices", json={"customerId": cid,
                                                      "externalDocumentNumber": "X" * 36})
    assert error(long_ref) == (400, "Application_StringExceededLength")
    unknown = bc.post(f"{ROOT}/salesInvoices", json={"customerId": cid, "salesInvoiceLines": [
        {"lineType": "Account", "lineObjectNumber": "49999", "quantity": 1, "unitPrice": 1}]})
    assert error(unknown) == (400, "Internal_RecordNotFound")
    assert "G/L Account" in unknown.json()["error"]["message"]
    tax = bc.post(f"{ROOT}/salesInvoices", json={"customerId": cid, "salesInvoiceLines": [
        {"lineType": "Account", "lineObjectNumber": "40100", "quantity": 1, "unitPrice": 1,
         "taxCode": "NOPE"}]})
    assert "Tax Group" in tax.json()["error"]["message"]
    no_customer = bc.post(f"{ROOT}/salesInvoices", json={"customerId": COMPANY})
    assert error(no_customer) == (400, "Internal_RecordNotFound")


def test_post_renumbers_and_locks_the_document(bc: httpx.Client) -> None:
    doc = invoice(bc, customer(bc)["id"])
    path = f"{ROOT}/salesInvoices({doc['id']})"
    assert bc.post(f"{path}/Microsoft.NAV.post").status_code == 204
    posted = bc.get(path).json()
    assert posted["status"] == "Open" and posted["number"] == "P" + doc["number"]
    assert error(bc.post(f"{path}/Microsoft.NAV.post"))[0] == 400
    edit = bc.patch(path, json={"externalDocumentNumber": "Z"},
                    headers={"If-Match": posted["@odata.etag"]})
    assert error(edit) == (400, "Application_DialogException")
    assert error(bc.delete(path, headers={"If-Match": "*"}))[0] == 400


def test_closed_period_refuses_posting(sb: BusinessCentralSandbox, bc: httpx.Client) -> None:
    doc = invoice(bc, customer(bc)["id"])
    sb.lock_period(COMPANY, date(2025, 3, 31))
    response = bc.post(f"{ROOT}/salesInvoices({doc['id']})/Microsoft.NAV.post")
    assert error(response) == (400, "Application_DialogException")
    assert "allowed posting dates" in response.json()["error"]["message"]
    sb.lock_period(COMPANY, None)
    assert bc.post(f"{ROOT}/salesInvoices({doc['id']})/Microsoft.NAV.post").status_code == 204


def test_blocked_customer_cannot_be_invoiced(sb: BusinessCentralSandbox,
                                             bc: httpx.Client) -> None:
    cid = customer(bc)["id"]
    sb.deactivate_customer(COMPANY, cid)
    response = bc.post(f"{ROOT}/salesInvoices", json={"customerId": cid})
    assert error(response) == (400, "Application_DialogException")
    assert "blocked" in response.json()["error"]["message"]


def test_cancel_makes_corrective_memo_and_refuses_paid(sb: BusinessCentralSandbox,
                                                       bc: httpx.Client) -> None:
    cid = customer(bc)["id"]
    first, second = invoice(bc, cid, "INV-1"), invoice(bc, cid, "INV-2")
    for doc in (first, second):
        bc.post(f"{ROOT}/salesInvoices({doc['id']})/Microsoft.NAV.post")
    assert bc.post(f"{ROOT}/salesInvoices({first['id']})/Microsoft.NAV.cancel"
                   ).status_code == 204
    assert bc.get(f"{ROOT}/salesInvoices({first['id']})").json()["status"] == "Canceled"
    [memo] = bc.get(f"{ROOT}/salesCreditMemos").json()["value"]
    assert memo["status"] == "Corrective" and memo["invoiceId"] == first["id"]
    pay = bc.post(f"{ROOT}/customerPaymentJournals({JOURNAL})/customerPayments", json={
        "customerId": cid, "amount": 10, "appliesToInvoiceId": second["id"],
        "documentNumber": "P1", "externalDocumentNumber": "P1", "postingDate": "2025-03-15"})
    assert pay.status_code == 201
    assert sb.post_payment_journal(COMPANY) == 1
    refused = bc.post(f"{ROOT}/salesInvoices({second['id']})/Microsoft.NAV.cancel")
    assert error(refused) == (400, "Application_DialogException")
    assert "paid" in refused.json()["error"]["message"]


def test_payment_journal_lines_touch_balances_only_when_posted(
        sb: BusinessCentralSandbox, bc: httpx.Client) -> None:
    cid = customer(bc)["id"]
    doc = invoice(bc, cid)
    bc.post(f"{ROOT}/salesInvoices({doc['id']})/Microsoft.NAV.post")
    lines = f"{ROOT}/customerPaymentJournals({JOURNAL})/customerPayments"
    bc.post(lines, json={"customerId": cid, "amount": 100, "appliesToInvoiceId": doc["id"],
                         "documentNumber": "P1", "externalDocumentNumber": "P1"})
    assert bc.get(f"{ROOT}/salesInvoices({doc['id']})").json()["remainingAmount"] == 239.91
    report = sb.ledger_report(COMPANY)
    assert report["payments"][0]["status"] == "Unposted"
    sb.post_payment_journal(COMPANY)
    assert bc.get(f"{ROOT}/salesInvoices({doc['id']})").json()["remainingAmount"] == 139.91
    assert bc.get(lines).json()["value"] == []
    entries = bc.get(f"{ROOT}/generalLedgerEntries", params={
        "$filter": "documentNumber eq 'P1' and documentType eq 'Payment'"}).json()["value"]
    assert len(entries) == 1 and entries[0]["creditAmount"] == 100
    unknown_journal = bc.get(f"{ROOT}/customerPaymentJournals({COMPANY})/customerPayments")
    assert error(unknown_journal) == (404, "BadRequest_NotFound")


def test_batch_atomicity_group_rolls_back(sb: BusinessCentralSandbox,
                                          bc: httpx.Client) -> None:
    cid = customer(bc)["id"]
    url = f"companies({COMPANY})/customerPaymentJournals({JOURNAL})/customerPayments"
    ok = {"customerId": cid, "amount": 5, "documentNumber": "P1"}
    body = {"requests": [
        {"id": "1", "method": "POST", "url": url, "body": ok, "atomicityGroup": "g"},
        {"id": "2", "method": "POST", "url": url, "atomicityGroup": "g",
         "body": {**ok, "customerId": COMPANY}}]}
    response = bc.post("/v2.0/contoso/production/api/v2.0/$batch", json=body)
    assert response.status_code == 200
    statuses = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert statuses == {"1": 424, "2": 400}
    assert sb.company(COMPANY).journal_lines == {}
    body["requests"][1]["body"] = ok
    response = bc.post("/v2.0/contoso/production/api/v2.0/$batch", json=body)
    assert {r["status"] for r in response.json()["responses"]} == {201}
    assert len(sb.ledger_report(COMPANY)["payments"]) == 1  # one payment of two lines
    too_many = {"requests": [{"id": str(i), "method": "GET", "url": url} for i in range(101)]}
    assert error(bc.post("/v2.0/contoso/production/api/v2.0/$batch", json=too_many)) == (
        400, "BadRequest")


def test_throttling_429_with_retry_after(sb: BusinessCentralSandbox,
                                         bc: httpx.Client) -> None:
    for _ in range(50):
        assert bc.get(f"{ROOT}/customers").status_code == 200
    response = bc.get(f"{ROOT}/customers")
    assert error(response) == (429, "Application_TooManyRequests")
    assert response.headers["retry-after"] == "300"
    assert isinstance(sb.clock, ManualClock)
    sb.clock.advance(301)
    assert bc.get(f"{ROOT}/customers").status_code == 200


def test_drop_after_write_commits_and_a_resend_duplicates(sb: BusinessCentralSandbox,
                                                         bc: httpx.Client) -> None:
    cid = customer(bc)["id"]
    sb.faults.arm("drop_after_write", 1, COMPANY)
    with pytest.raises(httpx.RemoteProtocolError):
        invoice(bc, cid)
    invoice(bc, cid)  # BC has no idempotency key: a blind re-send is a second invoice
    report = sb.ledger_report(COMPANY)
    assert report["duplicates"]["count"] == 1
    assert report["duplicates"]["groups"][0]["key"] == "INV-1"


def test_server_error_fault_in_bc_shape(sb: BusinessCentralSandbox, bc: httpx.Client) -> None:
    sb.faults.arm("server_error", 1, COMPANY, status=503)
    assert error(bc.get(f"{ROOT}/customers")) == (503, "Internal_ServiceUnavailable")


def test_ledger_report_has_the_shared_shape(sb: BusinessCentralSandbox,
                                            bc: httpx.Client) -> None:
    doc = invoice(bc, customer(bc)["id"])
    bc.post(f"{ROOT}/salesInvoices({doc['id']})/Microsoft.NAV.post")
    report = sb.ledger_report(COMPANY)
    assert set(report) == {"platform", "tenant", "documents", "payments", "applications",
                           "customers", "totals", "duplicates"}
    assert report["platform"] == "business-central"
    assert report["customers"][0]["balance"] == "239.91"
    assert report["documents"][0]["reference"] == "INV-1"
    with sb.client() as admin:
        over_http = admin.get(f"/__sandbox/ledger/{COMPANY}").json()
    assert over_http == report
