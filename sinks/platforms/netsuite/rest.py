"""Oracle NetSuite sink over the SuiteTalk REST record API (v1) — the default.

**Idempotency strategy: upsert by external id.** Every document is written with
``PUT /services/rest/record/v1/<record>/eid:<externalId>`` where the external id is
derived from the CRM id (``ls-inv-<invoice id>``); NetSuite creates the record on the
first call and updates the same record on every later one, so a replay, a retry after
a dropped response or a redelivery after a crash can never create a second document.
NetSuite has no request idempotency key for synchronous calls
(``X-NetSuite-Idempotency-Key`` only applies to ``Prefer: respond-async``), and no
optimistic-concurrency token: updates are last-write-wins (``replace=item`` swaps the
item sublist instead of merging it). ``RCRD_HAS_BEEN_CHANGED`` (a concurrent save) is
retried, which is safe because every write carries the document's full state.

**Delivery guarantee:** effectively exactly once per (record type, CRM id) — at least
once delivery made idempotent by the external-id upsert.

Events → records (``external_ids`` keys ``customer:<id>``, ``invoice:<id>``,
``payment:<id>``, ``credit_note:<id>`` hold NetSuite internal ids):

=====================================  ===================================================
customer created/updated               ``customer`` upsert (company or individual)
customer deleted                       ``PATCH customer/eid:…  {"isInactive": true}``
invoice created/updated                customer upsert if unknown, ``invoice`` upsert
invoice VOID / deleted                 ``DELETE invoice`` (REST has no void; see docs)
payment received                       ``customerPayment`` upsert, ``apply`` per allocation
payment deleted                        ``DELETE customerPayment``
refund (``kind=REFUND``)               ``customerRefund`` upsert applied to the original
                                       payment's unapplied amount
credit note CREDITED                   ``creditMemo`` upsert, ``apply`` per allocation
credit note REFUNDED                   ``creditMemo`` upsert + ``customerRefund`` of it
credit note deleted                    ``DELETE creditMemo``
tax rate events                        UnsupportedEventError (tax codes are NetSuite setup)
payment with a tip                     UnsupportedEventError (a customer payment has no
                                       tip line; record tips through a deposit)
=====================================  ===================================================

Processor fees are not part of a customer payment in NetSuite (they belong to the bank
deposit); the payment is recorded gross. See ``docs/platforms/netsuite.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

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
)
from sinks.core.contract import (
    Flow,
    LedgerEntry,
    Platform,
    PlatformRequest,
    PlatformResponse,
    PlatformSpec,
    SinkContext,
    WireProtocol,
    WriteResult,
)
from sinks.core.errors import (
    PayloadRejectedError,
    ReferenceMissingError,
    RetryableError,
    SinkError,
    UnsupportedEventError,
    parse_retry_after,
)
from sinks.core.mapping import TenantMapping
from sinks.platforms.netsuite.common import (
    NAME_LIMITS,
    RATE_LIMIT,
    NetSuiteLine,
    NetSuiteSettings,
    classify_code,
    document_lines,
    person_name,
    referenced_field,
    settings_of,
    to_amount,
)
from sinks.platforms.registry import register

__all__ = ["REST_ROOT", "SPEC", "NetSuiteRest"]

REST_ROOT = "/services/rest/record/v1"

SPEC = PlatformSpec(
    name="netsuite",
    display_name="Oracle NetSuite (REST record API)",
    protocol=WireProtocol.REST_JSON,
    supports_idempotency_key=False,
    supports_upsert=True,
    supports_void=False,
    max_batch_size=1,
    multi_currency=True,
    partial_payments=True,
    rate_limit=RATE_LIMIT,
    max_name_lengths=NAME_LIMITS,
    settings_model=NetSuiteSettings,
)

#: External-id kinds, one per NetSuite record this sink writes.
EID_KINDS = {"customer": "cust", "invoice": "inv", "customerPayment": "pmt",
             "creditMemo": "cm", "customerRefund": "rfd"}


def _num(value: Decimal) -> float | int:
    """JSON number for a rounded Decimal (REST takes amounts as JSON numbers)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _ref(internal_id: str) -> dict[str, str]:
    return {"id": internal_id}


def id_from_location(response: PlatformResponse) -> str | None:
    """The internal id at the end of the ``Location`` header of a 201/204 write."""
    location = response.headers.get("location")
    if not location:
        return None
    tail = location.rstrip("/").rsplit("/", 1)[-1]
    return tail or None


@register
class NetSuiteRest(Platform):
    """Pure NetSuite REST mapping; see the module docstring."""

    spec: ClassVar[PlatformSpec] = SPEC

    # ------------------------------------------------------------------ errors

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        if response.ok:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        try:
            body = response.json()
        except ValueError:
            body = None
        details = body.get("o:errorDetails") if isinstance(body, dict) else None
        if isinstance(details, list) and details and isinstance(details[0], dict):
            first = details[0]
            error = classify_code(
                first.get("o:errorCode"), str(first.get("detail", "")).strip(),
                status=response.status, path=first.get("o:errorPath"),
                retry_after=retry_after, platform=self.spec.name)
            if error is not None:
                return error
        if response.status == 429:  # concurrency rejection without a known code
            return classify_code("CONCURRENCY_LIMIT_EXCEEDED", response.text[:200],
                                 status=429, path=None, retry_after=retry_after,
                                 platform=self.spec.name)
        return super().classify_error(response)

    # ------------------------------------------------------------------ planning

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        settings = settings_of(context.tenant)
        assert context.tenant is not None
        mapping = context.tenant.mapping
        kind = event.aggregate_type
        if kind is AggregateType.TAX_RATE:
            raise UnsupportedEventError(
                "NetSuite tax codes and rates are maintained in NetSuite (Setup > "
                "Accounting > Tax Codes); map CRM tax codes to them in mapping.tax_codes",
                platform=self.spec.name)
        if kind is AggregateType.CUSTOMER:
            if event.op is Op.DELETE:
                return (yield from self._deactivate_customer(event.aggregate_id, settings))
            return (yield from self._customer(entry.event.payload, settings, context))
        payload = event.payload
        if kind is AggregateType.INVOICE:
            if event.op is Op.DELETE or (isinstance(payload, Invoice)
                                         and payload.status is InvoiceStatus.VOID):
                return (yield from self._delete("invoice", "invoice", event.aggregate_id,
                                                settings, context))
            assert isinstance(payload, Invoice)
            return (yield from self._invoice(entry, payload, settings, mapping, context))
        if kind is AggregateType.PAYMENT:
            if event.op is Op.DELETE:
                return (yield from self._delete("customerPayment", "payment",
                                                event.aggregate_id, settings, context))
            assert isinstance(payload, Payment)
            if payload.kind is PaymentKind.REFUND:
                return (yield from self._refund(entry, payload, settings, mapping, context))
            return (yield from self._payment(entry, payload, settings, mapping, context))
        if kind is AggregateType.CREDIT_NOTE:
            if event.op is Op.DELETE:
                return (yield from self._delete("creditMemo", "credit_note",
                                                event.aggregate_id, settings, context))
            assert isinstance(payload, CreditNote)
            return (yield from self._credit_note(entry, payload, settings, mapping, context))
        raise UnsupportedEventError(f"no NetSuite mapping for {kind}", platform=self.spec.name)

    # ------------------------------------------------------------------ bodies

    def customer_body(self, customer: Customer, settings: NetSuiteSettings,
                      tenant_id: str = "?") -> dict[str, Any]:
        body: dict[str, Any] = {"externalId": settings.external_id("cust", customer.id)}
        if customer.company_name:
            body["isPerson"] = False
            body["companyName"] = self.spec.truncate("customer.companyName",
                                                     customer.company_name)
        else:
            first, last = person_name(customer.display_name)
            body["isPerson"] = True
            body["firstName"] = self.spec.truncate("customer.firstName", first)
            body["lastName"] = self.spec.truncate("customer.lastName", last)
        if customer.email:
            body["email"] = self.spec.truncate("customer.email", customer.email)
        if customer.phone:
            body["phone"] = self.spec.truncate("customer.phone", customer.phone)
        if settings.subsidiary:
            body["subsidiary"] = _ref(settings.subsidiary)
        currency = settings.currency_ref(customer.default_currency, tenant_id)
        if currency:
            body["currency"] = _ref(currency)
        body["isInactive"] = not customer.active
        if customer.tax_exempt and customer.tax_exemption_number:
            body["resaleNumber"] = customer.tax_exemption_number[:20]
        return body

    @staticmethod
    def item_sublist(lines: list[NetSuiteLine]) -> dict[str, Any]:
        items = []
        for line in lines:
            item: dict[str, Any] = {
                "item": _ref(line.item), "description": line.description,
                "quantity": _num(line.quantity), "rate": _num(line.rate),
                "amount": _num(line.amount), "taxCode": _ref(line.tax_code)}
            if line.location:
                item["location"] = _ref(line.location)
            if line.class_ref:
                item["class"] = _ref(line.class_ref)
            items.append(item)
        return {"items": items}

    def invoice_body(self, entry: LedgerEntry, invoice: Invoice, customer_id: str,
                     settings: NetSuiteSettings, mapping: TenantMapping,
                     tenant_id: str) -> dict[str, Any]:
        exempt = bool(entry.customer and entry.customer.tax_exempt)
        location = mapping.location(None)
        body: dict[str, Any] = {
            "externalId": settings.external_id("inv", invoice.id),
            "entity": _ref(customer_id),
            "tranDate": invoice.issue_date.isoformat(),
            "dueDate": invoice.due_date.isoformat(),
            "otherRefNum": self.spec.truncate("transaction.otherRefNum",
                                              invoice.po_number or invoice.number),
            "item": self.item_sublist(document_lines(
                invoice.lines, invoice.currency, mapping, exempt=exempt, location=None)),
        }
        if settings.use_crm_numbers:
            body["tranId"] = invoice.number
        memo = invoice.notes or (invoice.job.appliance_type if invoice.job else None)
        if memo:
            body["memo"] = self.spec.truncate("transaction.memo", memo)
        self._header_refs(body, invoice.currency, settings, mapping, location, tenant_id)
        return body

    def credit_memo_body(self, entry: LedgerEntry, note: CreditNote, customer_id: str,
                         invoice_ids: dict[str, str], settings: NetSuiteSettings,
                         mapping: TenantMapping, tenant_id: str) -> dict[str, Any]:
        exempt = bool(entry.customer and entry.customer.tax_exempt)
        body: dict[str, Any] = {
            "externalId": settings.external_id("cm", note.id),
            "entity": _ref(customer_id),
            "tranDate": note.issue_date.isoformat(),
            "memo": self.spec.truncate("transaction.memo", note.reason),
            "item": self.item_sublist(document_lines(
                note.lines, note.currency, mapping, exempt=exempt, location=None)),
        }
        if settings.use_crm_numbers:
            body["tranId"] = note.number
        if note.disposition is CreditDisposition.CREDITED and note.allocations:
            body["apply"] = self.apply_sublist(
                [(invoice_ids[a.invoice_id], a.amount) for a in note.allocations],
                note.currency, mapping)
        self._header_refs(body, note.currency, settings, mapping, mapping.location(None),
                          tenant_id)
        return body

    @staticmethod
    def apply_sublist(pairs: list[tuple[str, Decimal]], currency: str,
                      mapping: TenantMapping) -> dict[str, Any]:
        return {"items": [{"doc": _ref(doc), "apply": True,
                           "amount": _num(to_amount(amount, currency, mapping))}
                          for doc, amount in pairs]}

    def payment_body(self, payment: Payment, customer_id: str, invoice_ids: dict[str, str],
                     settings: NetSuiteSettings, mapping: TenantMapping,
                     tenant_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "externalId": settings.external_id("pmt", payment.id),
            "customer": _ref(customer_id),
            "tranDate": payment.received_date.isoformat(),
            "payment": _num(to_amount(payment.amount, payment.currency, mapping)),
            "undepFunds": False,
            "account": _ref(mapping.deposit_account(payment.method.value)),
            "memo": self.spec.truncate("transaction.memo", self._payment_memo(payment)),
            "apply": self.apply_sublist(
                [(invoice_ids[a.invoice_id], a.amount) for a in payment.allocations],
                payment.currency, mapping),
        }
        if settings.use_crm_numbers:
            body["tranId"] = payment.number
        currency = settings.currency_ref(payment.currency, tenant_id)
        if currency:
            body["currency"] = _ref(currency)
        return body

    def refund_body(self, external_id: str, customer_id: str, doc_id: str, amount: Decimal,
                    currency: str, date: str, account: str, memo: str,
                    settings: NetSuiteSettings, mapping: TenantMapping,
                    tenant_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "externalId": external_id,
            "customer": _ref(customer_id),
            "tranDate": date,
            "account": _ref(account),
            "memo": self.spec.truncate("transaction.memo", memo),
            "apply": self.apply_sublist([(doc_id, amount)], currency, mapping),
        }
        currency_id = settings.currency_ref(currency, tenant_id)
        if currency_id:
            body["currency"] = _ref(currency_id)
        return body

    @staticmethod
    def _payment_memo(payment: Payment) -> str:
        parts = [f"CRM {payment.number}", payment.method.value.lower()]
        if payment.check_number:
            parts.append(f"check {payment.check_number}")
        if payment.card_last4:
            parts.append(f"card …{payment.card_last4}")
        return " · ".join(parts)

    @staticmethod
    def _header_refs(body: dict[str, Any], currency: str, settings: NetSuiteSettings,
                     mapping: TenantMapping, location: str | None, tenant_id: str) -> None:
        currency_id = settings.currency_ref(currency, tenant_id)
        if currency_id:
            body["currency"] = _ref(currency_id)
        if settings.subsidiary:
            body["subsidiary"] = _ref(settings.subsidiary)
        if location:
            body["location"] = _ref(location)
        if mapping.class_ref:
            body["class"] = _ref(mapping.class_ref)

    # ------------------------------------------------------------------ requests

    def upsert_request(self, record: str, external_id: str, body: dict[str, Any], key: str,
                       *, replace: str | None = None) -> PlatformRequest:
        query = {"replace": replace} if replace else {}
        payload = {k: v for k, v in body.items() if k != "externalId"}
        return PlatformRequest(
            "PUT", f"{REST_ROOT}/{record}/eid:{quote(external_id, safe='')}",
            f"upsert {record}", query=query, json=payload, idempotency_key=key,
            headers={"Content-Type": "application/json",
                     "X-NetSuite-PropertyNameValidation": "Error"})

    def lookup_request(self, record: str, external_id: str) -> PlatformRequest:
        return PlatformRequest(
            "GET", f"{REST_ROOT}/{record}/eid:{quote(external_id, safe='')}",
            f"find {record}", query={"fields": "id,tranId,externalId"},
            accept_statuses=frozenset({404}))

    def deactivate_request(self, external_id: str) -> PlatformRequest:
        return PlatformRequest(
            "PATCH", f"{REST_ROOT}/customer/eid:{quote(external_id, safe='')}",
            "deactivate customer", json={"isInactive": True},
            headers={"Content-Type": "application/json"}, accept_statuses=frozenset({404}))

    def delete_request(self, record: str, internal_id: str | None, external_id: str,
                       key: str) -> PlatformRequest:
        target = internal_id if internal_id else f"eid:{quote(external_id, safe='')}"
        return PlatformRequest("DELETE", f"{REST_ROOT}/{record}/{target}", f"delete {record}",
                               idempotency_key=key, accept_statuses=frozenset({404}))

    def is_missing(self, response: PlatformResponse) -> bool:
        """The lookup, delete or patch found no such record."""
        return response.status == 404

    def found_id(self, response: PlatformResponse) -> str | None:
        body = response.json() or {}
        return str(body["id"]) if body.get("id") is not None else None

    def written_id(self, response: PlatformResponse, record: str) -> str:
        """Internal id of the record a successful write created or updated."""
        internal_id = id_from_location(response)
        if internal_id is None:
            raise PayloadRejectedError(
                f"NetSuite accepted the {record} write but sent no Location header "
                f"(HTTP {response.status})", platform=self.spec.name, status=response.status)
        return internal_id

    # ------------------------------------------------------------------ flows

    def _customer(self, customer: Customer, settings: NetSuiteSettings,
                  context: SinkContext) -> Flow[WriteResult]:
        body = self.customer_body(customer, settings, context.tenant_id)
        response = yield self.upsert_request(
            "customer", body["externalId"], body, context.key_for(self.spec.name, "customer"))
        internal_id = self.written_id(response, "customer")
        return WriteResult(external_id=internal_id, raw={"externalId": body["externalId"]},
                           related={f"customer:{customer.id}": internal_id})

    def _deactivate_customer(self, crm_id: str, settings: NetSuiteSettings
                             ) -> Flow[WriteResult]:
        eid = settings.external_id("cust", crm_id)
        response = yield self.deactivate_request(eid)
        if self.is_missing(response):
            raise ReferenceMissingError(f"customer {crm_id} ({eid}) does not exist in NetSuite",
                                        platform=self.spec.name, status=response.status)
        return WriteResult(external_id=self.written_id(response, "customer"),
                           raw={"externalId": eid, "isInactive": True})

    def _ensure_customer(self, entry: LedgerEntry, crm_id: str, settings: NetSuiteSettings,
                         context: SinkContext) -> Flow[str]:
        known = context.external_ids.get(f"customer:{crm_id}")
        if known:
            return known
        if entry.customer is not None and entry.customer.id == crm_id:
            result = yield from self._customer(entry.customer, settings, context)
            return result.external_id
        found = yield from self._find_id("customer", settings.external_id("cust", crm_id))
        if found is None:
            raise ReferenceMissingError(f"customer {crm_id} was never synced to NetSuite",
                                        platform=self.spec.name)
        return found

    def _find_id(self, record: str, external_id: str) -> Flow[str | None]:
        response = yield self.lookup_request(record, external_id)
        if self.is_missing(response):
            return None
        return self.found_id(response)

    def _resolve(self, record: str, kind: str, eid_kind: str, crm_ids: list[str],
                 settings: NetSuiteSettings, context: SinkContext) -> Flow[dict[str, str]]:
        """Internal ids of the documents a payment or credit applies to."""
        out: dict[str, str] = {}
        for crm_id in dict.fromkeys(crm_ids):
            known = context.external_ids.get(f"{kind}:{crm_id}")
            if known is None:
                known = yield from self._find_id(record, settings.external_id(eid_kind, crm_id))
            if known is None:
                # Typically a consequence: the document's own event was dead-lettered
                # (a payment with a tip), so this one cannot apply to it either.
                raise ReferenceMissingError(
                    f"{kind} {crm_id} was never synced to NetSuite; cannot apply to it (if "
                    f"its own event was dead-lettered, record it in NetSuite with external "
                    f"id {settings.external_id(eid_kind, crm_id)} and replay this event)",
                    platform=self.spec.name)
            out[crm_id] = known
        return out

    def _write_for_customer(self, entry: LedgerEntry, crm_customer: str, customer_id: str,
                            build: Callable[[str], PlatformRequest],
                            settings: NetSuiteSettings, context: SinkContext
                            ) -> Flow[tuple[PlatformResponse, str, list[str]]]:
        """Send ``build(customer_id)``; if NetSuite rejects the customer reference (it was
        made inactive or deleted behind our back) and the entry carries the customer,
        upsert the customer (``isInactive: false``) and send the write once more."""
        request = build(customer_id)
        accepting = replace(request, accept_statuses=request.accept_statuses | {400})
        for _ in range(3):  # 400 is accepted, so the executor does not retry it for us
            response = yield accepting
            if response.status != 400:
                return response, customer_id, []
            error = self.classify_error(response)
            if not isinstance(error, RetryableError):
                break
        details = (response.json() or {}).get("o:errorDetails") or [{}]
        rejected_customer = isinstance(error, ReferenceMissingError) and referenced_field(
            details[0].get("o:errorPath")) in ("entity", "customer")
        if not rejected_customer or entry.customer is None or entry.customer.id != crm_customer:
            raise error if error is not None else PayloadRejectedError(
                f"NetSuite rejected the write: {response.text[:300]}",
                platform=self.spec.name, status=400)
        restored = yield from self._customer(entry.customer, settings, context)
        response = yield build(restored.external_id)
        return response, restored.external_id, [
            f"customer {crm_customer} was inactive or missing in NetSuite; reactivated"]

    def _finish(self, record: str, response: PlatformResponse, number: str | None,
                external_id: str, related: dict[str, str]) -> WriteResult:
        internal_id = self.written_id(response, record)
        return WriteResult(external_id=internal_id, document_number=number,
                           raw={"record": record, "externalId": external_id},
                           related=related)

    def _invoice(self, entry: LedgerEntry, invoice: Invoice, settings: NetSuiteSettings,
                 mapping: TenantMapping, context: SinkContext) -> Flow[WriteResult]:
        customer_id = yield from self._ensure_customer(entry, invoice.customer_id, settings,
                                                       context)
        eid = settings.external_id("inv", invoice.id)

        def build(customer: str) -> PlatformRequest:
            body = self.invoice_body(entry, invoice, customer, settings, mapping,
                                     context.tenant_id)
            return self.upsert_request("invoice", eid, body,
                                       context.key_for(self.spec.name, "invoice"),
                                       replace="item")

        response, customer_id, notes = yield from self._write_for_customer(
            entry, invoice.customer_id, customer_id, build, settings, context)
        number = invoice.number if settings.use_crm_numbers else None
        result = self._finish("invoice", response, number, eid,
                              {f"customer:{invoice.customer_id}": customer_id})
        return replace(result, raw={**result.raw, "notes": notes})

    def _payment(self, entry: LedgerEntry, payment: Payment, settings: NetSuiteSettings,
                 mapping: TenantMapping, context: SinkContext) -> Flow[WriteResult]:
        if payment.tip > 0:
            raise UnsupportedEventError(
                f"payment {payment.number} includes a tip of {payment.tip}; a NetSuite "
                "customer payment has no tip line (record tips through a bank deposit)",
                platform=self.spec.name)
        customer_id = yield from self._ensure_customer(entry, payment.customer_id, settings,
                                                       context)
        invoice_ids = yield from self._resolve(
            "invoice", "invoice", "inv", [a.invoice_id for a in payment.allocations],
            settings, context)
        body = self.payment_body(payment, customer_id, invoice_ids, settings, mapping,
                                 context.tenant_id)
        response = yield self.upsert_request("customerPayment", body["externalId"], body,
                                             context.key_for(self.spec.name, "payment"))
        related = {f"customer:{payment.customer_id}": customer_id}
        related.update({f"invoice:{k}": v for k, v in invoice_ids.items()})
        return self._finish("customerPayment", response, payment.number, body["externalId"],
                            related)

    def _refund(self, entry: LedgerEntry, refund: Payment, settings: NetSuiteSettings,
                mapping: TenantMapping, context: SinkContext) -> Flow[WriteResult]:
        if refund.refund_of is None:
            raise UnsupportedEventError(
                f"refund {refund.number} names no original payment; a NetSuite customer "
                "refund must apply to a payment or credit memo", platform=self.spec.name)
        customer_id = yield from self._ensure_customer(entry, refund.customer_id, settings,
                                                       context)
        paid = yield from self._resolve("customerPayment", "payment", "pmt",
                                        [refund.refund_of], settings, context)
        eid = settings.external_id("rfd", refund.id)
        body = self.refund_body(
            eid, customer_id, paid[refund.refund_of], refund.amount, refund.currency,
            refund.received_date.isoformat(), mapping.deposit_account(refund.method.value),
            f"CRM refund {refund.number} of {refund.refund_of}", settings, mapping,
            context.tenant_id)
        response = yield self.upsert_request("customerRefund", eid, body,
                                             context.key_for(self.spec.name, "refund"))
        return self._finish("customerRefund", response, refund.number, eid,
                            {f"customer:{refund.customer_id}": customer_id,
                             f"payment:{refund.refund_of}": paid[refund.refund_of]})

    def _credit_note(self, entry: LedgerEntry, note: CreditNote, settings: NetSuiteSettings,
                     mapping: TenantMapping, context: SinkContext) -> Flow[WriteResult]:
        customer_id = yield from self._ensure_customer(entry, note.customer_id, settings,
                                                       context)
        invoice_ids = yield from self._resolve(
            "invoice", "invoice", "inv", [a.invoice_id for a in note.allocations],
            settings, context)
        body = self.credit_memo_body(entry, note, customer_id, invoice_ids, settings, mapping,
                                     context.tenant_id)
        response = yield self.upsert_request("creditMemo", body["externalId"], body,
                                             context.key_for(self.spec.name, "credit_note"),
                                             replace="item")
        memo_id = self.written_id(response, "creditMemo")
        related = {f"customer:{note.customer_id}": customer_id}
        related.update({f"invoice:{k}": v for k, v in invoice_ids.items()})
        if note.disposition is CreditDisposition.REFUNDED:
            eid = settings.external_id("rfd", f"cn-{note.id}")
            refund = self.refund_body(
                eid, customer_id, memo_id, note.total, note.currency,
                note.issue_date.isoformat(), mapping.deposit_account("refund"),
                f"CRM credit note {note.number} refunded", settings, mapping,
                context.tenant_id)
            yield self.upsert_request("customerRefund", eid, refund,
                                      context.key_for(self.spec.name, "credit_note_refund"))
        number = note.number if settings.use_crm_numbers else None
        return WriteResult(external_id=memo_id, document_number=number,
                           raw={"record": "creditMemo", "externalId": body["externalId"]},
                           related=related)

    def _delete(self, record: str, kind: str, crm_id: str, settings: NetSuiteSettings,
                context: SinkContext) -> Flow[WriteResult]:
        eid = settings.external_id(EID_KINDS[record], crm_id)
        known = context.external_ids.get(f"{kind}:{crm_id}")
        response = yield self.delete_request(record, known, eid,
                                             context.key_for(self.spec.name, "delete"))
        # Missing: an earlier attempt already deleted it (or it never reached NetSuite).
        gone = self.is_missing(response)
        return WriteResult(external_id=known or eid,
                           raw={"record": record, "deleted": True, "already_gone": gone},
                           already_applied=gone)
