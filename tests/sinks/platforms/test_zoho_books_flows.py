"""Zoho Books flows driven end to end against the Zoho Books sandbox with FlowRunner.

Every request the platform builds is validated against Zoho's own OpenAPI files
(shared/specs/zoho-books/) before it reaches the sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Literal

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from schemas.examples import (
    SAMPLE_TAX_CODE,
    sample_credit_note,
    sample_credit_note_event,
    sample_customer_event,
    sample_invoice,
    sample_invoice_event,
    sample_ledger_entry,
    sample_payment,
    sample_payment_event,
    sample_refund_event,
    sample_tax_rate_event,
)
from schemas.models import (
    Allocation,
    CreditDisposition,
    CreditNote,
    FinancialEvent,
    InvoiceStatus,
    LedgerEntry,
    LineKind,
    Op,
    PaymentKind,
    TaxLine,
)
from sinks.core.contract import (
    FlowRunner,
    PlatformRequest,
    PlatformResponse,
    SinkContext,
    WriteResult,
)
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    RetryableError,
    UnsupportedEventError,
    classify_exception,
)
from sinks.core.mapping import TenantConfig
from sinks.platforms.zoho_books import ZohoBooks
from sinks.sandbox.core import ManualClock, SyncASGITransport
from sinks.sandbox.zoho_books import ZohoBooksSandbox
from sinks.transport.http import HttpExecutor, SinkMetrics, make_client
from sinks.transport.retry import RetryPolicy
from tests.sinks.contract.harness_zoho_books import (
    ARRAY_SPEC_QUIRK,
    MAPPING,
    MODULES,
    QUIRKY_SCHEMAS,
    SPECS,
    zoho_spec,
)
from tests.sinks.corpus import line, taxed_invoice

ORG = "20001"
TENANT = "t1"
validate = zoho_spec().validate


needs_specs = pytest.mark.skipif(not SPECS.exists(),
                                 reason="vendor specs /work/shared/specs/zoho-books absent")
pytestmark = [needs_specs, pytest.mark.filterwarnings("ignore:Unsupported scheme type")]


class Harness:
    """A tenant's sink state: the external-id map plus a runner over the sandbox."""

    def __init__(self, sandbox: ZohoBooksSandbox, *, settings: dict[str, Any] | None = None
                 ) -> None:
        self.sandbox = sandbox
        self.token = sandbox.issue_tokens(ORG).access_token
        self.client = sandbox.client(self.token)
        self.ids: dict[str, str] = {}
        self.sent: list[PlatformRequest] = []
        self.tenant = TenantConfig(tenant_id=TENANT, platform="zoho-books",
                                   settings=settings or {"organization_id": ORG},
                                   mapping=MAPPING)
        self.platform = ZohoBooks()

    def transport(self, request: PlatformRequest) -> PlatformResponse:
        validate(request)
        self.sent.append(request)
        try:
            response = self.client.request(
                request.method, "/books/v3" + request.path, params=dict(request.query),
                headers=dict(request.headers),
                content=json.dumps(request.json).encode() if request.json is not None else None)
        except httpx.TransportError as exc:
            error = classify_exception(exc, platform="zoho-books")
            assert error is not None
            raise error from exc
        return PlatformResponse(response.status_code, dict(response.headers), response.content)

    def context(self, event: FinancialEvent) -> SinkContext:
        return SinkContext(tenant_id=TENANT, event_id=event.event_id, tenant=self.tenant,
                           external_ids=dict(self.ids))

    def write(self, event: FinancialEvent, *, attempts: int = 3,
              entry: LedgerEntry | None = None) -> WriteResult:
        entry = entry or sample_ledger_entry(event)
        for attempt in range(attempts):
            try:
                result = FlowRunner(self.platform, self.transport).write(
                    entry, self.context(event))
            except RetryableError:
                if attempt == attempts - 1:
                    raise
                continue
            kind = event.aggregate_type.value.lower()
            self.ids[f"{kind}:{event.aggregate_id}"] = result.external_id
            self.ids.update(result.related)
            return result
        raise AssertionError("unreachable")

    def report(self) -> dict[str, Any]:
        return self.sandbox.ledger_report(ORG)


@pytest.fixture
def sandbox() -> ZohoBooksSandbox:
    return ZohoBooksSandbox(clock=ManualClock())


@pytest.fixture
def h(sandbox: ZohoBooksSandbox) -> Iterator[Harness]:
    harness = Harness(sandbox)
    yield harness
    harness.client.close()


def _doc(report: dict[str, Any], ident: str) -> dict[str, Any]:
    return next(d for d in report["documents"] if d["id"] == ident)


def test_invoice_create_then_replay_and_update(h: Harness) -> None:
    event = sample_invoice_event()
    first = h.write(event)
    crm = sample_invoice()
    assert event.payload == crm
    doc = _doc(h.report(), first.external_id)
    assert Decimal(doc["total"]) == crm.total and doc["status"] == "SENT"
    assert first.related and first.document_number == crm.number
    replay = h.write(event)
    assert replay.external_id == first.external_id
    h.ids.clear()  # replay with a lost external-id map still lands on the same records
    assert h.write(event).external_id == first.external_id
    updated = sample_invoice(notes="second visit", lines=crm.lines[:2])
    h.write(sample_invoice_event(version=2, op=Op.UPDATE, invoice=updated))
    report = h.report()
    assert Decimal(_doc(report, first.external_id)["total"]) == updated.total
    assert report["duplicates"]["count"] == 0
    assert len(report["documents"]) == 1 and len(report["customers"]) == 1


@pytest.mark.parametrize("mode", ["disconnect", "500"])
def test_drop_after_write_retries_without_duplicates(h: Harness, sandbox: ZohoBooksSandbox,
                                                     mode: Literal["disconnect", "500"]
                                                     ) -> None:
    sandbox.faults.arm("drop_after_write", 1, ORG, mode=mode)  # the contact upsert
    sandbox.faults.arm("drop_after_write", 1, ORG, mode=mode)  # then the invoice upsert
    result = h.write(sample_invoice_event(), attempts=4)
    payment = sample_payment_event(amount=sample_invoice().total)
    sandbox.faults.arm("drop_after_write", 1, ORG, mode=mode)
    h.write(payment)
    report = h.report()
    assert report["duplicates"]["count"] == 0
    assert len(report["payments"]) == 1 and len(report["customers"]) == 1
    assert _doc(report, result.external_id)["status"] == "PAID"


def test_payment_and_replay_apply_once(h: Harness) -> None:
    invoice = h.write(sample_invoice_event())
    total = sample_invoice().total
    event = sample_payment_event(amount=total)
    paid = h.write(event)
    assert h.write(event).external_id == paid.external_id
    report = h.report()
    assert _doc(report, invoice.external_id)["balance"] == "0.00"
    assert Decimal(report["payments"][0]["amount"]) == total
    assert len(report["applications"]) == 1
    assert any(r.headers.get("X-Upsert") == "true" and r.path == "/customerpayments"
               for r in h.sent)


def test_payment_of_unsynced_invoice_is_reference_missing(h: Harness) -> None:
    with pytest.raises(ReferenceMissingError):
        h.write(sample_payment_event(invoice_id="never-synced"))


def test_credit_note_credited_applies_once(h: Harness) -> None:
    invoice = h.write(sample_invoice_event())
    event = sample_credit_note_event()
    assert isinstance(event.payload, CreditNote)
    total = event.payload.total
    note = h.write(event)
    h.write(event)
    report = h.report()
    credit = next(a for a in report["applications"] if a["source_kind"] == "credit_note")
    assert (credit["source_id"], credit["target_id"]) == (note.external_id,
                                                          invoice.external_id)
    assert Decimal(credit["amount"]) == total
    assert len(report["applications"]) == 1
    assert Decimal(_doc(report, invoice.external_id)["balance"]) == (
        sample_invoice().total - total)
    assert report["duplicates"]["count"] == 0


def test_credit_note_refunded_refunds_once(h: Harness, sandbox: ZohoBooksSandbox) -> None:
    event = sample_credit_note_event(invoice_id=None, disposition=CreditDisposition.REFUNDED)
    note = h.write(event)
    sandbox.faults.arm("drop_after_write", 1, ORG)  # the refund POST itself
    h.write(event)
    h.write(event)
    org = sandbox.orgs[ORG]
    assert len(org.creditnote_refunds) == 1
    assert _doc(h.report(), note.external_id)["status"] == "CLOSED"


def test_payment_refund_of_unused_amount_once(h: Harness) -> None:
    h.write(sample_invoice_event())
    payment = sample_payment(amount=Decimal("400.00"),
                             allocations=(Allocation(invoice_id="inv1", amount=Decimal("100")),))
    h.write(sample_payment_event(payment=payment))
    refund = sample_refund_event(amount=Decimal("50.00"))
    first = h.write(refund)
    again = h.write(refund)
    assert again.external_id == first.external_id and again.already_applied
    assert h.report()["payments"][0]["unapplied"] == "250.00"
    unallocated = sample_payment("ref2", amount=Decimal("300.00"), kind=PaymentKind.REFUND,
                                 refund_of="pay1", allocations=())
    with pytest.raises(PayloadRejectedError, match="exceeds the unused amount"):
        h.write(sample_payment_event(payment_id="ref2", payment=unallocated))


def test_refund_reopening_an_invoice_takes_it_off_the_payment(h: Harness,
                                                              sandbox: ZohoBooksSandbox) -> None:
    invoice = h.write(sample_invoice_event())
    total = sample_invoice().total
    h.write(sample_payment_event(amount=total))
    refund = sample_refund_event(amount=Decimal("50.00"))
    sandbox.faults.arm("drop_after_write", 1, ORG)  # the re-application is lost in transit
    h.write(refund)
    h.write(refund)
    report = h.report()
    assert Decimal(_doc(report, invoice.external_id)["balance"]) == Decimal("50.00")
    assert report["payments"][0]["unapplied"] == "0.00"
    assert len(sandbox.orgs[ORG].payment_refunds) == 1


def test_void_invoice_and_replay(h: Harness) -> None:
    invoice = h.write(sample_invoice_event())
    h.write(sample_payment_event(amount=Decimal("100.00")))
    void = sample_invoice_event(version=3, op=Op.UPDATE, event_type="invoice.voided",
                                invoice=sample_invoice(status=InvoiceStatus.VOID))
    h.write(void)
    assert h.write(void).already_applied
    report = h.report()
    assert _doc(report, invoice.external_id)["status"] == "VOIDED"
    assert report["payments"][0]["unapplied"] == "100.00"  # back to customer credit
    deleted = sample_invoice_event(version=4, op=Op.DELETE)
    assert h.write(deleted).already_applied


class ExecutorHarness(Harness):
    """Sends through the real executor, which re-sends a keyed request or an idempotent
    method after a lost response (the harness above hands every failure back)."""

    def __init__(self, sandbox: ZohoBooksSandbox) -> None:
        super().__init__(sandbox)
        self.executor = HttpExecutor(
            platform="zoho-books", tenant_id=TENANT,
            client=make_client(base_url="http://sandbox.local/books/v3",
                               transport=SyncASGITransport(sandbox.app),
                               headers={"Authorization": f"Zoho-oauthtoken {self.token}"}),
            auth=None, retry=RetryPolicy(max_attempts=4, base_delay=0), sleep=lambda _: None,
            classify=self.platform.classify_error, metrics=SinkMetrics(CollectorRegistry()))

        #: purposes of POSTs whose first response is lost (armed just before sending)
        self.drop_first: set[str] = set()

    def transport(self, request: PlatformRequest) -> PlatformResponse:
        validate(request)
        self.sent.append(request)
        if request.method == "POST" and request.purpose not in self.drop_first:
            self.drop_first.add(request.purpose)
            self.sandbox.faults.arm("drop_after_write", 1, ORG)
        return self.executor.send(request)


#: scenario → the POST whose lost response must not be re-sent
_LOST_POSTS = {"credit_note_refunded": "refund credit note", "payment_refund": "refund payment",
               "void": "void invoice"}


@pytest.mark.parametrize("scenario", sorted(_LOST_POSTS))
def test_executor_never_resends_a_non_idempotent_post(sandbox: ZohoBooksSandbox,
                                                      scenario: str) -> None:
    """Zoho's POSTs (refunds, credits applied, status changes) have no idempotency key:
    after a lost response the flow must be re-run (lookup first), not the POST re-sent.
    The first response of every kind of POST is lost."""
    h = ExecutorHarness(sandbox)
    try:
        invoice = h.write(sample_invoice_event(), attempts=4)
        if scenario == "credit_note_refunded":
            event = sample_credit_note_event(invoice_id=None,
                                             disposition=CreditDisposition.REFUNDED)
        elif scenario == "payment_refund":
            h.write(sample_payment_event(amount=sample_invoice().total), attempts=4)
            event = sample_refund_event(amount=Decimal("50.00"))
        else:
            h.write(sample_payment_event(amount=Decimal("100.00")), attempts=4)
            event = sample_invoice_event(version=3, op=Op.UPDATE, event_type="invoice.voided",
                                         invoice=sample_invoice(status=InvoiceStatus.VOID))
        h.write(event, attempts=4)
        assert _LOST_POSTS[scenario] in h.drop_first, h.drop_first
        assert not sandbox.faults.pending()
        org = sandbox.orgs[ORG]
        report = h.report()
        assert report["duplicates"]["count"] == 0
        if scenario == "credit_note_refunded":
            assert len(org.creditnote_refunds) == 1
        elif scenario == "payment_refund":
            assert len(org.payment_refunds) == 1
            assert Decimal(_doc(report, invoice.external_id)["balance"]) == Decimal("50.00")
        else:
            assert _doc(report, invoice.external_id)["status"] == "VOIDED"
            assert report["payments"][0]["unapplied"] == "100.00"
    finally:
        h.client.close()


def test_delete_payment_and_deactivate_customer(h: Harness) -> None:
    h.write(sample_invoice_event())
    pay = h.write(sample_payment_event(amount=Decimal("10.00")))
    gone = sample_payment_event(amount=Decimal("10.00"), version=2)
    delete = gone.model_copy(update={"op": Op.DELETE, "payload": None,
                                     "event_type": "payment.deleted", "event_id": "e-del"})
    assert h.write(delete).external_id == pay.external_id
    assert h.write(delete).already_applied  # the second DELETE finds nothing
    assert h.report()["payments"] == []
    h.write(sample_customer_event(op=Op.DELETE, version=5))
    assert h.report()["customers"][0]["active"] is False


def test_customer_upsert_is_idempotent(h: Harness) -> None:
    event = sample_customer_event()
    first = h.write(event)
    assert h.write(event).external_id == first.external_id
    assert len(h.report()["customers"]) == 1


def test_tax_rate_events_are_unsupported(h: Harness) -> None:
    with pytest.raises(UnsupportedEventError, match="taxes are configured in Zoho"):
        h.write(sample_tax_rate_event())
    assert h.sent == []


def test_locked_period_pauses_the_tenant(h: Harness, sandbox: ZohoBooksSandbox) -> None:
    sandbox.lock_period(ORG, sample_invoice().issue_date)
    with pytest.raises(ConfigurationError) as caught:
        h.write(sample_invoice_event())
    assert caught.value.vendor_code == "4000"


def test_rate_limit_and_auth_expiry_classified(h: Harness, sandbox: ZohoBooksSandbox) -> None:
    sandbox.faults.arm("rate_limit", 1, ORG)
    with pytest.raises(RateLimitedError) as limited:
        h.write(sample_customer_event(), attempts=1)
    assert limited.value.vendor_code == "44" and limited.value.retry_after is None
    sandbox.tokens.expire_access_tokens()
    with pytest.raises(AuthExpiredError) as expired:
        h.write(sample_customer_event(), attempts=1)
    assert expired.value.vendor_code == "57"


def test_unconfigured_unique_field_pauses_tenant(sandbox: ZohoBooksSandbox) -> None:
    harness = Harness(sandbox, settings={"organization_id": ORG, "unique_field": "cf_missing"})
    with pytest.raises(ConfigurationError, match="unique custom field"):
        harness.write(sample_customer_event())


@pytest.mark.parametrize("module", sorted(QUIRKY_SCHEMAS))
def test_array_spec_quirk_is_still_there(module: str) -> None:
    data = yaml.safe_load((SPECS / MODULES[module]).read_text())
    for name in QUIRKY_SCHEMAS[module]:
        assert set(data["components"]["schemas"][name]["required"]) >= ARRAY_SPEC_QUIRK


def test_spec_validation_rejects_a_malformed_request() -> None:
    bad = PlatformRequest("PUT", "/invoices", "upsert invoice",
                          query={"organization_id": ORG}, json={"line_items": "x"},
                          headers={"X-Unique-Identifier-Key": "cf_a",
                                   "X-Unique-Identifier-Value": "v"})
    with pytest.raises(Exception, match="validation error"):
        validate(bad)



def _ten_cent_drift_lines() -> tuple[Any, ...]:
    """Ten taxed 1.00 lines at 8.25 %: item-level rounding gives 0.80 tax, the CRM 0.83."""
    return tuple(line(f"l{i}", LineKind.PART, "Part", "1", "1.00", SAMPLE_TAX_CODE)
                 for i in range(10))


@pytest.mark.parametrize("rounding", ["item_level", "entity_level"])
def test_rounding_adjustment_makes_zoho_total_the_crm_total(sandbox: ZohoBooksSandbox,
                                                            rounding: str) -> None:
    sandbox.org(ORG).tax_rounding = rounding
    h = Harness(sandbox, settings={"organization_id": ORG, "tax_rounding": rounding})
    invoice = taxed_invoice("inv1", "c1", _ten_cent_drift_lines(),
                            {SAMPLE_TAX_CODE: Decimal("0.0825")})
    result = h.write(sample_invoice_event(invoice=invoice))
    doc = _doc(h.report(), result.external_id)
    assert Decimal(doc["total"]) == invoice.total == Decimal("10.83")
    assert Decimal(doc["balance"]) == invoice.total
    body = next(r.json for r in h.sent if r.path == "/invoices")
    notes = result.raw.get("notes", [])
    if rounding == "item_level":
        assert body["adjustment"] == 0.03
        assert body["adjustment_description"] == "Rounding adjustment"
        assert any("rounding adjustment +0.03" in n and "10.80" in n for n in notes)
    else:
        assert "adjustment" not in body and not notes
    h.client.close()


def test_credit_note_rounding_drift_is_noted(h: Harness) -> None:
    lines = _ten_cent_drift_lines()
    tax = TaxLine(code=SAMPLE_TAX_CODE, name=SAMPLE_TAX_CODE, rate=Decimal("0.0825"),
                  taxable_amount=Decimal("10.00"), tax_amount=Decimal("0.83"))
    note = sample_credit_note(invoice_id=None, lines=lines, tax_lines=(tax,),
                              subtotal=Decimal("10.00"), total_tax=Decimal("0.83"),
                              total=Decimal("10.83"))
    event = sample_credit_note_event(invoice_id=None).model_copy(update={"payload": note})
    result = h.write(event)
    assert Decimal(_doc(h.report(), result.external_id)["total"]) == Decimal("10.80")
    assert any("10.80, the CRM 10.83" in n and "no rounding adjustment" in n
               for n in result.raw.get("notes", []))
