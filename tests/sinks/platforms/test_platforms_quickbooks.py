"""QuickBooks Online: pure mapping, fault classification, and the flow's own recovery
(stale SyncToken, duplicate number) against the sandbox."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from schemas.examples import sample_customer, sample_invoice, sample_payment
from schemas.models import Allocation, DocumentLine, LineKind, Op
from sinks.core.contract import PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    TransientError,
)
from sinks.core.mapping import TenantConfig
from sinks.platforms import get_platform
from sinks.platforms.common.text import Notes
from sinks.platforms.quickbooks import errors, mapping
from sinks.sandbox import QuickBooksSandbox
from tests.sinks.contract.harness import QUICKBOOKS, open_books
from tests.sinks.corpus import Story

TENANT = TenantConfig.model_validate({
    "tenant_id": "acme", "platform": "quickbooks-online", "settings": {"realm_id": "1"},
    "mapping": {
        "income_accounts": {"labor": "79", "parts": "80", "fees": "81", "discounts": "86"},
        "items": {"labor": "21", "parts": "22", "fees": "23"},
        "tax_codes": {"TX-AUSTIN": "TAX"}, "exempt_tax_code": "NON",
        "deposit_accounts": {"card": "36", "default": "35"}, "class_ref": "500",
    },
})
M = TENANT.mapping


def test_invoice_body_maps_lines_tax_and_job() -> None:
    notes = Notes()
    customer = sample_customer("c1")
    body = mapping.invoice_body(sample_invoice("inv1"), customer, "58", M, notes)
    assert body["DocNumber"] == "INV-INV1"
    assert (body["TxnDate"], body["DueDate"]) == ("2025-03-14", "2025-04-13")
    assert body["CustomerRef"] == {"value": "58"} and body["CurrencyRef"] == {"value": "USD"}
    assert body["TxnTaxDetail"] == {"TotalTax": 7.42}
    labor, part, trip = body["Line"]
    assert labor["SalesItemLineDetail"] == {"ItemRef": {"value": "21"}, "Qty": 1.5,
                                            "UnitPrice": 95.0, "TaxCodeRef": {"value": "NON"},
                                            "ClassRef": {"value": "500"}}
    assert part["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "TAX"}
    assert trip["SalesItemLineDetail"]["ItemRef"] == {"value": "23"}
    note = body["PrivateNote"]
    assert note.startswith("crm:invoice:inv1 | job job-inv1: washer Whirlpool WTW5000DW1")
    assert "S/N C91234567" in note and "technician Sam Ortiz" in note
    assert "Customer reports no drain" in note
    assert body["BillEmail"] == {"Address": "zoe@example.com"}
    assert "GlobalTaxCalculation" not in body and notes.items == []


def test_exempt_customer_gets_the_exempt_code_on_every_line() -> None:
    body = mapping.invoice_body(sample_invoice("inv1"), sample_customer("c1", tax_exempt=True),
                                "58", M, Notes())
    codes = {line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in body["Line"]}
    assert codes == {"NON"}


def test_discount_line_and_half_up_rounding() -> None:
    lines = (DocumentLine(line_id="a", kind=LineKind.PART, description="p", quantity=D(1),
                          unit_price=D("10.005"), tax_code="TX-AUSTIN", amount=D("10.005")),
             DocumentLine(line_id="d", kind=LineKind.DISCOUNT, description="loyalty",
                          quantity=D(1), unit_price=D("-2.50"), amount=D("-2.50")))
    invoice = sample_invoice("inv1", lines=lines).model_copy(update={"total_tax": D("0.125")})
    body = mapping.invoice_body(invoice, sample_customer(), "58", M, Notes())
    assert body["Line"][0]["Amount"] == 10.01  # HALF_UP, as QBO rounds
    assert body["Line"][1] == {
        "DetailType": "DiscountLineDetail", "Amount": 2.5, "Description": "loyalty",
        "DiscountLineDetail": {"PercentBased": False, "DiscountAccountRef": {"value": "86"}}}
    assert body["TxnTaxDetail"]["TotalTax"] == 0.13


def test_long_numbers_and_names_are_truncated_with_a_note() -> None:
    notes = Notes()
    invoice = sample_invoice("inv1", number="INV-2025-03-OAKLAND-SHOP-000000012345")
    body = mapping.invoice_body(invoice, sample_customer(), "58", M, notes)
    assert len(body["DocNumber"]) == 21 and body["DocNumber"].startswith("INV-2025-03-")
    customer = sample_customer("c1", display_name="N" * 600)
    assert len(mapping.customer_body(customer, notes)["DisplayName"]) == 500
    assert len(notes.items) == 2
    assert mapping.disambiguated_name(customer, notes).endswith("N (c1)")
    assert len(mapping.disambiguated_name(customer, notes)) == 500


def test_unmapped_item_is_a_configuration_error_naming_the_key() -> None:
    bare = TenantConfig.model_validate({"tenant_id": "t", "platform": "quickbooks-online",
                                        "mapping": {"exempt_tax_code": "NON"}})
    with pytest.raises(ConfigurationError, match=r"item for line kind 'labor' \(mapping.items\)"):
        mapping.invoice_body(sample_invoice(), sample_customer(), "1", bare.mapping, Notes())


def test_payment_body_settles_amount_less_tip() -> None:
    payment = sample_payment("pay1", amount=D("310.92"), tip=D("20.00"),
                             allocations=(Allocation(invoice_id="inv1", amount=D("290.92")),))
    body = mapping.payment_body(payment, "58", [("130", D("288.91")), ("131", D(0))], M, Notes())
    assert body["TotalAmt"] == 290.92
    assert body["Line"] == [{"Amount": 288.91, "LinkedTxn": [{"TxnId": "130",
                                                              "TxnType": "Invoice"}]}]
    assert body["DepositToAccountRef"] == {"value": "36"}
    assert body["PaymentRefNum"] == "RCPT-PAY1"
    assert "tip 20.00 (not revenue" in body["PrivateNote"]
    assert "processor fee 9.32" in body["PrivateNote"]


def test_credit_application_is_a_zero_payment_linking_both() -> None:
    from schemas.examples import sample_credit_note

    body = mapping.credit_application_body(sample_credit_note(), "58", "77",
                                           [("130", D("50.00")), ("131", D("47.41"))], Notes())
    assert body["TotalAmt"] == 0
    assert body["Line"][-1] == {"Amount": 97.41, "LinkedTxn": [{"TxnId": "77",
                                                                "TxnType": "CreditMemo"}]}


def test_query_literals_are_escaped() -> None:
    assert mapping.quote("O'Brien \\ Sons") == "'O\\'Brien \\\\ Sons'"


# --------------------------------------------------------------------------- errors


def fault(status: int, code: str, message: str, detail: str, element: str = "",
          kind: str = "ValidationFault") -> PlatformResponse:
    return PlatformResponse.from_json(status, {"Fault": {"Error": [
        {"Message": message, "Detail": detail, "code": code, "element": element}],
        "type": kind}, "time": "2025-03-14T08:00:00.000-07:00"})


@pytest.mark.parametrize(("response", "expected", "code"), [
    (fault(400, "6240", "Duplicate Name Exists Error",
           "The name supplied already exists. : Id=58", "DisplayName"),
     PayloadRejectedError, "6240"),
    (fault(400, "5010", "Stale Object Error", "Stale Object Error : You and another user were "
           "working on the same thing."), TransientError, "5010"),
    (fault(400, "6210", "The account period has closed",
           "The account period has closed and the books are locked through 2025-12-31."),
     ConfigurationError, "6210"),
    (fault(400, "610", "Object Not Found", "Something you're trying to use has been made "
           "inactive.", "CustomerRef"), ReferenceMissingError, "610"),
    (fault(400, "2050", "String length is either shorter or longer than supported by "
           "specification", "DocNumber length exceeds the maximum supported"),
     PayloadRejectedError, "2050"),
    (fault(500, "10000", "An application error has occurred", "System Failure Error",
           kind="SystemFault"), TransientError, "10000"),
    (PlatformResponse.from_json(401, {"fault": {"error": [
        {"message": "message=AuthenticationFailed; errorDetail=Token expired; statusCode=401",
         "detail": "Token expired", "code": "3200"}], "type": "AUTHENTICATION"}}),
     AuthExpiredError, "3200"),
    (PlatformResponse.from_json(429, {"fault": {"error": [
        {"message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
         "detail": "The request limit was reached.", "code": "003001"}], "type": "SERVICE"}}),
     RateLimitedError, "003001"),
])
def test_vendor_codes_are_classified(response: PlatformResponse, expected: type,
                                     code: str) -> None:
    error = errors.classify(response)
    assert type(error) is expected
    assert error is not None and error.vendor_code == code and error.platform == \
        "quickbooks-online"


def test_success_and_bare_gateway_errors() -> None:
    assert errors.classify(PlatformResponse.from_json(200, {"Invoice": {"Id": "1"}})) is None
    assert isinstance(errors.classify(PlatformResponse(502, {}, b"<html>bad gateway</html>")),
                      TransientError)
    locked = errors.classify(fault(400, "6210", "The account period has closed", "x"))
    assert locked is not None and "reopen the period" in locked.reason


# --------------------------------------------------------------------------- flows


def _books() -> tuple[QuickBooksSandbox, Any]:
    sandbox = QuickBooksSandbox()
    return sandbox, open_books(QUICKBOOKS, get_platform("quickbooks-online"), sandbox)


def test_stale_sync_token_is_reread_and_retried_once() -> None:
    sandbox, books = _books()
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    invoice = story.invoice(sample_invoice("inv1"))
    story.invoice(invoice.model_copy(update={"notes": "edited in the CRM"}), op=Op.UPDATE)
    books.write(story.entries[0])
    realm = str(books.tenant.settings["realm_id"])
    with sandbox.lock:  # someone edits the invoice in QuickBooks: SyncToken moves on
        sandbox.operate(realm, "Invoice", "update", {
            "Id": books.ids["invoice:inv1"], "SyncToken": "0", "sparse": True,
            "CustomerMemo": {"value": "edited in QBO"}})
    sent_before = len(books.transport.sent)
    result = books.write(story.entries[1])
    steps = [(r.method, r.purpose) for r in books.transport.sent[sent_before:]]
    assert steps == [("POST", "update invoice"), ("GET", "read invoice"),
                     ("POST", "update invoice")]
    assert result.version == "2"
    retry = books.transport.sent[-1]
    assert retry.json["SyncToken"] == "1" and retry.json["sparse"] is True
    assert retry.query["requestid"] != books.transport.sent[sent_before].query["requestid"]


def test_every_write_is_idempotent_and_versioned() -> None:
    _, books = _books()
    story = Story()
    story.customer(sample_customer("c1"))
    story.invoice(sample_invoice("inv1"))
    for entry in story.entries:
        books.write(entry)
    writes = [r for r in books.transport.sent if r.method == "POST"]
    assert writes and all(r.query["minorversion"] == "75" for r in books.transport.sent)
    keys = [r.query["requestid"] for r in writes]
    assert len(set(keys)) == len(keys) and all(len(k) == 36 for k in keys)
    assert books.results[-1].related == {} and books.ids["customer:c1"]


def test_number_held_by_another_document_is_rejected_not_adopted() -> None:
    sandbox, books = _books()
    realm = str(books.tenant.settings["realm_id"])
    with sandbox.lock:
        other = sandbox.operate(realm, "Customer", None, {"DisplayName": "Someone else"})
        sandbox.operate(realm, "Invoice", None, {
            "DocNumber": "INV-INV1", "CustomerRef": {"value": other["Id"]},
            "PrivateNote": "typed by the bookkeeper",
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5,
                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    story.invoice(sample_invoice("inv1"))
    with pytest.raises(PayloadRejectedError, match="already used in QuickBooks"):
        books.write(story.entries[0])


def test_refund_without_the_original_payment_is_a_missing_reference() -> None:
    _, books = _books()
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    story.payment(sample_payment("ref1", kind="REFUND", refund_of="pay9"))
    with pytest.raises(ReferenceMissingError, match="pay9 was never written"):
        books.write(story.entries[0])
    assert not [r for r in books.transport.sent if r.method == "POST"]


def test_a_new_customer_costs_a_lookup_and_a_create() -> None:
    """customer.created: find by the tenant's rules, create — no read-back and sparse
    update of what was just written (two more calls of the tenant's budget each)."""
    sandbox, books = _books()
    story = Story()
    story.customer(sample_customer("c1"))
    books.write(story.entries[0])
    steps = [(r.method, r.purpose) for r in books.transport.sent]
    # a query per matching rule that applies (e-mail, display name), then the create
    assert steps[-1] == ("POST", "create customer") and len(steps) >= 2
    assert set(steps[:-1]) == {("GET", "find customer")}
    realm = str(books.tenant.settings["realm_id"])
    with sandbox.lock:
        record = sandbox.realm(realm).entities["Customer"][books.ids["customer:c1"]]
    assert record["DisplayName"] == mapping.customer_body(sample_customer("c1"),
                                                          Notes())["DisplayName"]
    assert books.results[-1].external_id == books.ids["customer:c1"]
