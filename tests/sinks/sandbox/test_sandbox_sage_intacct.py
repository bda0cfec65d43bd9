"""The Sage Intacct sandbox over HTTP: credentials in the body, errors inside HTTP 200,
controlid uniqueness, duplicate numbers, closed periods, throttling, lost responses,
and the ledger report's shape."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from sinks.sandbox.core import ManualClock, SyncASGITransport
from sinks.sandbox.sage_intacct import GATEWAY, IntacctSandbox
from sinks.transport.xmlapi import (
    date_element,
    element,
    envelope,
    login_envelope,
    parse_response,
    serialize,
    stamp,
)

CO = "ACME"


@pytest.fixture
def sandbox() -> IntacctSandbox:
    sb = IntacctSandbox(clock=ManualClock())
    sb.company(CO)
    return sb


def raw_client(sandbox: IntacctSandbox) -> httpx.Client:
    return httpx.Client(transport=SyncASGITransport(sandbox.app), base_url="http://sb")


def customer(cid: str = "c1") -> object:
    return element("create_customer", children=[element("customerid", cid),
                                                element("name", "Alex")])


def invoice(number: str = "INV-1", when: date = date(2026, 1, 5), amount: str = "100.00"
            ) -> object:
    return element("create_invoice", children=[
        element("customerid", "c1"), date_element("datecreated", when),
        element("invoiceno", number), element("invoiceitems", children=[
            element("lineitem", children=[element("glaccountno", "4000"),
                                          element("amount", amount)])])])


def post(client: httpx.Client, function: object, control_id: str, *, unique: bool = True,
         session: str | None = None, password: str = "sender-secret") -> httpx.Response:
    body = serialize(envelope(function, sender_id="ledgerstream", control_id=control_id,
                              unique=unique))
    return client.post(GATEWAY, content=stamp(body, sender_password=password,
                                               session_id=session))


@pytest.fixture
def session(sandbox: IntacctSandbox) -> str:
    return sandbox.issue_tokens(CO).access_token


def test_login_returns_a_session_in_the_body(sandbox: IntacctSandbox) -> None:
    root = login_envelope(sender_id="ledgerstream", sender_password="sender-secret",
                          user_id="u", company_id=CO, user_password="user-secret",
                          control_id="l1")
    response = raw_client(sandbox).post(GATEWAY, content=serialize(root))
    parsed = parse_response(response.content)
    assert response.status_code == 200 and parsed is not None and parsed.ok
    data = parsed.result().data
    assert data is not None and data.findtext("api/sessionid")


def test_wrong_sender_password_is_a_control_failure(sandbox: IntacctSandbox,
                                                    session: str) -> None:
    response = post(raw_client(sandbox), customer(), "k1", session=session, password="nope")
    parsed = parse_response(response.content)
    assert response.status_code == 200 and parsed is not None
    assert parsed.control_status == "failure"


def test_expired_session_fails_inside_http_200(sandbox: IntacctSandbox, session: str) -> None:
    sandbox.clock.advance(IntacctSandbox.SESSION_LIFETIME + 1)  # type: ignore[attr-defined]
    response = post(raw_client(sandbox), customer(), "k1", session=session)
    parsed = parse_response(response.content)
    assert response.status_code == 200 and parsed is not None
    assert parsed.auth_status == "failure" and parsed.errors[0].errorno == "XL03000006"


def test_reused_controlid_is_rejected_without_a_key(sandbox: IntacctSandbox,
                                                    session: str) -> None:
    client = raw_client(sandbox)
    assert parse_response(post(client, customer(), "k1", session=session).content).ok  # type: ignore[union-attr]
    again = parse_response(post(client, customer("c2"), "k1", session=session).content)
    assert again is not None and again.control_status == "failure"
    assert again.errors[0].errorno == "XL03000009" and not again.results
    assert list(sandbox.company(CO).customers) == ["c1"]
    # not unique: a read may reuse its id
    read = element("readByQuery", children=[element("object", "CUSTOMER"),
                                            element("query", "CUSTOMERID = 'c1'")])
    for _ in range(2):
        parsed = parse_response(post(client, read, "r1", unique=False, session=session).content)
        assert parsed is not None and parsed.result().records()[0]["CUSTOMERID"] == "c1"


def test_controlid_window_expires(sandbox: IntacctSandbox, session: str) -> None:
    client = raw_client(sandbox)
    post(client, customer(), "k1", session=session)
    sandbox.clock.advance(IntacctSandbox.CONTROL_ID_WINDOW + 1)  # type: ignore[attr-defined]
    fresh = sandbox.issue_tokens(CO).access_token
    parsed = parse_response(post(client, customer(), "k1", session=fresh).content)
    assert parsed is not None and parsed.errors[0].errorno == "BL01001973"  # id exists


def test_duplicate_invoice_number_and_closed_period(sandbox: IntacctSandbox,
                                                    session: str) -> None:
    client = raw_client(sandbox)
    post(client, customer(), "k0", session=session)
    assert parse_response(post(client, invoice(), "k1", session=session).content).ok  # type: ignore[union-attr]
    dup = parse_response(post(client, invoice(), "k2", session=session).content)
    assert dup is not None and dup.errors[0].errorno == "BL01001973"
    sandbox.lock_period(CO, date(2026, 1, 31))
    closed = parse_response(post(client, invoice("INV-2"), "k3", session=session).content)
    assert closed is not None and closed.errors[0].errorno == "BL34000061"


def test_inactive_customer_and_paid_invoice_reversal(sandbox: IntacctSandbox,
                                                     session: str) -> None:
    client = raw_client(sandbox)
    post(client, customer(), "k0", session=session)
    key = parse_response(post(client, invoice(), "k1", session=session).content)
    assert key is not None
    pay = element("create_arpayment", children=[
        element("customerid", "c1"), element("paymentamount", "10.00"),
        element("arpaymentitem", children=[element("invoicekey", key.result().key),
                                           element("amount", "10.00")])])
    assert parse_response(post(client, pay, "k2", session=session).content).ok  # type: ignore[union-attr]
    reverse = element("reverse_invoice", children=[
        date_element("datereversed", date(2026, 2, 1))], key=key.result().key or "")
    refused = parse_response(post(client, reverse, "k3", session=session).content)
    assert refused is not None and refused.errors[0].errorno == "BL03002147"
    sandbox.deactivate_customer(CO, "c1")
    inactive = parse_response(post(client, invoice("INV-9"), "k4", session=session).content)
    assert inactive is not None and inactive.errors[0].errorno == "BL03000130"


def test_throttle_answers_429_with_retry_after(sandbox: IntacctSandbox, session: str) -> None:
    sandbox.faults.arm("rate_limit", 1, CO)
    response = post(raw_client(sandbox), customer(), "k1", session=session)
    assert response.status_code == 429 and response.headers["retry-after"]
    assert parse_response(response.content).errors[0].errorno == "XL03000130"  # type: ignore[union-attr]


def test_drop_after_write_commits_then_loses_the_response(sandbox: IntacctSandbox,
                                                          session: str) -> None:
    sandbox.faults.arm("drop_after_write", 1, CO)
    with pytest.raises(httpx.RemoteProtocolError):
        post(raw_client(sandbox), customer(), "k1", session=session)
    assert "c1" in sandbox.company(CO).customers


def test_ledger_report_shape_and_duplicates(sandbox: IntacctSandbox, session: str) -> None:
    client = raw_client(sandbox)
    post(client, customer(), "k0", session=session)
    post(client, invoice(), "k1", session=session)
    report = sandbox.ledger_report(CO)
    assert set(report) >= {"documents", "payments", "applications", "customers",
                           "duplicates", "totals"}
    assert report["documents"][0]["total"] == "100.00"
    assert report["duplicates"] == {"count": 0, "groups": []}
    assert report["customers"][0]["balance"] == "100.00"


def test_client_helper_stamps_session(sandbox: IntacctSandbox, session: str) -> None:
    body = serialize(envelope(customer(), sender_id="ledgerstream", control_id="k",
                              unique=True))
    response = sandbox.client(session).post(GATEWAY, content=body)
    assert parse_response(response.content).ok  # type: ignore[union-attr]
