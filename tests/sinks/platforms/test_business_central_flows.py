"""Business Central flows driven end to end with FlowRunner against the BC sandbox.

Every request the platform sends is validated against the vendor's v2.0 OpenAPI
(shared/specs/dynamics-365-business-central/bcoas2.0.yaml): requests whose path the
spec lists go through openapi-core; bodies for paths the community subset lacks
(``customerPayments``, ``$batch`` parts) are checked against the spec's component
schemas (``customerPayment``, ``salesInvoiceLine``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from schemas import examples as ex
from schemas.models import Allocation, CreditDisposition, InvoiceStatus, LedgerEntry, Op
from sinks.core.contract import FlowRunner, PlatformRequest, PlatformResponse, SinkContext
from sinks.core.errors import (
    ConfigurationError,
    RateLimitedError,
    ReferenceMissingError,
    SinkError,
    TransientError,
    UnsupportedEventError,
    classify_exception,
)
from sinks.core.mapping import TenantConfig
from sinks.platforms.business_central import BusinessCentral
from sinks.sandbox.business_central import BusinessCentralSandbox
from sinks.sandbox.core import ManualClock, SyncASGITransport
from sinks.transport.http import HttpExecutor, SinkMetrics, make_client
from sinks.transport.retry import RetryPolicy
from tests.sinks.contract.harness_business_central import (
    SPEC,
    V2_DATE_FIELDS,
    SpecViolation,
    business_central_spec,
)

COMPANY = "5d1e2f3a-0000-4000-8000-00000000c0a1"
JOURNAL = "7e0b1c2d-0000-4000-8000-0000000000a1"
BASE = "http://sandbox.local/v2.0/contoso/production/api/v2.0"
TAX = {"TAXABLE": Decimal("0.0825"), "NONTAXABLE": Decimal(0)}


def tenant() -> TenantConfig:
    return TenantConfig.model_validate({
        "tenant_id": "t1", "platform": "business-central",
        "settings": {"aad_tenant_id": "contoso", "company_id": COMPANY, "base_url": BASE},
        "mapping": {
            "income_accounts": {"labor": "40100", "parts": "40200", "fees": "40300",
                                "discounts": "40900"},
            "tax_codes": {ex.SAMPLE_TAX_CODE: "TAXABLE"},
            "exempt_tax_code": "NONTAXABLE",
            "deposit_accounts": {"card": JOURNAL, "default": JOURNAL},
        },
    })


# --------------------------------------------------------------------------- spec


def validate_against_spec(request: PlatformRequest) -> str:
    return business_central_spec().validate(request)


def _schema_validator(name: str) -> Any:
    return business_central_spec().schema_validator(name)


# --------------------------------------------------------------------------- harness


@dataclass
class Harness:
    sandbox: BusinessCentralSandbox
    client: httpx.Client
    validate: bool = True
    sent: list[PlatformRequest] = field(default_factory=list)
    how: list[str] = field(default_factory=list)
    external_ids: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def __call__(self, request: PlatformRequest) -> PlatformResponse:
        if self.validate and SPEC.exists():
            self.how.append(validate_against_spec(request))
        self.sent.append(request)
        try:
            raw = self.client.request(request.method, f"{BASE}/{request.path}",
                                      params=dict(request.query) or None,
                                      headers=dict(request.headers), json=request.json)
        except httpx.TransportError as exc:
            error = classify_exception(exc, platform="business-central")
            assert error is not None
            raise error from exc
        return PlatformResponse(raw.status_code, dict(raw.headers), raw.content)

    def context(self, entry: LedgerEntry) -> SinkContext:
        return SinkContext(tenant_id="t1", event_id=entry.event.event_id, tenant=tenant(),
                           external_ids=dict(self.external_ids), versions=dict(self.versions))

    def write(self, entry: LedgerEntry, key: str | None = None) -> Any:
        """Write like the runner: on success record ids; on a retryable error re-run
        the whole flow (lookup first), as the runner re-delivers the event."""
        platform = BusinessCentral()
        for _ in range(3):
            try:
                result = FlowRunner(platform, self).write(entry, self.context(entry))
            except TransientError:
                continue
            key = key or f"{entry.event.aggregate_type.value.lower()}:{entry.event.aggregate_id}"
            self.external_ids[key] = result.external_id
            if result.version:
                self.versions[key] = result.version
            self.external_ids.update(result.related)
            return result
        raise AssertionError("flow did not succeed in 3 attempts")

    def report(self) -> dict[str, Any]:
        return self.sandbox.ledger_report(COMPANY)


@pytest.fixture
def h() -> Iterator[Harness]:
    sandbox = BusinessCentralSandbox(clock=ManualClock())
    sandbox.configure(COMPANY, tax_rates=TAX, accounts={"40100", "40200", "40300", "40900"},
                      journals={JOURNAL})
    token = sandbox.issue_tokens().access_token
    with sandbox.client(token) as client:
        yield Harness(sandbox, client)


def entry_of(event: Any) -> LedgerEntry:
    return ex.sample_ledger_entry(event)


def invoice_entry(**kw: Any) -> LedgerEntry:
    return entry_of(ex.sample_invoice_event(**kw))


# --------------------------------------------------------------------------- tests


def test_invoice_create_posts_and_matches_crm_total(h: Harness) -> None:
    entry = invoice_entry()
    result = h.write(entry)
    invoice = entry.event.payload
    report = h.report()
    [doc] = report["documents"]
    assert doc["status"] == "Open" and doc["number"].startswith("PS-INV")
    assert Decimal(doc["total"]) == invoice.total
    assert result.document_number == doc["number"]
    assert result.related == {"customer:c1": report["customers"][0]["id"]}
    if SPEC.exists():  # every request went through the vendor spec
        assert h.how.count("openapi") == len(h.sent)
    assert [r.purpose for r in h.sent] == ["find customer", "create customer", "find document",
                                           "create invoice", "post document", "read document"]


def test_replay_is_zero_duplicates(h: Harness) -> None:
    entry = invoice_entry()
    first = h.write(entry)
    h.external_ids.clear()  # even without the external-id map, the lookup finds it
    again = h.write(entry)
    assert again.already_applied and again.external_id == first.external_id
    assert h.report()["duplicates"]["count"] == 0
    assert len(h.report()["documents"]) == 1


@pytest.mark.parametrize("after", [1, 2, 3])
def test_drop_after_write_then_retry_creates_no_duplicate(h: Harness, after: int) -> None:
    """The n-th write's response is lost (customer create, invoice create, post)."""
    writes = {"n": 0}
    original = h.sandbox.faults.take

    def take(kind: Any, tenant: str | None) -> Any:
        if kind == "drop_after_write":
            writes["n"] += 1
            if writes["n"] == after:
                return type("F", (), {"mode": "disconnect"})()
            return None
        return original(kind, tenant)

    h.sandbox.faults.take = take  # type: ignore[method-assign]
    result = h.write(invoice_entry())
    report = h.report()
    assert report["duplicates"]["count"] == 0
    assert len(report["documents"]) == 1 and len(report["customers"]) == 1
    assert report["documents"][0]["status"] == "Open"
    assert result.external_id == report["documents"][0]["id"]


def test_blind_resend_of_a_dropped_post_would_duplicate(h: Harness) -> None:
    """Why the flow looks up first: BC has no idempotency key for documents."""
    h.write(entry_of(ex.sample_customer_event()))
    entry = invoice_entry()
    flow = BusinessCentral().plan(entry, h.context(entry))
    lookup = next(flow)
    assert lookup.purpose == "find document"
    create = flow.send(h(lookup))
    assert create.purpose == "create invoice"
    h.sandbox.faults.arm("drop_after_write", 1, COMPANY)
    with pytest.raises(TransientError):
        h(create)
    h(create)  # re-sending the same POST is not idempotent in BC
    assert h.report()["duplicates"]["count"] == 1
    # whereas re-running the flow finds the document and writes nothing new
    h.sandbox.company(COMPANY).invoices.popitem()
    h.write(entry)
    assert h.report()["duplicates"]["count"] == 0


@pytest.mark.parametrize("what", ["invoice", "payment"])
def test_executor_does_not_resend_a_post_whose_response_was_lost(h: Harness,
                                                                 what: str) -> None:
    """Through the real executor, which re-sends keyed requests after a transient
    failure: BC has no idempotency key, so a POST whose response was lost must come
    back to the runner (re-run of the flow, lookup first), never be re-sent as is.
    Found by the crash-injection e2e (a duplicate invoice in BC)."""
    token = h.sandbox.issue_tokens().access_token
    client = make_client(base_url=BASE + "/", transport=SyncASGITransport(h.sandbox.app),
                         headers={"Authorization": f"Bearer {token}"})
    platform = BusinessCentral()
    executor = HttpExecutor(
        platform="business-central", tenant_id="t1", client=client, auth=None,
        retry=RetryPolicy(max_attempts=4, base_delay=0), sleep=lambda _: None,
        classify=platform.classify_error, metrics=SinkMetrics(CollectorRegistry()))
    if what == "payment":
        h.write(invoice_entry())
        entry = entry_of(ex.sample_payment_event())
    else:
        entry = invoice_entry()
    h.sandbox.faults.arm("drop_after_write", 3, COMPANY)  # every POST of the flow, once
    lost = 0
    for _ in range(5):  # the runner re-delivers the event after a retryable error
        try:
            FlowRunner(platform, executor).write(entry, h.context(entry))
            break
        except TransientError:
            lost += 1
    else:
        raise AssertionError("flow did not succeed in 5 attempts")
    assert lost >= 1
    company = h.sandbox.company(COMPANY)
    assert h.report()["duplicates"]["count"] == 0
    assert len(company.journal_lines if what == "payment" else company.invoices) == 1


def test_draft_invoice_updated_with_etag_then_posted(h: Harness) -> None:
    draft = ex.sample_invoice(status=InvoiceStatus.DRAFT)
    h.write(entry_of(ex.sample_invoice_event(invoice=draft)))
    assert h.report()["documents"][0]["status"] == "Draft"
    lines = (*draft.lines[:2],)
    changed = ex.sample_invoice(status=InvoiceStatus.SENT, lines=lines)
    result = h.write(entry_of(ex.sample_invoice_event(invoice=changed, op=Op.UPDATE,
                                                      version=2)))
    [doc] = h.report()["documents"]
    assert doc["status"] == "Open"
    assert Decimal(doc["total"]) == changed.total
    assert result.version and "batch" in h.how
    patch = next(r for r in h.sent if r.method == "PATCH")
    assert patch.headers["If-Match"].startswith('W/"')


def test_stale_etag_is_reread_once(h: Harness) -> None:
    draft = ex.sample_invoice(status=InvoiceStatus.DRAFT)
    h.write(entry_of(ex.sample_invoice_event(invoice=draft)))
    h.versions["invoice:inv1"] = 'W/"stale"'
    changed = ex.sample_invoice(status=InvoiceStatus.DRAFT, po_number="PO-77")
    h.write(entry_of(ex.sample_invoice_event(invoice=changed, op=Op.UPDATE, version=2)))
    patches = [r for r in h.sent if r.method == "PATCH"]
    assert patches[0].headers["If-Match"] == 'W/"stale"'
    assert len(patches) == 2
    invoice = next(iter(h.sandbox.company(COMPANY).invoices.values()))
    assert invoice["customerPurchaseOrderReference"] == "PO-77"


def test_posted_invoice_edit_is_cancel_and_reissue(h: Harness) -> None:
    h.write(invoice_entry())
    original = h.external_ids["invoice:inv1"]
    changed = ex.sample_invoice(lines=ex.sample_lines()[:1])
    result = h.write(entry_of(ex.sample_invoice_event(invoice=changed, op=Op.UPDATE,
                                                      version=2)))
    assert result.external_id != original
    invoices = h.sandbox.company(COMPANY).invoices
    assert invoices[original]["status"] == "Canceled"
    assert invoices[result.external_id]["status"] == "Open"
    assert Decimal(str(invoices[result.external_id]["totalAmountIncludingTax"])) == changed.total
    report = h.report()
    assert report["duplicates"]["count"] == 0
    assert Decimal(report["customers"][0]["balance"]) == changed.total
    # a status-only update (same total) is a no-op success
    same = changed.model_copy(update={"status": InvoiceStatus.PARTIALLY_PAID})
    assert h.write(entry_of(ex.sample_invoice_event(invoice=same, op=Op.UPDATE,
                                                    version=3))).already_applied
    # replaying everything with the map lost creates nothing new
    h.external_ids.clear()
    h.write(invoice_entry())
    h.write(entry_of(ex.sample_invoice_event(invoice=changed, op=Op.UPDATE, version=2)))
    assert len(invoices) == 2 and h.report()["duplicates"]["count"] == 0


def test_edit_of_paid_invoice_is_unsupported(h: Harness) -> None:
    h.write(invoice_entry())
    h.write(entry_of(ex.sample_payment_event(amount=Decimal("100.00"))))
    h.sandbox.post_payment_journal(COMPANY)
    changed = ex.sample_invoice(lines=ex.sample_lines()[:1])
    with pytest.raises(UnsupportedEventError, match="only unpaid posted invoices"):
        h.write(entry_of(ex.sample_invoice_event(invoice=changed, op=Op.UPDATE, version=2)))


def test_void_posted_invoice_cancels_with_corrective_credit_memo(h: Harness) -> None:
    h.write(invoice_entry())
    voided = ex.sample_invoice(status=InvoiceStatus.VOID)
    h.write(entry_of(ex.sample_invoice_event(invoice=voided, op=Op.UPDATE, version=2)))
    report = h.report()
    kinds = {d["kind"]: d for d in report["documents"]}
    assert kinds["invoice"]["status"] == kinds["credit_note"]["status"] == "Voided"
    company = h.sandbox.company(COMPANY)
    assert [i["status"] for i in company.invoices.values()] == ["Canceled"]
    assert [c["status"] for c in company.credit_memos.values()] == ["Corrective"]
    assert report["customers"][0]["balance"] == "0.00"
    # replaying the void is harmless
    again = h.write(entry_of(ex.sample_invoice_event(invoice=voided, op=Op.UPDATE, version=2)))
    assert again.already_applied


def test_delete_of_draft_invoice(h: Harness) -> None:
    draft = ex.sample_invoice(status=InvoiceStatus.DRAFT)
    h.write(entry_of(ex.sample_invoice_event(invoice=draft)))
    h.write(entry_of(ex.sample_invoice_event(op=Op.DELETE, version=2)))
    assert h.report()["documents"] == []


def test_payment_with_allocations_and_remainder(h: Harness) -> None:
    h.write(invoice_entry())
    h.write(invoice_entry(invoice_id="inv2"))
    total = entry_of(ex.sample_invoice_event()).event.payload.total
    payment = ex.sample_payment(amount=total + Decimal("100.00"),
                                allocations=(Allocation(invoice_id="inv1", amount=total),
                                             Allocation(invoice_id="inv2",
                                                        amount=Decimal("80.00"))))
    event = ex.sample_payment_event(payment=payment)
    result = h.write(entry_of(event))
    assert result.external_id.startswith(JOURNAL + "/")
    lines = list(h.sandbox.company(COMPANY).journal_lines.values())
    assert sorted(money for money in (line["amount"] for line in lines)) == sorted(
        [total, Decimal("80.00"), Decimal("20.00")])
    assert "batch" in h.how
    # replay (external id known) and replay without the map: no new lines
    assert h.write(entry_of(event)).already_applied
    h.external_ids.pop("payment:pay1")
    assert h.write(entry_of(event)).already_applied
    assert len(h.sandbox.company(COMPANY).journal_lines) == 3
    # a user posts the journal in BC: balances move
    assert h.sandbox.post_payment_journal(COMPANY) == 3
    report = h.report()
    assert report["duplicates"]["count"] == 0
    balances = {d["number"]: Decimal(d["balance"]) for d in report["documents"]}
    assert sorted(balances.values()) == sorted([Decimal(0), total - Decimal("80.00")])


def test_payment_drop_after_write_is_not_duplicated(h: Harness) -> None:
    h.write(invoice_entry())
    h.sandbox.faults.arm("drop_after_write", 1, COMPANY)
    h.write(entry_of(ex.sample_payment_event()))
    assert len(h.sandbox.company(COMPANY).journal_lines) == 1
    h.sandbox.post_payment_journal(COMPANY)
    assert h.report()["duplicates"]["count"] == 0


def test_payment_delete_removes_unposted_lines_only(h: Harness) -> None:
    h.write(invoice_entry())
    h.write(entry_of(ex.sample_payment_event()))
    delete = ex.sample_payment_event()
    delete = delete.model_copy(update={"op": Op.DELETE, "payload": None,
                                       "event_type": "payment.deleted",
                                       "event_id": ex.event_id_for("del")})
    h.write(entry_of(delete))
    assert h.sandbox.company(COMPANY).journal_lines == {}
    h.write(entry_of(ex.sample_payment_event(payment_id="pay2",
                                             payment=ex.sample_payment("pay2"))))
    h.sandbox.post_payment_journal(COMPANY)
    delete2 = delete.model_copy(update={"aggregate_id": "pay2",
                                        "event_id": ex.event_id_for("del2")})
    with pytest.raises(UnsupportedEventError, match="reversed in BC"):
        h.write(entry_of(delete2))


def test_payment_for_unsynced_invoice_is_reference_missing(h: Harness) -> None:
    with pytest.raises(ReferenceMissingError, match="never synced"):
        h.write(entry_of(ex.sample_payment_event()))


def test_credited_credit_note_applies_to_invoice(h: Harness) -> None:
    h.write(invoice_entry())
    entry = entry_of(ex.sample_credit_note_event())
    result = h.write(entry)
    report = h.report()
    memo = next(d for d in report["documents"] if d["kind"] == "credit_note")
    assert memo["id"] == result.external_id and memo["balance"] == "0.00"
    assert report["applications"][0]["source_kind"] == "credit_note"
    assert h.write(entry).already_applied
    assert report["duplicates"]["count"] == 0


def test_refunded_credit_note_is_unsupported_not_half_written(h: Harness) -> None:
    h.write(invoice_entry())
    sent = len(h.sent)
    with pytest.raises(UnsupportedEventError, match="no customer refund"):
        h.write(entry_of(ex.sample_credit_note_event(disposition=CreditDisposition.REFUNDED)))
    assert len(h.sent) == sent
    assert all(d["kind"] == "invoice" for d in h.report()["documents"])


def test_refund_event_is_unsupported_with_reason(h: Harness) -> None:
    with pytest.raises(UnsupportedEventError, match="no Refund document type"):
        h.write(entry_of(ex.sample_refund_event()))
    assert h.sent == []


def test_customer_update_and_deactivate(h: Harness) -> None:
    h.write(entry_of(ex.sample_customer_event()))
    renamed = ex.sample_customer(display_name="Zoë Müller")
    h.write(entry_of(ex.sample_customer_event(customer=renamed, op=Op.UPDATE, version=2)))
    [customer] = h.report()["customers"]
    assert customer["name"] == "Zoë Müller"
    h.write(entry_of(ex.sample_customer_event(op=Op.DELETE, version=3)))
    assert h.report()["customers"][0]["active"] is False


def test_closed_period_pauses_the_tenant_with_reason(h: Harness) -> None:
    h.sandbox.lock_period(COMPANY, ex.sample_invoice().issue_date)
    with pytest.raises(ConfigurationError, match="closed period") as info:
        h.write(invoice_entry())
    assert info.value.vendor_code == "Application_DialogException"
    assert info.value.action.value == "pause_tenant"


def test_throttling_surfaces_retry_after() -> None:
    sandbox = BusinessCentralSandbox(clock=ManualClock(), per_five_minutes=2)
    sandbox.configure(COMPANY, tax_rates=TAX)
    with sandbox.client(sandbox.issue_tokens().access_token) as client:
        harness = Harness(sandbox, client, validate=False)
        with pytest.raises(RateLimitedError) as info:
            FlowRunner(BusinessCentral(), harness).write(invoice_entry(),
                                                         harness.context(invoice_entry()))
    assert info.value.retry_after == 300 and info.value.vendor_code == (
        "Application_TooManyRequests")


def test_expired_token_is_auth_error(h: Harness) -> None:
    h.sandbox.tokens.expire_access_tokens()
    with pytest.raises(SinkError) as info:
        FlowRunner(BusinessCentral(), h).write(invoice_entry(), h.context(invoice_entry()))
    assert info.value.action.value == "refresh_auth"


def test_spec_catches_an_overlong_external_document_number() -> None:
    if not SPEC.exists():
        pytest.skip(f"vendor spec folder absent: {SPEC.parent}")
    from openapi_core.exceptions import OpenAPIError

    bad = PlatformRequest("POST", f"companies({COMPANY})/salesInvoices", "create invoice",
                          headers={"Content-Type": "application/json"},
                          json={"externalDocumentNumber": "X" * 36, "customerId": COMPANY})
    with pytest.raises(OpenAPIError):
        validate_against_spec(bad)


def test_schema_validation_rejects_overlong_payment_document_number() -> None:
    if not SPEC.exists():
        pytest.skip(f"vendor spec folder absent: {SPEC.parent}")
    import jsonschema

    with pytest.raises(jsonschema.ValidationError, match="too long"):
        _schema_validator("customerPayment").validate({"documentNumber": "X" * 21})
    with pytest.raises(jsonschema.ValidationError):
        _schema_validator("customerPayment").validate({"postingDate": "2025-13-45"})


def test_spec_refuses_undeclared_fields_and_keeps_v2_corrections() -> None:
    if not SPEC.exists():
        pytest.skip(f"vendor spec folder absent: {SPEC.parent}")
    typo = PlatformRequest("POST", f"companies({COMPANY})/customers", "create customer",
                           headers={"Content-Type": "application/json"},
                           json={"displayName": "x", "emailAddress": "a@b.c"})
    with pytest.raises(SpecViolation, match="emailAddress"):
        validate_against_spec(typo)
    import yaml

    raw = yaml.safe_load(SPEC.read_text())["components"]["schemas"]
    for name, fields in V2_DATE_FIELDS.items():
        assert all(raw[name]["properties"][f]["format"] == "date-time" for f in fields)


def test_payment_delete_whose_response_was_lost_is_already_applied(h: Harness) -> None:
    h.write(invoice_entry())
    h.write(entry_of(ex.sample_payment_event()))
    delete = ex.sample_payment_event().model_copy(update={
        "op": Op.DELETE, "payload": None, "event_type": "payment.deleted",
        "event_id": ex.event_id_for("del")})
    h.sandbox.faults.arm("drop_after_write", 1, COMPANY)  # the delete $batch's answer
    assert h.write(entry_of(delete)).external_id
    assert h.sandbox.company(COMPANY).journal_lines == {}
