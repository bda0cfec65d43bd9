"""Xero: pure mapping, error bodies (both shapes), and flow behaviour the corpus does
not show."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from schemas.examples import sample_customer, sample_invoice, sample_payment
from schemas.models import DocumentLine, InvoiceStatus, LedgerEntry, LineKind, Payment, PaymentKind
from sinks.core.contract import PlatformResponse
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    UnsupportedEventError,
)
from sinks.core.mapping import TenantConfig
from sinks.platforms import get_platform
from sinks.platforms.common.reconcile import expected_ledger, format_differences, reconcile
from sinks.platforms.common.text import Notes
from sinks.platforms.xero import errors, mapping
from sinks.sandbox import ManualClock, XeroSandbox
from tests.sinks.contract.harness import XERO, Books, connect, open_books
from tests.sinks.corpus import SCENARIOS, STATE_TAX_CODE, Story, pay, taxed_invoice

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")

TENANT = TenantConfig.model_validate({
    "tenant_id": "uk", "platform": "xero", "settings": {"xero_tenant_id": "org"},
    "mapping": {
        "income_accounts": {"labor": "200", "parts": "201", "fees": "260", "discounts": "270"},
        "items": {"parts": "PART"},
        "tax_codes": {"TX-AUSTIN": "OUTPUT", STATE_TAX_CODE: "OUTPUT2"},
        "exempt_tax_code": "EXEMPTOUTPUT", "deposit_accounts": {"default": "090"},
        "rounding": {"mode": "half_even"},
    },
})
M = TENANT.mapping


def test_invoice_body_carries_crm_tax_per_line() -> None:
    body = mapping.invoice_body(sample_invoice("inv1"), sample_customer(), "cid", M, Notes())
    assert (body["Type"], body["Status"], body["LineAmountTypes"]) == (
        "ACCREC", "AUTHORISED", "Exclusive")
    assert body["InvoiceNumber"] == "INV-INV1" and body["CurrencyCode"] == "USD"
    assert body["Reference"] == "Job job-inv1: washer"
    labor, part, trip = body["LineItems"]
    assert labor == {"Description": "Replace drain pump", "Quantity": 1.5, "UnitAmount": 95.0,
                     "LineAmount": 142.5, "AccountCode": "200", "TaxType": "EXEMPTOUTPUT",
                     "TaxAmount": 0.0}
    assert (part["TaxType"], part["TaxAmount"], part["ItemCode"]) == ("OUTPUT", 7.42, "PART")
    assert trip["AccountCode"] == "260"


def test_multi_rate_tax_sums_to_the_crm_total() -> None:
    invoice = SCENARIOS["multi_rate_tax"].entries()[0].event.payload
    body = mapping.invoice_body(invoice, sample_customer(), "cid", M, Notes())
    taxes = [D(str(li["TaxAmount"])) for li in body["LineItems"]]
    assert sum(taxes, D(0)) == invoice.total_tax
    assert [li["TaxType"] for li in body["LineItems"]] == ["OUTPUT2", "OUTPUT", "OUTPUT",
                                                           "EXEMPTOUTPUT"]


def test_draft_inclusive_and_tenant_rounding() -> None:
    lines = (DocumentLine(line_id="a", kind=LineKind.PART, description="p", quantity=D(1),
                          unit_price=D("10.005"), tax_code="TX-AUSTIN", amount=D("10.005")),)
    invoice = taxed_invoice("inv1", "c1", lines, {}).model_copy(
        update={"status": InvoiceStatus.DRAFT, "prices_include_tax": True})
    body = mapping.invoice_body(invoice, sample_customer(), "cid", M, Notes())
    assert body["Status"] == "DRAFT" and body["LineAmountTypes"] == "Inclusive"
    assert body["LineItems"][0]["LineAmount"] == 10.0  # the tenant rounds half-even


def test_contact_body_marks_the_crm_customer() -> None:
    notes = Notes()
    customer = sample_customer("c1", display_name="N" * 300, tax_exempt=True,
                               tax_exemption_number="EX-1")
    body = mapping.contact_body(customer, M, notes)
    assert body["ContactNumber"] == "c1" and len(body["Name"]) == 255 and notes.items
    assert body["AccountsReceivableTaxType"] == "EXEMPTOUTPUT" and body["TaxNumber"] == "EX-1"
    assert body["Addresses"][0]["AddressType"] == "POBOX"
    assert mapping.where_equals("Name", 'Say "hi"') == 'Name=="Say \\"hi\\""'


# --------------------------------------------------------------------------- errors


def test_validation_exception_quotes_every_message() -> None:
    response = PlatformResponse.from_json(400, {
        "ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception "
        "occurred", "Elements": [{"ValidationErrors": [
            {"Message": "Email address must be valid."},
            {"Message": "Account code '999' is not a valid code for this document."}]}]})
    error = errors.classify(response)
    assert isinstance(error, PayloadRejectedError) and error.vendor_code == "10"
    assert "Email address must be valid." in error.reason and "'999'" in error.reason


def test_summarize_errors_false_200_with_element_errors_is_a_rejection() -> None:
    response = PlatformResponse.from_json(200, {"Status": "OK", "Invoices": [
        {"InvoiceNumber": "INV-1", "HasErrors": True, "ValidationErrors": [
            {"Message": "Invoice # must be unique."}]},
        {"InvoiceNumber": "INV-2", "InvoiceID": "x"}]})
    error = errors.classify(response)
    assert isinstance(error, PayloadRejectedError) and "must be unique" in error.reason
    ok = PlatformResponse.from_json(200, {"Status": "OK", "Invoices": [{"InvoiceID": "x"}]})
    assert errors.classify(ok) is None


def test_lock_date_pauses_the_tenant() -> None:
    response = PlatformResponse.from_json(400, {"ErrorNumber": 10, "Type":
                                                "ValidationException", "Elements": [
        {"ValidationErrors": [{"Message": "The document date cannot be before the period "
                                          "lock date of 2025-12-31"}]}]})
    assert isinstance(errors.classify(response), ConfigurationError)


def test_rate_limit_and_auth() -> None:
    throttled = errors.classify(PlatformResponse.from_json(
        429, {"Title": "Too Many Requests"}, {"Retry-After": "45",
                                              "X-Rate-Limit-Problem": "minute"}))
    assert isinstance(throttled, RateLimitedError)
    assert throttled.retry_after == 45 and "minute" in throttled.reason
    expired = errors.classify(PlatformResponse.from_json(
        401, {"Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired: token expired"}))
    assert isinstance(expired, AuthExpiredError)


# --------------------------------------------------------------------------- flows


def test_requests_carry_tenant_header_and_idempotency_keys() -> None:
    sandbox = XeroSandbox()
    books = open_books(XERO, get_platform("xero"), sandbox)
    for entry in SCENARIOS["partial_payment"].entries():
        books.write(entry)
    sent = books.transport.sent
    assert all(r.headers["xero-tenant-id"] == books.tenant.settings["xero_tenant_id"]
               for r in sent)
    writes = [r for r in sent if r.method in ("PUT", "POST")]
    assert [r.purpose for r in writes] == ["create contact", "create invoice", "create payment"]
    keys = [r.headers["Idempotency-Key"] for r in writes]
    assert len(set(keys)) == 3 and all(len(k) <= 128 for k in keys)
    assert all("summarizeErrors" not in r.query for r in writes)


def test_payment_edit_is_unsupported_with_a_reason() -> None:
    sandbox = XeroSandbox()
    books = open_books(XERO, get_platform("xero"), sandbox)
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    story._emit(*_payment_update())
    with pytest.raises(UnsupportedEventError, match="cannot be edited"):
        books.write(story.entries[0])


def _payment_update() -> tuple:  # type: ignore[type-arg]
    from schemas.models import AggregateType, Op

    return (AggregateType.PAYMENT, "pay1", sample_payment("pay1", kind=PaymentKind.PAYMENT),
            Op.UPDATE, "c1", "updated")


# --------------------------------------------------------------------------- overpayments


def _refund(refund_id: str, of: str, amount: D) -> Payment:
    return sample_payment(refund_id, "c1", amount=amount, kind=PaymentKind.REFUND,
                          refund_of=of, allocations=(), tip=D(0))


def _void_paid_then_refund() -> Story:
    """The CRM's "void after payment, money refunded": paid, VOIDED, then a REFUND of
    the payment with no allocations pays the money back."""
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    invoice = story.invoice(sample_invoice("inv1", "c1"))
    story.payment(pay("pay1", invoice, invoice.total))
    story.void(invoice)
    story.payment(_refund("ref1", "pay1", invoice.total))
    return story


def _agree(books: Books, sandbox: XeroSandbox, entries: list[LedgerEntry]) -> None:
    report = sandbox.ledger_report(str(books.tenant.settings["xero_tenant_id"]))
    diffs = reconcile(expected_ledger(entries), report, books.ids)
    assert not diffs, format_differences(diffs)
    assert report["duplicates"]["count"] == 0


def test_void_after_payment_then_refund_pays_back_the_overpayment() -> None:
    sandbox = XeroSandbox(clock=ManualClock())
    books = open_books(XERO, get_platform("xero"), sandbox)
    entries = _void_paid_then_refund().entries
    for entry in entries:
        books.write(entry)
    writes = [r.purpose for r in books.transport.sent if r.method in ("PUT", "POST")]
    assert writes == ["create contact", "create invoice", "create payment",
                      "record overpayment", "delete payment", "void invoice",
                      "refund overpayment"]
    refund = next(r for r in books.transport.sent if r.purpose == "refund overpayment")
    assert set(refund.json["Payments"][0]) == {"Overpayment", "Account", "Amount", "Date",
                                               "Reference"}
    _agree(books, sandbox, entries)
    tenant = books.tenant.settings["xero_tenant_id"]
    [over] = sandbox.org(tenant).overpayments.values()
    assert (over["Status"], over["RemainingCredit"]) == ("PAID", 0)
    # replayed with the id map lost, after the idempotency window: nothing new
    assert isinstance(sandbox.clock, ManualClock)
    sandbox.clock.advance(3 * 86400)
    late = Books(books.platform, connect(XERO, sandbox, books.tenant), books.tenant)
    for entry in entries:
        late.write(entry)
    assert late.ids == books.ids
    _agree(books, sandbox, entries)
    assert len(sandbox.org(tenant).overpayments) == 1


def test_unallocated_refund_draws_on_the_payments_own_overpayment_first() -> None:
    sandbox = XeroSandbox()
    books = open_books(XERO, get_platform("xero"), sandbox)
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    first = story.invoice(sample_invoice("inv1", "c1"))
    second = story.invoice(sample_invoice("inv2", "c1"))
    story.payment(pay("pay1", first, first.total + D("10.00"), allocated=first.total))
    story.payment(pay("pay2", second, second.total + D("20.00"), allocated=second.total))
    story.payment(_refund("ref1", "pay2", D("25.00")))
    for entry in story.entries:
        books.write(entry)
    _agree(books, sandbox, story.entries)
    overs = sorted(sandbox.org(books.tenant.settings["xero_tenant_id"]).overpayments.values(),
                   key=lambda o: o["Reference"])
    assert [(o["Reference"], o["RemainingCredit"]) for o in overs] == [
        ("RCPT-PAY1 overpayment", 5.0), ("RCPT-PAY2 overpayment", 0)]


def test_refund_beyond_the_customers_credit_is_unsupported_and_writes_nothing() -> None:
    sandbox = XeroSandbox()
    books = open_books(XERO, get_platform("xero"), sandbox)
    story = Story()
    story.customer(sample_customer("c1"), announce=False)
    invoice = story.invoice(sample_invoice("inv1", "c1"))
    story.payment(pay("pay1", invoice, invoice.total + D("10.00"), allocated=invoice.total))
    story.payment(_refund("ref1", "pay1", D("10.01")))
    *before, refund = story.entries
    for entry in before:
        books.write(entry)
    sent = len(books.transport.sent)
    with pytest.raises(UnsupportedEventError, match=r"holds only 10\.00"):
        books.write(refund)
    assert all(r.method == "GET" for r in books.transport.sent[sent:])
