"""Xero sandbox: customer overpayments (RECEIVE-OVERPAYMENT bank transactions), their
refunds (payments against the overpayment), allocations, and the ledger report."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from sinks.sandbox.xero import XeroSandbox
from tests.sinks.sandbox.conftest import TENANT
from tests.sinks.sandbox.test_sandbox_xero import API, contact, invoice, pay, put_invoice

XERO_YAML = Path("/work/shared/specs/xero/xero_accounting.yaml")
XERO_EXTRAS = {"DateString", "DueDateString"}  # sent by Xero, absent from the OpenAPI file


@cache
def _spec() -> dict[str, Any]:
    return dict(yaml.safe_load(XERO_YAML.read_text()))


def conforms(payload: dict[str, Any], wrapper: str, item: str) -> None:
    """``payload`` validates against the OpenAPI component ``wrapper`` and its elements
    declare no key the ``item`` schema lacks."""
    if not XERO_YAML.exists():
        pytest.skip("Xero OpenAPI file absent")
    spec = _spec()
    root = {"$ref": f"#/components/schemas/{wrapper}", "components": spec["components"]}
    jsonschema.Draft4Validator(root).validate(payload)
    declared = set(spec["components"]["schemas"][item]["properties"])
    for record in payload[wrapper]:
        assert set(record) - declared - XERO_EXTRAS == set(), (item, record)


def overpayment(contact_id: str, amount: float, reference: str = "PAY-1 overpayment",
                **extra: Any) -> dict[str, Any]:
    return {"Type": "RECEIVE-OVERPAYMENT", "Contact": {"ContactID": contact_id},
            "BankAccount": {"Code": "090"}, "Date": "2025-01-12", "Reference": reference,
            "CurrencyCode": "USD", "LineAmountTypes": "NoTax",
            "LineItems": [{"Description": "Overpayment", "LineAmount": amount}], **extra}


def receive(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.put(f"{API}/BankTransactions", json={"BankTransactions": [body]})


def refund(client: httpx.Client, overpayment_id: str, amount: float,
           reference: str = "REF-1") -> httpx.Response:
    return client.put(f"{API}/Payments", json={"Payments": [{
        "Overpayment": {"OverpaymentID": overpayment_id}, "Account": {"Code": "090"},
        "Date": "2025-01-20", "Amount": amount, "Reference": reference}]})


def balance(xero: XeroSandbox, contact_id: str) -> Decimal:
    report = xero.ledger_report(TENANT)
    return Decimal(next(c["balance"] for c in report["customers"] if c["id"] == contact_id))


def test_receive_overpayment_creates_customer_credit(xero: XeroSandbox,
                                                     xclient: httpx.Client) -> None:
    cid = contact(xclient)
    response = receive(xclient, overpayment(cid, 60.0))
    assert response.status_code == 200, response.text
    conforms(response.json(), "BankTransactions", "BankTransaction")
    created = response.json()["BankTransactions"][0]
    assert (created["Type"], created["Status"], created["Total"]) == (
        "RECEIVE-OVERPAYMENT", "AUTHORISED", 60.0)
    over = xclient.get(f"{API}/Overpayments/{created['OverpaymentID']}").json()
    conforms(over, "Overpayments", "Overpayment")
    assert over["Overpayments"][0]["RemainingCredit"] == 60.0
    found = xclient.get(f"{API}/Overpayments", params={
        "where": f'Reference=="PAY-1 overpayment" AND Contact.ContactID==guid("{cid}")'}).json()
    assert [o["OverpaymentID"] for o in found["Overpayments"]] == [created["OverpaymentID"]]
    assert balance(xero, cid) == Decimal("-60.00")


def test_overpayment_rules(xclient: httpx.Client) -> None:
    cid = contact(xclient)
    for body, message in (
            (overpayment(cid, 10.0, Type="SPEND-OVERPAYMENT"), "not supported"),
            (overpayment(cid, 10.0, Type="BOGUS"), "not a valid bank transaction type"),
            (overpayment(cid, 10.0, BankAccount={"Code": "200"}), "type BANK"),
            (overpayment(cid, 0.0), "greater than zero"),
            (overpayment(cid, 10.0, LineItems=[{"LineAmount": 10, "AccountCode": "200"}]),
             "account code")):
        response = receive(xclient, body)
        assert response.status_code == 400, body
        assert message in response.text, response.text


def test_refund_of_an_overpayment_draws_its_credit(xero: XeroSandbox,
                                                   xclient: httpx.Client) -> None:
    cid = contact(xclient)
    over_id = receive(xclient, overpayment(cid, 60.0)).json()["BankTransactions"][0][
        "OverpaymentID"]
    too_much = refund(xclient, over_id, 60.01)
    assert too_much.status_code == 400
    assert "exceeds the amount outstanding" in too_much.text
    response = refund(xclient, over_id, 25.0)
    assert response.status_code == 200, response.text
    conforms(response.json(), "Payments", "Payment")
    paid = response.json()["Payments"][0]
    assert paid["PaymentType"] == "AROVERPAYMENTPAYMENT"
    assert paid["Overpayment"] == {"OverpaymentID": over_id}
    over = xclient.get(f"{API}/Overpayments/{over_id}").json()["Overpayments"][0]
    assert (over["RemainingCredit"], over["Status"]) == (35.0, "AUTHORISED")
    assert [p["Amount"] for p in over["Payments"]] == [25.0]
    assert balance(xero, cid) == Decimal("-35.00")
    assert refund(xclient, over_id, 35.0).status_code == 200
    over = xclient.get(f"{API}/Overpayments/{over_id}").json()["Overpayments"][0]
    assert (over["RemainingCredit"], over["Status"]) == (0.0, "PAID")
    assert balance(xero, cid) == Decimal("0.00")
    # deleting the refund gives the credit back
    xclient.post(f"{API}/Payments/{paid['PaymentID']}", json={"Payments": [{
        "Status": "DELETED"}]})
    assert balance(xero, cid) == Decimal("-25.00")


def test_overpayment_allocated_to_an_invoice(xero: XeroSandbox, xclient: httpx.Client) -> None:
    cid = contact(xclient)
    inv = put_invoice(xclient, invoice(cid, amount=100.0)).json()["Invoices"][0]
    over_id = receive(xclient, overpayment(cid, 30.0)).json()["BankTransactions"][0][
        "OverpaymentID"]
    response = xclient.put(f"{API}/Overpayments/{over_id}/Allocations", json={"Allocations": [
        {"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Amount": 30.0, "Date": "2025-01-15"}]})
    assert response.status_code == 200, response.text
    conforms(response.json(), "Allocations", "Allocation")
    read = xclient.get(f"{API}/Invoices/{inv['InvoiceID']}").json()["Invoices"][0]
    assert (read["AmountCredited"], read["AmountDue"]) == (30.0, 85.0)
    over = xclient.get(f"{API}/Overpayments/{over_id}").json()["Overpayments"][0]
    assert (over["RemainingCredit"], over["Status"]) == (0.0, "PAID")
    assert balance(xero, cid) == Decimal("85.00")


def test_void_after_payment_with_the_money_kept_then_refunded(
        xero: XeroSandbox, xclient: httpx.Client) -> None:
    """Xero's way: the payment must go before the invoice can be voided; the money
    becomes the customer's overpayment, which a refund then pays back."""
    cid = contact(xclient)
    inv = put_invoice(xclient, invoice(cid, amount=100.0)).json()["Invoices"][0]
    payment = pay(xclient, inv["InvoiceID"], 115.0).json()["Payments"][0]
    void = {"Invoices": [{"InvoiceID": inv["InvoiceID"], "Status": "VOIDED"}]}
    refused = xclient.post(f"{API}/Invoices/{inv['InvoiceID']}", json=void)
    assert refused.status_code == 400
    over_id = receive(xclient, overpayment(cid, 115.0)).json()["BankTransactions"][0][
        "OverpaymentID"]
    assert xclient.post(f"{API}/Payments/{payment['PaymentID']}", json={"Payments": [{
        "Status": "DELETED"}]}).status_code == 200
    assert xclient.post(f"{API}/Invoices/{inv['InvoiceID']}", json=void).status_code == 200
    assert balance(xero, cid) == Decimal("-115.00")
    assert refund(xclient, over_id, 115.0).status_code == 200
    assert balance(xero, cid) == Decimal("0.00")


def test_unused_overpayment_can_be_deleted_a_used_one_cannot(
        xero: XeroSandbox, xclient: httpx.Client) -> None:
    cid = contact(xclient)
    first = receive(xclient, overpayment(cid, 20.0, "A")).json()["BankTransactions"][0]
    second = receive(xclient, overpayment(cid, 20.0, "B")).json()["BankTransactions"][0]
    assert refund(xclient, second["OverpaymentID"], 5.0).status_code == 200
    delete = {"BankTransactions": [{"Status": "DELETED"}]}
    refused = xclient.post(f"{API}/BankTransactions/{second['BankTransactionID']}", json=delete)
    assert refused.status_code == 400 and "allocated or refunded" in refused.text
    edit = xclient.post(f"{API}/BankTransactions/{first['BankTransactionID']}",
                        json={"BankTransactions": [{"Reference": "changed"}]})
    assert edit.status_code == 400
    done = xclient.post(f"{API}/BankTransactions/{first['BankTransactionID']}", json=delete)
    assert done.status_code == 200, done.text
    over = xclient.get(f"{API}/Overpayments/{first['OverpaymentID']}").json()["Overpayments"][0]
    assert over["Status"] == "VOIDED"
    assert balance(xero, cid) == Decimal("-15.00")
