"""The sandboxes' responses use the vendors' own field names.

QBO entities are walked against the Intuit v3 XSD types (every key the sandbox
emits must be an element or attribute of that type, recursively); Xero
responses are validated against the OpenAPI component schemas and every
emitted key must be a declared property. This keeps the simulators from
drifting into invented fields that a sink would then come to rely on.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import xmlschema
import yaml

from sinks.sandbox.quickbooks import QuickBooksSandbox
from sinks.sandbox.xero import XeroSandbox
from tests.sinks.sandbox.conftest import REALM

SPECS = Path("/work/shared/specs")
QBO_XSD = SPECS / "quickbooks-online" / "IntuitRestServiceDef.xsd"
XERO_YAML = SPECS / "xero" / "xero_accounting.yaml"
XERO_EXTRAS = {"DateString", "DueDateString"}  # sent by Xero, absent from the OpenAPI file

pytestmark = pytest.mark.skipif(not QBO_XSD.exists() or not XERO_YAML.exists(),
                                reason="vendor specs not present")


@cache
def qbo_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(QBO_XSD))


@cache
def xero_spec() -> dict[str, Any]:
    return dict(yaml.safe_load(XERO_YAML.read_text()))


def unknown_qbo_keys(value: Any, xsd_type: Any, path: str) -> list[str]:
    """Keys in ``value`` that are neither elements nor attributes of ``xsd_type``."""
    if isinstance(value, list):
        return [k for item in value for k in unknown_qbo_keys(item, xsd_type, path)]
    if not isinstance(value, dict) or xsd_type.is_simple():
        return []
    attributes = set(xsd_type.attributes)
    elements = {e.local_name: e for e in xsd_type.content.iter_elements()} \
        if xsd_type.has_complex_content() else {}
    found = []
    for key, item in value.items():
        if key in attributes or (key == "value" and xsd_type.has_simple_content()):
            continue
        if key not in elements:
            found.append(f"{path}.{key}")
            continue
        found.extend(unknown_qbo_keys(item, elements[key].type, f"{path}.{key}"))
    return found


def test_qbo_entities_use_xsd_names(qbo: QuickBooksSandbox, qclient: httpx.Client) -> None:
    base = f"/v3/company/{REALM}"
    cust = qclient.post(f"{base}/customer", json={"DisplayName": "Shape"}).json()["Customer"]
    line = {"DetailType": "SalesItemLineDetail", "Amount": 50, "Description": "x",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 50,
                                    "TaxCodeRef": {"value": "TAX"}}}
    inv = qclient.post(f"{base}/invoice", json={
        "CustomerRef": {"value": cust["Id"]}, "DocNumber": "S-1", "Line": [line],
        "TxnTaxDetail": {"TotalTax": 4}}).json()["Invoice"]
    memo = qclient.post(f"{base}/creditmemo", json={
        "CustomerRef": {"value": cust["Id"]}, "Line": [line]}).json()["CreditMemo"]
    paid = qclient.post(f"{base}/payment", json={
        "TotalAmt": 4, "CustomerRef": {"value": cust["Id"]}, "PaymentRefNum": "P",
        "Line": [{"Amount": 54, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]},
                 {"Amount": 50, "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]})
    assert paid.status_code == 200, paid.text
    refund = qclient.post(f"{base}/refundreceipt", json={
        "CustomerRef": {"value": cust["Id"]}, "DocNumber": "R-1", "Line": [line],
        "DepositToAccountRef": {"value": "35"}})
    assert refund.status_code == 200, refund.text
    schema = qbo_schema()
    records = {
        "Customer": qclient.get(f"{base}/customer/{cust['Id']}").json()["Customer"],
        "Invoice": qclient.get(f"{base}/invoice/{inv['Id']}").json()["Invoice"],
        "CreditMemo": qclient.get(f"{base}/creditmemo/{memo['Id']}").json()["CreditMemo"],
        "Payment": qclient.get(f"{base}/query", params={"query": "select * from Payment"}
                               ).json()["QueryResponse"]["Payment"][0],
        "RefundReceipt": qclient.get(f"{base}/refundreceipt/{refund.json()['RefundReceipt']['Id']}"
                                     ).json()["RefundReceipt"],
        "Item": qclient.get(f"{base}/item/1").json()["Item"],
        "TaxCode": qclient.get(f"{base}/taxcode/TAX").json()["TaxCode"],
    }
    for entity, record in records.items():
        assert unknown_qbo_keys(record, schema.types[entity], entity) == [], entity
    fault = qclient.post(f"{base}/customer", json={"DisplayName": "Shape"}).json()["Fault"]
    assert unknown_qbo_keys(fault, schema.types["Fault"], "Fault") == []


def xero_validate(payload: dict[str, Any], schema_name: str) -> None:
    spec = xero_spec()
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    jsonschema.Draft4Validator(root).validate(payload)


def undeclared_xero_keys(record: dict[str, Any], schema_name: str) -> set[str]:
    declared = set(xero_spec()["components"]["schemas"][schema_name]["properties"])
    return set(record) - declared - XERO_EXTRAS


def test_xero_responses_match_openapi(xero: XeroSandbox, xclient: httpx.Client) -> None:
    api = "/api.xro/2.0"
    contacts = xclient.put(f"{api}/Contacts", json={"Contacts": [{"Name": "Shape"}]}).json()
    cid = contacts["Contacts"][0]["ContactID"]
    line = {"Description": "x", "Quantity": 1, "UnitAmount": 50, "AccountCode": "200",
            "TaxType": "OUTPUT"}
    invoices = xclient.put(f"{api}/Invoices", json={"Invoices": [{
        "Type": "ACCREC", "Contact": {"ContactID": cid}, "Status": "AUTHORISED",
        "DueDate": "2025-02-01", "Reference": "S", "LineItems": [line]}]}).json()
    inv_id = invoices["Invoices"][0]["InvoiceID"]
    notes = xclient.put(f"{api}/CreditNotes", json={"CreditNotes": [{
        "Type": "ACCRECCREDIT", "Contact": {"ContactID": cid}, "Status": "AUTHORISED",
        "LineItems": [dict(line, UnitAmount=10)]}]}).json()
    note_id = notes["CreditNotes"][0]["CreditNoteID"]
    allocations = xclient.put(f"{api}/CreditNotes/{note_id}/Allocations", json={"Allocations": [
        {"Invoice": {"InvoiceID": inv_id}, "Amount": 11.5, "Date": "2025-01-15"}]}).json()
    payments = xclient.put(f"{api}/Payments", json={"Payments": [{
        "Invoice": {"InvoiceID": inv_id}, "Account": {"Code": "090"}, "Amount": 10,
        "Reference": "P"}]}).json()
    read_back = xclient.get(f"{api}/Invoices/{inv_id}").json()
    error = xclient.put(f"{api}/Invoices", json={"Invoices": [{"Type": "ACCREC"}]}).json()
    for payload, wrapper, item in (
            (contacts, "Contacts", "Contact"), (invoices, "Invoices", "Invoice"),
            (read_back, "Invoices", "Invoice"), (notes, "CreditNotes", "CreditNote"),
            (allocations, "Allocations", "Allocation"), (payments, "Payments", "Payment")):
        xero_validate(payload, wrapper)
        for record in payload[wrapper]:
            assert undeclared_xero_keys(record, item) == set(), item
    for line_item in read_back["Invoices"][0]["LineItems"]:
        assert undeclared_xero_keys(line_item, "LineItem") == set()
    xero_validate(error, "Error")
    xero_validate(xclient.get(f"{api}/TaxRates").json(), "TaxRates")
    xero_validate(xclient.get(f"{api}/Accounts").json(), "Accounts")
