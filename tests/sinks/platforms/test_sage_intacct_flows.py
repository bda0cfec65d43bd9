"""Sage Intacct flows end to end: FlowRunner → HttpExecutor (with the body-session
authenticator of ``sinks.transport.xmlapi``) → the Intacct sandbox over HTTP.

Every request the platform builds is validated against the vendor's ``api.xsd``
before it leaves (the executor's ``client`` carries a validating event hook).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from schemas.examples import (
    sample_credit_note_event,
    sample_customer_event,
    sample_invoice,
    sample_invoice_event,
    sample_ledger_entry,
    sample_payment_event,
    sample_refund_event,
    sample_tax_rate_event,
)
from schemas.models import CreditDisposition, FinancialEvent, InvoiceStatus, Op
from sinks.core.contract import FlowRunner, PlatformRequest, SinkContext, WriteResult
from sinks.core.errors import (
    ConfigurationError,
    TransientError,
    UnsupportedEventError,
)
from sinks.core.mapping import TenantConfig
from sinks.core.references import KIND_BY_AGGREGATE
from sinks.platforms.sage_intacct import SageIntacct
from sinks.platforms.sage_intacct.spec import GATEWAY_PATH
from sinks.sandbox.core import ManualClock, SyncASGITransport
from sinks.sandbox.sage_intacct import IntacctSandbox
from sinks.transport.http import HttpExecutor, SinkMetrics, make_client
from sinks.transport.retry import RetryPolicy
from sinks.transport.xmlapi import BodySessionAuth, login_envelope, session_of, xml_request
from tests.sinks.contract.harness_sage_intacct import MAPPING, XSD, intacct_schema

COMPANY = "ACME"
pytestmark = pytest.mark.skipif(not XSD.exists(),
                                reason="vendor spec /work/shared/specs/sage-intacct absent")


def _validating_hook(request: httpx.Request) -> None:
    """Request hooks run when the request is sent, after the authenticator stamped the
    credentials, so this validates the body exactly as it goes out (login included)."""
    if request.url.path == GATEWAY_PATH:
        intacct_schema().validate(request.read().decode())


class Books:
    def __init__(self, sandbox: IntacctSandbox, *, retries: int = 4) -> None:
        self.sandbox = sandbox
        sandbox.company(COMPANY)
        self.tenant = TenantConfig(tenant_id="t1", platform="sage-intacct",
                                   settings={"sender_id": sandbox.sender_id,
                                             "company_id": COMPANY}, mapping=MAPPING)
        self.logins = 0
        self.auth = BodySessionAuth(login=self._login, parse_session=self._session,
                                    sender_password=SecretStr(sandbox.sender_password),
                                    platform="sage-intacct")
        client = make_client(base_url="http://sandbox.local",
                             transport=SyncASGITransport(sandbox.app))
        client.event_hooks["request"] = [_validating_hook]
        self.platform = SageIntacct()
        self.executor = HttpExecutor(
            platform="sage-intacct", tenant_id="t1", client=client, auth=self.auth,
            retry=RetryPolicy(max_attempts=retries, base_delay=0), sleep=lambda _: None,
            classify=self.platform.classify_error, metrics=SinkMetrics(CollectorRegistry()))
        self.ids: dict[str, str] = {}
        self.sent: list[PlatformRequest] = []

    def _login(self) -> PlatformRequest:
        self.logins += 1
        root = login_envelope(sender_id=self.sandbox.sender_id,
                              sender_password=self.sandbox.sender_password, user_id="ws_user",
                              company_id=COMPANY, user_password=self.sandbox.user_password,
                              control_id=f"login-{self.logins}")
        return xml_request(GATEWAY_PATH, root, purpose="login")

    @staticmethod
    def _session(response: Any) -> str:
        return session_of(response)

    def transport(self, request: PlatformRequest) -> Any:
        self.sent.append(request)
        return self.executor.send(request)

    def write(self, event: FinancialEvent, kind: str | None = None) -> WriteResult:
        context = SinkContext(tenant_id="t1", event_id=event.event_id, tenant=self.tenant,
                              external_ids=dict(self.ids))
        result = FlowRunner(self.platform, self.transport).write(sample_ledger_entry(event),
                                                                 context)
        own = kind or KIND_BY_AGGREGATE[event.aggregate_type.value]
        self.ids[f"{own}:{event.aggregate_id}"] = result.external_id
        self.ids.update(result.related)
        return result

    def report(self) -> dict[str, Any]:
        return self.sandbox.ledger_report(COMPANY)

    def purposes(self) -> list[str]:
        return [r.purpose for r in self.sent]


@pytest.fixture
def books() -> Books:
    return Books(IntacctSandbox(clock=ManualClock()))


def _invoice(books: Books, **kwargs: Any) -> WriteResult:
    return books.write(sample_invoice_event(**kwargs))


def test_invoice_create_logs_in_and_writes(books: Books) -> None:
    result = _invoice(books)
    assert books.logins == 1
    assert books.ids["customer:c1"] == "c1"
    doc = books.report()["documents"][0]
    assert doc["id"] == result.external_id and doc["total"] == "288.91"
    assert books.purposes() == ["create customer", "find arinvoice", "create invoice"]


def test_expired_session_in_http_200_is_refreshed_by_the_executor(books: Books) -> None:
    _invoice(books)
    books.sandbox.clock.advance(IntacctSandbox.SESSION_LIFETIME + 1)  # type: ignore[attr-defined]
    books.write(sample_payment_event(amount=Decimal("100.00")), "payment")
    assert books.logins == 2
    assert books.report()["documents"][0]["balance"] == "188.91"


def test_lost_response_resent_with_same_controlid_then_looked_up(books: Books) -> None:
    _invoice(books)
    books.sandbox.faults.arm("drop_after_write", 1, COMPANY)
    result = books.write(sample_payment_event(amount=Decimal("100.00")), "payment")
    creates = [r for r in books.sent if r.purpose == "create payment"]
    assert len(creates) == 1, "one PlatformRequest, re-sent by the executor"
    assert books.purposes()[-1] == "find arpymt"  # the rejection carried no key
    assert result.already_applied
    report = books.report()
    assert report["duplicates"]["count"] == 0
    assert [p["id"] for p in report["payments"]] == [result.external_id]


def test_lost_invoice_response_found_by_number(books: Books) -> None:
    books.sandbox.faults.arm("drop_after_write", 1, COMPANY)
    books.write(sample_customer_event(), "customer")
    books.sandbox.faults.arm("drop_after_write", 1, COMPANY)
    result = _invoice(books)
    assert result.already_applied and result.external_id
    assert len(books.report()["documents"]) == 1


def test_replay_without_id_map_creates_nothing(books: Books) -> None:
    event = sample_invoice_event()
    first = books.write(event)
    books.ids.clear()
    again = books.write(event)
    assert again.external_id == first.external_id and again.already_applied
    assert books.report()["duplicates"]["count"] == 0


def test_edit_rewrites_lines_in_place(books: Books) -> None:
    first = _invoice(books)
    invoice = sample_invoice()
    bigger = invoice.model_copy(update={"lines": invoice.lines[:1], "tax_lines": (),
                                        "total": invoice.lines[0].amount})
    result = books.write(sample_invoice_event(op=Op.UPDATE, version=2, invoice=bigger))
    assert result.external_id == first.external_id
    doc = books.report()["documents"][0]
    assert Decimal(doc["total"]) == invoice.lines[0].amount


def test_void_reverses_and_is_idempotent(books: Books) -> None:
    _invoice(books)
    voided = sample_invoice().model_copy(update={"status": InvoiceStatus.VOID})
    event = sample_invoice_event(event_type="invoice.voided", version=2, invoice=voided)
    books.write(event)
    assert books.report()["documents"][0]["status"] == "VOIDED"
    assert books.write(event).already_applied


def test_void_after_payment_is_a_documented_limitation(books: Books) -> None:
    _invoice(books)
    books.write(sample_payment_event(amount=Decimal("10.00")), "payment")
    voided = sample_invoice().model_copy(update={"status": InvoiceStatus.VOID})
    with pytest.raises(UnsupportedEventError,
                       match="reverses only invoices without payments") as raised:
        books.write(sample_invoice_event(event_type="invoice.voided", version=2,
                                         invoice=voided))
    assert raised.value.vendor_code == "BL03002147"
    # the flow saw the payment on the invoice and sent no doomed reversal
    assert "reverse invoice" not in books.purposes()
    assert books.report()["documents"][0]["status"] != "VOIDED"


def test_credit_note_applied_to_its_invoice(books: Books) -> None:
    _invoice(books)
    books.write(sample_credit_note_event(), "credit_note")
    report = books.report()
    credit = next(d for d in report["documents"] if d["kind"] == "credit_note")
    assert credit["balance"] == "0.00"
    assert [a["source_kind"] for a in report["applications"]] == ["credit_note"]


@pytest.mark.parametrize("make", [
    lambda: sample_refund_event(),
    lambda: sample_credit_note_event(disposition=CreditDisposition.REFUNDED),
    lambda: sample_tax_rate_event(),
])
def test_unrepresentable_events_are_unsupported(books: Books,
                                                make: Callable[[], FinancialEvent]) -> None:
    _invoice(books)
    with pytest.raises(UnsupportedEventError):
        books.write(make())


def test_closed_period_pauses_the_tenant(books: Books) -> None:
    books.write(sample_customer_event(), "customer")
    books.sandbox.lock_period(COMPANY, sample_invoice().issue_date)
    with pytest.raises(ConfigurationError, match="closed") as caught:
        _invoice(books)
    assert caught.value.action.value == "pause_tenant"


def test_inactive_customer_is_reactivated(books: Books) -> None:
    _invoice(books)
    books.sandbox.deactivate_customer(COMPANY, "c1")
    result = _invoice(books, invoice_id="inv2", invoice=sample_invoice(
        "inv2", "c1", number="INV-0002"))
    assert any("reactivated" in n for n in result.raw["notes"])
    assert books.sandbox.company(COMPANY).customers["c1"]["status"] == "active"


def test_throttle_is_retried_after_retry_after(books: Books) -> None:
    books.sandbox.faults.arm("rate_limit", 1, COMPANY)
    _invoice(books)
    assert len(books.report()["documents"]) == 1


def test_keyless_transient_failure_is_not_resent(books: Books) -> None:
    """Reads carry their controlid as key; the login is sent once per refresh. A 5xx
    on a write with a key is retried; exhausting retries raises TransientError."""
    books.sandbox.faults.arm("server_error", None, COMPANY, status=503)
    with pytest.raises(TransientError):
        _invoice(books)
    books.sandbox.faults.clear()
    _invoice(books)
    assert books.report()["duplicates"]["count"] == 0
