"""Acumatica (MYOB Acumatica / Advanced) sink, contract-based REST ``Default/24.200.001``.

Delivery guarantee: **effectively once** by *upsert by key and lookup by reference
before create*; Acumatica has no idempotency key.

* Customers are written with ``PUT /Customer`` keyed by ``CustomerID`` (derived from the
  CRM id): an upsert by key, idempotent by nature.
* Invoices and credit memos get an auto-numbered ``ReferenceNbr``, so before inserting
  one the flow searches ``$filter=Type eq '…' and CustomerOrder eq '<CRM id>'``; the
  CRM id travels in ``CustomerOrder``. Payments and refunds are found by
  ``ExternalRef`` (= CRM payment id) the same way. A retry after a lost response
  therefore finds the document and does not insert a second one. The remaining window
  is two writers inserting the same document concurrently, which the runner's
  one-writer-per-partition rule excludes.
* Release (``ReleaseInvoice``/``ReleasePayment``, 202 + ``Location`` polled until 204)
  is skipped when the document's ``Status`` shows it already released.
* Updates compare ``LastModifiedDateTime`` with the value stored after our last write
  (Acumatica has no ETag on this endpoint) and refuse to overwrite a bookkeeper's edit.

Supported: customers (create, update, deactivate on delete: ``Status = Inactive``),
invoices (create on hold for drafts, release, update while unreleased, delete while
unreleased), payments with applications (and the processor fee as a bank charge),
payment deletion (delete unreleased, ``VoidPayment`` released), refunds (``Refund``
applied to credit memos or the refunded payment), credit notes as ``Credit Memo``
(CREDITED: applied to invoices; REFUNDED: a ``Refund`` applied to the memo).
Unsupported, raising :class:`UnsupportedEventError`: voiding or editing a *released*
invoice (Acumatica only reverses released documents with a credit memo, which needs a
person to decide), tips (an AR payment has no income line), tax-rate events, editing an
issued credit memo.

A customer made inactive in Acumatica behind our back (a document PUT answers 422
"The customer status is 'Inactive'") is reactivated (``Status = Active``) when the
CRM still has it active, and the document is sent again once; the result's
``raw["notes"]`` says so. A closed financial period pauses the tenant
(:class:`ConfigurationError`): every document dated in it would fail the same way
until someone reopens the period.

Authentication is a cookie session (``POST /entity/auth/login``; every session holds
one of the licence's API-user seats, so the sink logs out on shutdown):
:func:`login_request` / :func:`logout_request` build those requests for
``sinks.transport.auth.SessionAuth``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from schemas.models import (
    AggregateType,
    CreditDisposition,
    CreditNote,
    Customer,
    Invoice,
    InvoiceStatus,
    Op,
    Payment,
    PaymentKind,
    PaymentMethod,
)
from sinks.core.contract import (
    Flow,
    LedgerEntry,
    Platform,
    PlatformRequest,
    PlatformResponse,
    PlatformSpec,
    RateLimitPolicy,
    RateWindow,
    SinkContext,
    WireProtocol,
    WriteResult,
)
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    SinkError,
    TransientError,
    UnsupportedEventError,
    parse_retry_after,
)
from sinks.platforms.acumatica import mapping as m
from sinks.platforms.registry import register
from sinks.transport.session_rest import (
    await_operation,
    error_entries,
    field_errors,
    lookup_one,
    unwrap_values,
    wrap_values,
)

NAME = "acumatica"

#: Licence-dependent; these are the common "small licence" figures (see docs).
RATE_LIMIT = RateLimitPolicy((RateWindow(100, 60),), concurrency=2, default_retry_after=30)

MAX_NAME_LENGTHS = {
    "customer.id": 10,
    "customer.name": 255,
    "invoice.customer_order": 40,
    "description": 256,
    "payment.ref": 40,
}

#: Statuses of a released AR document.
RELEASED = frozenset({"Open", "Closed", "Voided", "Reserved", "Pending Print",
                      "Pending Email", "Canceled"})

#: Fields whose rejection means the tenant mapping/settings name a missing record.
MAPPING_FIELDS = ("Account", "CashAccount", "TaxID", "TaxCategory", "PaymentMethod",
                  "CustomerClass", "Branch", "EntryTypeID", "Subaccount")
REFERENCE_FIELDS = ("Customer", "CustomerID", "DocumentsToApply")


class AcumaticaSettings(BaseModel):
    """``settings`` of an Acumatica tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``https://<instance>`` (the base URL is ``{instance_url}/entity/{endpoint}/{version}``).
    instance_url: str = Field(min_length=1)
    endpoint: str = "Default"
    version: str = "24.200.001"
    company: str = Field(min_length=1)
    branch: str | None = None
    customer_id_prefix: str = "C"
    customer_class: str | None = None
    taxable_category: str = "TAXABLE"
    exempt_category: str = "EXEMPT"
    #: Bank-charge entry type for processor fees (``Payment.Charges``).
    fee_entry_type: str = "BANKFEE"
    #: CRM payment method → Acumatica PaymentMethod id.
    payment_methods: dict[str, str] = Field(default_factory=lambda: {
        "CARD": "CREDITCARD", "CASH": "CASH", "CHECK": "CHECK", "BANK_TRANSFER": "EFT",
        "FINANCING": "OTHER", "OTHER": "OTHER"})

    @property
    def base_url(self) -> str:
        return f"{self.instance_url.rstrip('/')}/entity/{self.endpoint}/{self.version}"


def login_request(settings: AcumaticaSettings, username: str, password: str
                  ) -> PlatformRequest:
    """The session login (absolute URL: it is outside the endpoint's base)."""
    body = {"name": username, "password": password, "company": settings.company}
    if settings.branch:
        body["branch"] = settings.branch
    return PlatformRequest("POST", f"{settings.instance_url.rstrip('/')}/entity/auth/login",
                           "login", json=body)


def logout_request(settings: AcumaticaSettings) -> PlatformRequest:
    return PlatformRequest("POST", f"{settings.instance_url.rstrip('/')}/entity/auth/logout",
                           "logout")


def _limits() -> m.Limits:
    return m.Limits(customer_id=MAX_NAME_LENGTHS["customer.id"],
                    customer_name=MAX_NAME_LENGTHS["customer.name"],
                    customer_order=MAX_NAME_LENGTHS["invoice.customer_order"],
                    description=MAX_NAME_LENGTHS["description"],
                    payment_ref=MAX_NAME_LENGTHS["payment.ref"])


def _key(doc_type: str, nbr: str) -> str:
    return f"{doc_type}/{nbr}"


def _split(external_id: str) -> tuple[str, str]:
    doc_type, _, nbr = external_id.partition("/")
    return doc_type, nbr


def _path(entity: str, external_id: str) -> str:
    doc_type, nbr = _split(external_id)
    return f"/{entity}/{quote(doc_type)}/{quote(nbr)}"


def _relative(location: str) -> str:
    """A ``Location`` of the same endpoint as a path relative to the tenant's base URL
    (``/entity/Default/24.200.001/Invoice/…/status/…`` → ``/Invoice/…/status/…``);
    anything else is left absolute."""
    match = re.match(r"^(?:https?://[^/]+)?/entity/(?!auth/)[^/]+/[^/]+(/.*)$", location)
    return match.group(1) if match else location


def _odata(value: str) -> str:
    return value.replace("'", "''")


@register
class Acumatica(Platform):
    """The Acumatica platform: routes each event to a flow (see :data:`ROUTES`)."""

    spec: ClassVar[PlatformSpec] = PlatformSpec(
        name=NAME,
        display_name="Acumatica (contract-based REST)",
        protocol=WireProtocol.REST_JSON,
        supports_idempotency_key=False,
        supports_upsert=True,
        supports_void=True,
        max_batch_size=1,
        multi_currency=True,
        partial_payments=True,
        rate_limit=RATE_LIMIT,
        max_name_lengths=MAX_NAME_LENGTHS,
        settings_model=AcumaticaSettings,
        guards_edits=True,
    )

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _request(method: str, path: str, purpose: str, *, json: Any = None,
                 query: dict[str, str] | None = None, accept: frozenset[int] = frozenset()
                 ) -> PlatformRequest:
        return PlatformRequest(method, path, purpose, query=query or {}, json=json,
                               headers={"Accept": "application/json"}, accept_statuses=accept)

    def _put(self, entity: str, body: dict[str, Any], purpose: str) -> Flow[dict[str, Any]]:
        response = yield self._request("PUT", f"/{entity}", purpose, json=wrap_values(body))
        record: dict[str, Any] = unwrap_values(response.json())
        return record

    def _put_for_customer(self, entity: str, body: dict[str, Any], purpose: str,
                          entry: LedgerEntry, crm_customer: str, customer_key: str,
                          notes: list[str]) -> Flow[dict[str, Any]]:
        """PUT a customer's document. Refused because the customer was made inactive in
        Acumatica behind our back: reactivate it (see :meth:`_reactivate`) and send the
        document again, once."""
        response = yield self._request("PUT", f"/{entity}", purpose, json=wrap_values(body),
                                       accept=frozenset({422}))
        if response.status == 422:
            if not _customer_inactive(response):
                raise self._raise(response)
            yield from self._reactivate(entry, crm_customer, customer_key, notes)
            response = yield self._request("PUT", f"/{entity}", f"{purpose} (after "
                                           "reactivating the customer)",
                                           json=wrap_values(body))
        record: dict[str, Any] = unwrap_values(response.json())
        return record

    def _reactivate(self, entry: LedgerEntry, crm_customer: str, customer_key: str,
                    notes: list[str]) -> Flow[None]:
        """Make an inactive Acumatica customer active again if the CRM says it is active
        (the CRM bills them, so Acumatica's status is stale); otherwise say why not."""
        customer = entry.customer
        if not isinstance(customer, Customer) or customer.id != crm_customer:
            raise ReferenceMissingError(
                f"customer {customer_key} is inactive in Acumatica and the entry carries no "
                "CRM snapshot saying whether it should be active", platform=NAME,
                vendor_code="CustomerInactive")
        if not customer.active:
            raise PayloadRejectedError(
                f"customer {crm_customer} is inactive in both the CRM and Acumatica "
                f"({customer_key}); reactivate it before posting documents to it",
                platform=NAME, vendor_code="CustomerInactive")
        yield from self._put("Customer", {"CustomerID": customer_key, "Status": "Active"},
                             "reactivate customer")
        notes.append(f"customer {crm_customer} was inactive in Acumatica ({customer_key}); "
                     "reactivated")

    def _raise(self, response: PlatformResponse) -> SinkError:
        return self.classify_error(response) or PayloadRejectedError(
            f"unexpected HTTP {response.status}", platform=NAME, status=response.status)

    def _get(self, entity: str, external_id: str, purpose: str
             ) -> Flow[dict[str, Any] | None]:
        response = yield self._request("GET", _path(entity, external_id), purpose,
                                       accept=frozenset({404}))
        if response.status == 404:
            return None
        record: dict[str, Any] = unwrap_values(response.json())
        return record

    def _find(self, entity: str, doc_type: str, field: str, value: str
              ) -> Flow[dict[str, Any] | None]:
        request = self._request("GET", f"/{entity}", f"find {entity.lower()}", query={
            "$filter": f"Type eq '{_odata(doc_type)}' and {field} eq '{_odata(value)}'"})
        found = yield from lookup_one(
            request, lambda r: unwrap_values(r).get(field) == value,
            what=f"{entity} {doc_type} {field} {value!r}", platform=NAME)
        return None if found is None else dict(unwrap_values(found))

    def _release(self, entity: str, action: str, record: dict[str, Any]) -> Flow[None]:
        if record.get("Status") in RELEASED or record.get("Hold"):
            return None
        start = self._request("POST", f"/{entity}/{action}", action.lower(), json={
            "entity": wrap_values({"Type": record["Type"],
                                   "ReferenceNbr": record["ReferenceNbr"]})})
        yield from await_operation(
            start, lambda location: self._request("GET", _relative(location),
                                                  f"{action.lower()} status"),
            platform=NAME)
        return None

    @staticmethod
    def _result(record: dict[str, Any], notes: list[str] | None = None, **extra: Any
                ) -> WriteResult:
        raw = {**record, "notes": notes} if notes else record
        return WriteResult(external_id=_key(record["Type"], record["ReferenceNbr"]),
                           version=record.get("LastModifiedDateTime"),
                           document_number=record["ReferenceNbr"], raw=raw, **extra)

    # ------------------------------------------------------------------ entry point

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        route = ROUTES.get((event.aggregate_type, event.op))
        if route is None:
            raise UnsupportedEventError(
                UNSUPPORTED.get(event.aggregate_type,
                                f"{event.event_type} has no Acumatica equivalent"),
                platform=NAME)
        return route(self, entry, context)

    # ------------------------------------------------------------------ customers

    def _customer_key(self, customer_id: str, context: SinkContext) -> str:
        prefix = self.tenant_settings(context, AcumaticaSettings).customer_id_prefix
        return m.customer_key(customer_id, prefix, _limits())

    def _customer_id(self, entry: LedgerEntry, customer_id: str, context: SinkContext
                     ) -> Flow[str]:
        known = context.external_ids.get(f"customer:{customer_id}")
        if known:
            return known
        customer = entry.customer
        if not isinstance(customer, Customer) or customer.id != customer_id:
            raise ReferenceMissingError(
                f"customer {customer_id!r} is not in Acumatica and the entry carries no "
                "snapshot to create it from", platform=NAME)
        record = yield from self._put("Customer", self._customer_body(customer, context),
                                      "upsert customer")
        return str(record["CustomerID"])

    def _customer_body(self, customer: Customer, context: SinkContext) -> dict[str, Any]:
        settings = self.tenant_settings(context, AcumaticaSettings)
        return m.customer_body(customer, self._customer_key(customer.id, context),
                               settings.customer_class, _limits())

    def _customer_upsert(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        customer: Customer = entry.event.payload
        record = yield from self._put("Customer", self._customer_body(customer, context),
                                      "upsert customer")
        key = str(record["CustomerID"])
        return WriteResult(external_id=key, version=record.get("LastModifiedDateTime"),
                           document_number=key, raw=record,
                           related={f"customer:{customer.id}": key})

    def _customer_deactivate(self, entry: LedgerEntry, context: SinkContext
                             ) -> Flow[WriteResult]:
        key = (context.external_ids.get(f"customer:{entry.event.aggregate_id}")
               or self._customer_key(entry.event.aggregate_id, context))
        record = yield from self._put("Customer", {"CustomerID": key, "Status": "Inactive"},
                                      "deactivate customer")
        return WriteResult(external_id=str(record["CustomerID"]),
                           version=record.get("LastModifiedDateTime"), raw=record)

    # ------------------------------------------------------------------ documents

    def _exempt(self, entry: LedgerEntry) -> bool:
        return bool(entry.customer is not None and entry.customer.tax_exempt)

    def _taxes(self, context: SinkContext) -> m.Taxes:
        settings = self.tenant_settings(context, AcumaticaSettings)
        return m.Taxes(settings.taxable_category, settings.exempt_category)

    def _invoice_write(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        invoice: Invoice = entry.event.payload
        if invoice.status is InvoiceStatus.VOID:
            return (yield from self._invoice_delete(entry, context))
        customer = yield from self._customer_id(entry, invoice.customer_id, context)
        related = {f"customer:{invoice.customer_id}": customer}
        mapping = self.tenant_config(context).mapping
        key = f"invoice:{invoice.id}"
        known = context.external_ids.get(key)
        current = (yield from self._get("Invoice", known, "get invoice")) if known else (
            yield from self._find("Invoice", m.INVOICE, "CustomerOrder", invoice.id))
        nbr = current["ReferenceNbr"] if current else None
        body = m.document_body(invoice, customer, mapping, self._taxes(context),
                               exempt=self._exempt(entry), limits=_limits(), reference_nbr=nbr)
        if current is not None:
            if _same(current, body):
                yield from self._release("Invoice", "ReleaseInvoice", current)
                return self._result(current, already_applied=True, related=related)
            if current.get("Status") in RELEASED:
                raise UnsupportedEventError(
                    f"invoice {invoice.number} is released in Acumatica ({current['Status']}); "
                    "released documents cannot be edited, reverse it with a credit memo",
                    platform=NAME)
            version = context.versions.get(key)
            if known and version and current.get("LastModifiedDateTime") != version:
                raise PayloadRejectedError(
                    f"invoice {nbr} was changed in Acumatica at "
                    f"{current.get('LastModifiedDateTime')} after our last write ({version}); "
                    "refusing to overwrite a bookkeeper's edit",
                    platform=NAME, vendor_code="StaleVersion")
        notes: list[str] = []
        record = yield from self._put_for_customer("Invoice", body, "upsert invoice", entry,
                                                   invoice.customer_id, customer, notes)
        yield from self._release("Invoice", "ReleaseInvoice", record)
        final = yield from self._get("Invoice", _key(record["Type"], record["ReferenceNbr"]),
                                     "get invoice")
        return self._result(final or record, notes, related=related)

    def _invoice_delete(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        known = context.external_ids.get(f"invoice:{entry.event.aggregate_id}")
        if not known:
            raise ReferenceMissingError(
                f"invoice {entry.event.aggregate_id!r} was voided or deleted but never "
                "reached Acumatica", platform=NAME)
        current = yield from self._get("Invoice", known, "get invoice")
        if current is None:
            return WriteResult(external_id=known, already_applied=True)
        if current.get("Status") in RELEASED:
            raise UnsupportedEventError(
                f"invoice {current['ReferenceNbr']} is released ({current['Status']}); "
                "Acumatica cannot void a released AR invoice through the contract API, "
                "reverse it with a credit memo", platform=NAME)
        yield self._request("DELETE", _path("Invoice", known), "delete invoice",
                            accept=frozenset({404}))
        return WriteResult(external_id=known)

    # ------------------------------------------------------------------ payments

    def _applications(self, context: SinkContext, payment: Payment
                      ) -> Flow[list[tuple[str, str, Decimal]]]:
        """``(DocType, ReferenceNbr, amount)`` to apply; an application beyond the
        invoice's balance (an over-payment) is capped at it, the rest stays unapplied."""
        out: list[tuple[str, str, Decimal]] = []
        refund = payment.kind is PaymentKind.REFUND
        for allocation in payment.allocations:
            target = context.external_ids.get(
                f"{'credit_note' if refund else 'invoice'}:{allocation.invoice_id}")
            if target is None and refund:
                raise UnsupportedEventError(
                    f"refund {payment.number} re-opens invoice {allocation.invoice_id!r}; "
                    "Acumatica refunds apply to credit memos or payments, so the original "
                    "payment's application must be reversed in Acumatica first",
                    platform=NAME)
            if target is None:
                raise ReferenceMissingError(
                    f"payment {payment.number} applies to invoice {allocation.invoice_id!r}, "
                    "which has not reached Acumatica", platform=NAME)
            doc_type, nbr = _split(target)
            amount = m.cents(allocation.amount)
            if not refund:
                document = yield from self._get("Invoice", target, "get invoice")
                balance = Decimal(str((document or {}).get("Balance", 0)))
                amount = min(amount, balance)
            if amount > 0:
                out.append((doc_type, nbr, amount))
        if payment.kind is PaymentKind.REFUND and not out and payment.refund_of:
            original = context.external_ids.get(f"payment:{payment.refund_of}")
            if original is None:
                raise ReferenceMissingError(
                    f"refund {payment.number} refunds payment {payment.refund_of!r}, which has "
                    "not reached Acumatica", platform=NAME)
            doc_type, nbr = _split(original)
            out.append((doc_type, nbr, m.cents(payment.amount)))
        return out

    def _method(self, context: SinkContext, method: PaymentMethod) -> str:
        methods = self.tenant_settings(context, AcumaticaSettings).payment_methods
        if method.value not in methods:
            raise ConfigurationError(
                f"tenant {context.tenant_id!r} has no Acumatica payment method for "
                f"{method.value} (settings.payment_methods)", platform=NAME)
        return methods[method.value]

    def _payment_write(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        payment: Payment = entry.event.payload
        if payment.tip > 0:
            raise UnsupportedEventError(
                f"payment {payment.number} includes a tip of {payment.tip}; an Acumatica AR "
                "payment has no income line for it (record tips as a cash sale)",
                platform=NAME)
        customer = yield from self._customer_id(entry, payment.customer_id, context)
        related = {f"customer:{payment.customer_id}": customer}
        doc_type = m.REFUND if payment.kind is PaymentKind.REFUND else m.PAYMENT
        known = context.external_ids.get(f"payment:{payment.id}")
        current = (yield from self._get("Payment", known, "get payment")) if known else (
            yield from self._find("Payment", doc_type, "ExternalRef", payment.id))
        if current is not None:
            yield from self._release("Payment", "ReleasePayment", current)
            return self._result(current, already_applied=True, related=related)
        mapping = self.tenant_config(context).mapping
        applications = yield from self._applications(context, payment)
        fee_entry_type = self.tenant_settings(context, AcumaticaSettings).fee_entry_type
        body = m.payment_body(
            payment, customer, mapping.deposit_account(payment.method.value),
            self._method(context, payment.method), applications,
            limits=_limits(), fee_entry_type=fee_entry_type)
        notes: list[str] = []
        record = yield from self._put_for_customer("Payment", body, f"create {doc_type.lower()}",
                                                   entry, payment.customer_id, customer, notes)
        yield from self._release("Payment", "ReleasePayment", record)
        return self._result(record, notes, related=related)

    def _payment_delete(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        known = context.external_ids.get(f"payment:{entry.event.aggregate_id}")
        if not known:
            raise ReferenceMissingError(
                f"payment {entry.event.aggregate_id!r} was deleted but never reached "
                "Acumatica", platform=NAME)
        current = yield from self._get("Payment", known, "get payment")
        if current is None or current.get("Status") == "Voided":
            return WriteResult(external_id=known, already_applied=True)
        if current.get("Status") in RELEASED:
            yield from await_operation(
                self._request("POST", "/Payment/VoidPayment", "voidpayment", json={
                    "entity": wrap_values({"Type": current["Type"],
                                           "ReferenceNbr": current["ReferenceNbr"]})}),
                lambda location: self._request("GET", _relative(location),
                                               "voidpayment status"),
                platform=NAME)
        else:
            yield self._request("DELETE", _path("Payment", known), "delete payment",
                                accept=frozenset({404}))
        return WriteResult(external_id=known)

    # ------------------------------------------------------------------ credit notes

    def _credit_note_write(self, entry: LedgerEntry, context: SinkContext
                           ) -> Flow[WriteResult]:
        note: CreditNote = entry.event.payload
        customer = yield from self._customer_id(entry, note.customer_id, context)
        related = {f"customer:{note.customer_id}": customer}
        known = context.external_ids.get(f"credit_note:{note.id}")
        current = (yield from self._get("Invoice", known, "get credit memo")) if known else (
            yield from self._find("Invoice", m.CREDIT_MEMO, "CustomerOrder", note.id))
        if current is not None and known and entry.event.op is Op.UPDATE:
            raise UnsupportedEventError(
                f"credit note {note.number} is already in Acumatica; issued credit memos are "
                "not edited by this sink", platform=NAME)
        notes: list[str] = []
        if current is None:
            body = m.document_body(note, customer, self.tenant_config(context).mapping,
                                   self._taxes(context), exempt=self._exempt(entry),
                                   limits=_limits())
            current = yield from self._put_for_customer("Invoice", body, "create credit memo",
                                                        entry, note.customer_id, customer,
                                                        notes)
        yield from self._release("Invoice", "ReleaseInvoice", current)
        memo = (yield from self._get("Invoice", _key(current["Type"], current["ReferenceNbr"]),
                                     "get credit memo")) or current
        nbr = str(memo["ReferenceNbr"])
        untouched = Decimal(str(memo.get("Balance", 0))) == Decimal(str(memo.get("Amount", 0)))
        if note.disposition is CreditDisposition.CREDITED and note.allocations and untouched:
            targets = []
            for allocation in note.allocations:
                invoice = context.external_ids.get(f"invoice:{allocation.invoice_id}")
                if invoice is None:
                    raise ReferenceMissingError(
                        f"credit note {note.number} applies to invoice "
                        f"{allocation.invoice_id!r}, which has not reached Acumatica",
                        platform=NAME)
                targets.append((_split(invoice)[1], m.cents(allocation.amount)))
            application = yield from self._put(
                "Payment", m.credit_application_body(nbr, customer, targets),
                "apply credit memo")
            yield from self._release("Payment", "ReleasePayment", application)
        elif note.disposition is CreditDisposition.REFUNDED and untouched:
            refund = yield from self._find("Payment", m.REFUND, "ExternalRef", note.id)
            if refund is None:
                mapping = self.tenant_config(context).mapping
                refund = yield from self._put("Payment", {
                    "Type": m.REFUND, "CustomerID": customer,
                    "PaymentMethod": self._method(context, PaymentMethod.OTHER),
                    "CashAccount": mapping.deposit_account("refund"),
                    "PaymentAmount": memo.get("Amount"),
                    "ApplicationDate": note.issue_date.isoformat(),
                    "PaymentRef": note.number[: MAX_NAME_LENGTHS["payment.ref"]],
                    "ExternalRef": note.id[: MAX_NAME_LENGTHS["payment.ref"]],
                    "Hold": False,
                    "DocumentsToApply": [{"DocType": m.CREDIT_MEMO, "ReferenceNbr": nbr,
                                          "AmountPaid": memo.get("Amount")}],
                }, "refund credit memo")
            yield from self._release("Payment", "ReleasePayment", refund)
        return self._result(memo, notes, related=related)

    def _credit_note_delete(self, entry: LedgerEntry, context: SinkContext
                            ) -> Flow[WriteResult]:
        known = context.external_ids.get(f"credit_note:{entry.event.aggregate_id}")
        if not known:
            raise ReferenceMissingError(
                f"credit note {entry.event.aggregate_id!r} was deleted but never reached "
                "Acumatica", platform=NAME)
        current = yield from self._get("Invoice", known, "get credit memo")
        if current is None:
            return WriteResult(external_id=known, already_applied=True)
        if current.get("Status") in RELEASED:
            raise UnsupportedEventError(
                f"credit memo {current['ReferenceNbr']} is released; Acumatica cannot void it "
                "through the contract API", platform=NAME)
        yield self._request("DELETE", _path("Invoice", known), "delete credit memo",
                            accept=frozenset({404}))
        return WriteResult(external_id=known)

    # ------------------------------------------------------------------ lookups, errors

    def find_by_reference(self, reference: str, context: SinkContext
                          ) -> Flow[WriteResult | None] | None:
        """Find an AR invoice by ``CustomerOrder`` (the CRM invoice id)."""

        def flow() -> Flow[WriteResult | None]:
            found = yield from self._find("Invoice", m.INVOICE, "CustomerOrder", reference)
            return None if found is None else self._result(found)

        return flow()

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        """Acumatica answers ``HttpError`` objects (``message``, ``exceptionMessage``,
        ``exceptionType``), or, on 422, the entity with ``error`` on the bad fields.
        Business rule violations (``PX.Data.PXException``…) can arrive as **500**: those
        are rejections, not outages."""
        status = response.status
        if status < 400:
            return None
        entries = error_entries(response.body)
        body = entries[0] if entries else {}
        fields = field_errors(body) if status == 422 else {}
        message = "; ".join(f"{k}: {v}" for k, v in fields.items()) or str(
            body.get("exceptionMessage") or body.get("message") or response.text[:300])
        exception = str(body.get("exceptionType") or "")
        code = exception.rsplit(".", 1)[-1] or None
        lowered = message.lower()
        if status == 429 or "login limit" in lowered:
            return RateLimitedError(
                f"Acumatica licence limit reached: {message}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                platform=NAME, vendor_code=code, status=status)
        if status == 401:
            return AuthExpiredError(f"Acumatica session expired or rejected: {message}",
                                    platform=NAME, vendor_code=code, status=status)
        if status == 403:
            return ConfigurationError(f"Acumatica denied access: {message}",
                                      platform=NAME, vendor_code=code, status=status)
        if "period" in lowered and ("closed" in lowered or "locked" in lowered):
            # Every document dated in the period fails the same way until a person
            # reopens it: pause the tenant rather than dead-letter each event.
            return ConfigurationError(
                f"the document's financial period is closed in Acumatica; reopen it (or "
                f"change the tenant's closing), then resume the tenant: {message}",
                platform=NAME, vendor_code=code, status=status)
        if status >= 500 and not exception.startswith("PX."):
            return TransientError(f"Acumatica unavailable: {message}",
                                  platform=NAME, vendor_code=code, status=status)
        if status == 404:
            return ReferenceMissingError(f"Acumatica does not hold the record: {message}",
                                         platform=NAME, vendor_code=code, status=status)
        plain = [re.sub(r"\[\d+\]", "", part) for part in fields]
        names = {part.split(".")[-1] for part in plain}
        roots = {part.split(".")[0] for part in plain}
        if names & set(MAPPING_FIELDS):
            return ConfigurationError(
                f"the tenant mapping names an Acumatica record that is missing or inactive: "
                f"{message}", platform=NAME, vendor_code=code, status=status)
        if (names | roots) & set(REFERENCE_FIELDS):
            return ReferenceMissingError(
                f"Acumatica does not hold a referenced record: {message}",
                platform=NAME, vendor_code=code, status=status)
        return PayloadRejectedError(f"Acumatica rejected the document: {message}",
                                    platform=NAME, vendor_code=code, status=status)


def _customer_inactive(response: PlatformResponse) -> bool:
    """Was a document refused because its customer is inactive in Acumatica?"""
    entries = error_entries(response.body)
    fields = field_errors(entries[0]) if entries else {}
    return any(re.sub(r"\[\d+\]", "", name).split(".")[-1] in ("Customer", "CustomerID")
               and "inactive" in message.lower() for name, message in fields.items())


def _same(current: dict[str, Any], body: dict[str, Any]) -> bool:
    """Does the stored document already carry what ``body`` would write?"""
    for name in ("Customer", "CustomerOrder", "Date", "Description"):
        mine = body.get(name)
        theirs = current.get(name)
        if name == "Date" and isinstance(theirs, str):
            theirs = theirs[:10]
        if mine != theirs:
            return False
    mine_lines = [(d["TransactionDescription"], _cents(d["Amount"])) for d in body["Details"]]
    their_lines = [(d.get("TransactionDescription"), _cents(d.get("Amount")))
                   for d in current.get("Details") or []]
    return mine_lines == their_lines if their_lines else True


def _cents(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(m.CENT)


Route = Callable[[Acumatica, LedgerEntry, SinkContext], Flow[WriteResult]]

ROUTES: dict[tuple[AggregateType, Op], Route] = {
    (AggregateType.CUSTOMER, Op.CREATE): Acumatica._customer_upsert,
    (AggregateType.CUSTOMER, Op.UPDATE): Acumatica._customer_upsert,
    (AggregateType.CUSTOMER, Op.DELETE): Acumatica._customer_deactivate,
    (AggregateType.INVOICE, Op.CREATE): Acumatica._invoice_write,
    (AggregateType.INVOICE, Op.UPDATE): Acumatica._invoice_write,
    (AggregateType.INVOICE, Op.DELETE): Acumatica._invoice_delete,
    (AggregateType.PAYMENT, Op.CREATE): Acumatica._payment_write,
    (AggregateType.PAYMENT, Op.UPDATE): Acumatica._payment_write,
    (AggregateType.PAYMENT, Op.DELETE): Acumatica._payment_delete,
    (AggregateType.CREDIT_NOTE, Op.CREATE): Acumatica._credit_note_write,
    (AggregateType.CREDIT_NOTE, Op.UPDATE): Acumatica._credit_note_write,
    (AggregateType.CREDIT_NOTE, Op.DELETE): Acumatica._credit_note_delete,
}

UNSUPPORTED: dict[AggregateType, str] = {
    AggregateType.TAX_RATE: "tax rates are Acumatica configuration (tax zones, tax IDs); map "
                            "the CRM tax code to a TaxID in mapping.tax_codes instead",
}
