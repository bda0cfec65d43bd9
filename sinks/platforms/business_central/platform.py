"""Microsoft Dynamics 365 Business Central (API v2.0, OData v4) sink.

**Idempotency strategy: lookup by reference before create.** BC has no idempotency
key. Every document carries the CRM number in ``externalDocumentNumber`` (numbers
over 35 characters are shortened deterministically) and every flow first asks
``$filter=externalDocumentNumber eq '<number>'`` (customers: ``number eq '<CRM id>'``;
posted payments: ``generalLedgerEntries`` by ``documentNumber``); only when nothing is
found does it create. Multi-part writes that must not half-happen (the journal lines
of one payment, the line replacement of a draft) go in one atomic OData ``$batch``
(one atomicity group), so "found any" means "found all". Flows are resumable: a
draft left behind by a lost ``Microsoft.NAV.post`` response is found and posted.

**Delivery guarantee:** effectively-once for customers, invoices, credit memos and
payments, provided a failed write is retried by re-running the *flow* (which looks up
first) and never by blindly re-sending a POST (BC would create a second document).
Two workers writing the same event at the same instant could both miss the lookup;
the runner's per-tenant ordering prevents that.

**Supported:** customers (create, update with ``If-Match``, deactivate = ``blocked:
All``); sales invoices (deep insert of lines, then ``Microsoft.NAV.post`` unless the
CRM status is DRAFT; drafts are updated header + lines with ``If-Match``, a stale ETag
is re-read once, the CRM being the source of truth); an edit that changes the total
of a posted, unpaid invoice is done the way BC's own "Correct" does it: cancel
(corrective credit memo) and issue a new invoice; void = delete of a draft or
``Microsoft.NAV.cancel`` of a posted unpaid invoice; credit memos (posted, applied to
one invoice via ``invoiceId``); payments as lines of the customer payment journal the
tenant maps to the payment method (``mapping.deposit_accounts`` holds journal ids),
one line per allocation plus an unapplied remainder; deleting a payment deletes its
lines while they are unposted.

**Cannot represent (UnsupportedEventError, dead-lettered with the reason):** refunds
and credit notes refunded in cash (the v2.0 API has no customer refund: no Refund
document type on ``customerPayments``), tips (a customer payment line only credits the
customer; the tip's income needs a G/L line), payments in a foreign currency
(``customerPayments`` has no currency field), credit notes applied to several invoices
(``invoiceId`` is single-valued), voiding or editing an invoice with payments applied
(BC cancels only unpaid invoices), deleting posted credit memos or posted payments,
and tax-rate events (BC tax groups/areas are maintained in BC). The processor fee is
not booked: the payment carries the gross amount; the fee belongs to BC's bank
reconciliation.

**Not verifiable without live credentials:** v2.0 fields absent from the community
v2.0 OpenAPI subset (``lineObjectNumber``; the ``blocked`` enum spelling
``_x0020_``), the sign convention of ``customerPayments`` amounts (v2.0 docs show
positive), negative-quantity G/L discount lines, the exact codes/messages of
throttling, string-length and closed-period errors, the posting date BC gives an
API-created credit memo (no ``postingDate`` in the subset), and that API-created
payment journal lines are posted by a user or job queue (v2.0 documents no bound post
action on ``customerPaymentJournals``).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.models import CreditNote, Customer, Invoice, LedgerEntry, Payment
from schemas.models.enums import (
    AggregateType,
    CreditDisposition,
    InvoiceStatus,
    Op,
    PaymentKind,
)
from sinks.core.contract import (
    Flow,
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
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    SinkError,
    TransientError,
    UnsupportedEventError,
    parse_retry_after,
)
from sinks.core.mapping import TenantMapping
from sinks.platforms.business_central import mapping as m
from sinks.platforms.registry import register
from sinks.transport.odata import (
    BatchPart,
    batch_request,
    collection,
    entity_path,
    etag_of,
    filter_all,
    filter_eq,
    if_match,
    odata_error,
    parse_batch,
)

PLATFORM = m.PLATFORM
CANCELED = ("Canceled", "Cancelled")
MAX_BATCH = 100


class BusinessCentralSettings(BaseModel):
    """Tenant settings: which Entra tenant, environment and company to write to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aad_tenant_id: str = Field(min_length=1)
    environment: str = Field(default="production", min_length=1)
    company_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$")
    #: The company's local currency (BC leaves ``currencyCode`` blank for it).
    local_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    #: Service root override (sandbox, on-premises); default is the SaaS endpoint.
    base_url: str | None = None

    @property
    def service_root(self) -> str:
        return self.base_url or (
            "https://api.businesscentral.dynamics.com/v2.0/"
            f"{self.aad_tenant_id}/{self.environment}/api/v2.0"
        )

    @property
    def token_url(self) -> str:
        return f"https://login.microsoftonline.com/{self.aad_tenant_id}/oauth2/v2.0/token"

    scope: ClassVar[str] = "https://api.businesscentral.dynamics.com/.default"


#: Error codes (``error.code``) BC sends, by what they mean for us.
REFERENCE_MISSING = {"Internal_RecordNotFound", "BadRequest_ResourceNotFound",
                     "BadRequest_NotFound"}
CONFIGURATION = {"Internal_CompanyNotFound", "Authorization_InsufficientPermissions",
                 "Internal_ApiNotEnabled", "Authentication_InvalidCredentials"}
TRANSIENT = {"Request_EntityChanged", "Internal_ServerError", "Internal_ServiceUnavailable",
             "Application_CannotConnectToServer"}
THROTTLED = {"Application_TooManyRequests", "TooManyRequests"}
LOCKED_PERIOD_PHRASE = "not within your range of allowed posting dates"
#: BC refuses documents for a customer blocked with type All (archived in BC).
BLOCKED_CUSTOMER_PHRASE = "is blocked with type all"
#: Records the tenant mapping points at: when BC lacks one, the mapping is wrong.
MAPPED_TABLES = ("The G/L Account does not exist", "The Item does not exist",
                 "The Tax Group does not exist", "The customerPaymentJournal with id")


@register
class BusinessCentral(Platform):
    spec: ClassVar[PlatformSpec] = PlatformSpec(
        name=PLATFORM,
        display_name="Microsoft Dynamics 365 Business Central",
        protocol=WireProtocol.REST_JSON,
        supports_idempotency_key=False,
        supports_upsert=False,
        supports_void=True,
        max_batch_size=MAX_BATCH,
        multi_currency=True,
        partial_payments=True,
        # 6,000 requests per 5-minute sliding window per user/service principal;
        # concurrency kept at 5 (BC processes 5 OData requests at a time per user and
        # queues the rest).
        rate_limit=RateLimitPolicy((RateWindow(6000, 300),), concurrency=5,
                                   default_retry_after=30.0),
        max_name_lengths=m.MAX_LENGTHS,
        settings_model=BusinessCentralSettings,
    )

    # ------------------------------------------------------------------ entry point

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        kind = event.aggregate_type
        if kind is AggregateType.TAX_RATE:
            raise self._unsupported("tax rates are maintained in BC tax areas and tax "
                                    "groups, which the API v2.0 cannot write")
        if kind is AggregateType.CUSTOMER:
            return self._customer_flow(entry, context)
        if kind is AggregateType.INVOICE:
            if event.op is Op.DELETE or (
                    isinstance(event.payload, Invoice)
                    and event.payload.status is InvoiceStatus.VOID):
                return self._void_invoice_flow(entry, context)
            return self._invoice_flow(entry, context)
        if kind is AggregateType.CREDIT_NOTE:
            if event.op is Op.DELETE:
                raise self._unsupported("a posted BC credit memo cannot be deleted or "
                                        "voided through the API; reverse it in BC")
            return self._credit_memo_flow(entry, context)
        if kind is AggregateType.PAYMENT:
            if event.op is Op.DELETE:
                return self._delete_payment_flow(entry, context)
            return self._payment_flow(entry, context)
        raise self._unsupported(f"unknown aggregate type {kind}")

    # ------------------------------------------------------------------ helpers

    def _unsupported(self, reason: str) -> UnsupportedEventError:
        return UnsupportedEventError(reason, platform=PLATFORM)

    @staticmethod
    def _settings(context: SinkContext) -> BusinessCentralSettings:
        if isinstance(context.settings, BusinessCentralSettings):
            return context.settings
        if context.tenant is None:
            raise ConfigurationError("no tenant configuration for Business Central",
                                     platform=PLATFORM)
        return context.tenant.platform_settings(BusinessCentralSettings)

    @staticmethod
    def _mapping(context: SinkContext) -> TenantMapping:
        if context.tenant is None:
            raise ConfigurationError("no tenant mapping for Business Central",
                                     platform=PLATFORM)
        return context.tenant.mapping

    def _company(self, context: SinkContext) -> str:
        return f"companies({self._settings(context).company_id})"

    def _get(self, context: SinkContext, path: str, purpose: str, *,
             query: dict[str, str] | None = None, missing_ok: bool = False) -> PlatformRequest:
        return PlatformRequest("GET", f"{self._company(context)}/{path}", purpose,
                               query=query or {}, headers={"Accept": "application/json"},
                               accept_statuses=frozenset({404}) if missing_ok else frozenset())

    def _write(self, context: SinkContext, method: str, path: str, purpose: str, *,
               body: Any = None, etag: str | None = None, step: str = "",
               accept: Iterable[int] = ()) -> PlatformRequest:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if method in ("PATCH", "DELETE"):
            headers.update(if_match(etag))
        # BC has no idempotency key, and the executor re-sends a keyed request after a
        # lost response: a keyed POST would create a second document. POSTs (creates,
        # actions, $batch) go unkeyed, so a lost response comes back to the runner, which
        # re-runs the flow, and the flow looks the document up before creating it.
        key = None if method == "POST" else context.key_for(PLATFORM, step or purpose)
        return PlatformRequest(method, f"{self._company(context)}/{path}", purpose,
                               headers=headers, json=body, idempotency_key=key,
                               accept_statuses=frozenset(accept))

    def _find(self, context: SinkContext, entity_set: str, field_name: str, value: str,
              purpose: str, expand: str | None = None) -> Flow[dict[str, Any] | None]:
        query = {"$filter": filter_eq(field_name, value)}
        if expand:
            query["$expand"] = expand
        response = yield self._get(context, entity_set, purpose, query=query)
        found = collection(response)
        return found[0] if found else None

    def _read(self, context: SinkContext, entity_set: str, key: str, purpose: str,
              expand: str | None = None) -> Flow[dict[str, Any] | None]:
        query = {"$expand": expand} if expand else {}
        response = yield self._get(context, entity_path(entity_set, key), purpose, query=query,
                                   missing_ok=True)
        if response.status == 404:
            return None
        record = response.json()
        if isinstance(record, dict) and "@odata.etag" not in record and response.headers.get(
                "etag"):
            record["@odata.etag"] = response.headers["etag"]
        return record if isinstance(record, dict) else None

    @staticmethod
    def _result(record: dict[str, Any], *, already: bool = False,
                related: dict[str, str] | None = None) -> WriteResult:
        return WriteResult(external_id=str(record["id"]), version=etag_of(record),
                           document_number=record.get("number"), raw=record,
                           already_applied=already, related=related or {})

    # ------------------------------------------------------------------ customers

    def _customer_of(self, entry: LedgerEntry, customer_id: str) -> Customer:
        if entry.customer is not None and entry.customer.id == customer_id:
            return entry.customer
        raise ReferenceMissingError(
            f"ledger entry carries no snapshot of customer {customer_id!r}", platform=PLATFORM)

    def _ensure_customer(self, entry: LedgerEntry, context: SinkContext,
                         customer_id: str) -> Flow[str]:
        """BC id of the CRM customer: known id, else lookup by number, else create."""
        known = context.external_ids.get(f"customer:{customer_id}")
        if known:
            return known
        customer = self._customer_of(entry, customer_id)
        record = yield from self._upsert_customer(context, customer, update=False)
        return str(record["id"])

    def _upsert_customer(self, context: SinkContext, customer: Customer, *,
                         update: bool) -> Flow[dict[str, Any]]:
        settings = self._settings(context)
        body = m.customer_body(customer, local_currency=settings.local_currency)
        number = body["number"]
        known = context.external_ids.get(f"customer:{customer.id}")
        existing: dict[str, Any] | None = None
        if known:
            existing = yield from self._read(context, "customers", known, "find customer")
        if existing is None:
            existing = yield from self._find(context, "customers", "number", number,
                                             "find customer")
        if existing is None:
            response = yield self._write(context, "POST", "customers", "create customer",
                                         body=body, step="customer", accept=(400,))
            if response.status == 201 or response.ok:
                return dict(response.json())
            error = odata_error(response)
            if error is None or error.code != "Internal_EntityWithSameKeyExists":
                raise self._classify(response) or PayloadRejectedError(
                    f"customer create rejected: {response.text[:300]}", platform=PLATFORM)
            # Someone created it between lookup and create: take theirs.
            existing = yield from self._find(context, "customers", "number", number,
                                             "find customer")
            if existing is None:
                raise TransientError("customer number taken but not found; retry",
                                     platform=PLATFORM)
            existing["_already"] = True
            return existing
        if not update:
            existing["_already"] = True
            return existing
        etag = context.versions.get(f"customer:{customer.id}") or etag_of(existing)
        record = yield from self._patch(context, "customers", str(existing["id"]), body, etag,
                                        "update customer")
        return record

    def _patch(self, context: SinkContext, entity_set: str, key: str, body: dict[str, Any],
               etag: str | None, purpose: str) -> Flow[dict[str, Any]]:
        """PATCH with ``If-Match``; on 412 (someone changed it in BC) re-read the
        current ETag once and apply the CRM's version, the CRM being the source of
        truth for these fields."""
        path = entity_path(entity_set, key)
        response = yield self._write(context, "PATCH", path, purpose, body=body, etag=etag,
                                     accept=(409, 412))
        if response.status in (409, 412):
            fresh = yield from self._read(context, entity_set, key, purpose)
            if fresh is None:
                raise ReferenceMissingError(f"{entity_set}({key}) vanished during update",
                                            platform=PLATFORM)
            response = yield self._write(context, "PATCH", path, purpose, body=body,
                                         etag=etag_of(fresh))
        return dict(response.json())

    def _customer_flow(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        if event.op is Op.DELETE:
            known = context.external_ids.get(f"customer:{event.aggregate_id}")
            if not known:
                raise ReferenceMissingError(
                    f"customer {event.aggregate_id!r} was never synced to BC", platform=PLATFORM)
            current = yield from self._read(context, "customers", known, "find customer")
            if current is None:
                raise ReferenceMissingError(f"BC customer {known} no longer exists",
                                            platform=PLATFORM)
            if current.get("blocked") == "All":
                return self._result(current, already=True)
            record = yield from self._patch(context, "customers", known, {"blocked": "All"},
                                            etag_of(current), "deactivate customer")
            return self._result(record)
        customer = event.payload
        assert isinstance(customer, Customer)
        record = yield from self._upsert_customer(context, customer,
                                                  update=event.op is Op.UPDATE)
        already = bool(record.pop("_already", False))
        return self._result(record, already=already)

    # ------------------------------------------------------------------ invoices

    def _find_document(self, context: SinkContext, entity_set: str, lines: str, key: str,
                       number: str) -> Flow[dict[str, Any] | None]:
        """The live document for ``key``: the known id unless BC canceled it, else the
        lookup by ``externalDocumentNumber`` preferring a live document over canceled
        ones (a corrected invoice leaves its canceled original behind)."""
        known_record: dict[str, Any] | None = None
        known = context.external_ids.get(key)
        if known:
            known_record = yield from self._read(context, entity_set, known, "find document",
                                                 lines or None)
            if known_record is not None and known_record.get("status") not in CANCELED:
                return known_record
        query = {"$filter": filter_eq("externalDocumentNumber",
                                      m.external_document_number(number))}
        if lines:
            query["$expand"] = lines
        response = yield self._get(context, entity_set, "find document", query=query)
        found = collection(response)
        live = [r for r in found if r.get("status") not in CANCELED]
        if live:
            return live[0]
        return found[0] if found else known_record

    def _post(self, context: SinkContext, entity_set: str, record: dict[str, Any],
              action: str = "Microsoft.NAV.post") -> Flow[dict[str, Any]]:
        path = f"{entity_path(entity_set, str(record['id']))}/{action}"
        yield self._write(context, "POST", path, f"{action.split('.')[-1]} document",
                          step=f"{entity_set}:{action}")
        fresh = yield from self._read(context, entity_set, str(record["id"]), "read document")
        if fresh is None:
            raise ReferenceMissingError(f"{entity_set} {record['id']} vanished after {action}",
                                        platform=PLATFORM)
        return fresh

    def _invoice_flow(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        invoice = entry.event.payload
        assert isinstance(invoice, Invoice)
        settings = self._settings(context)
        mapping = self._mapping(context)
        customer = self._customer_of(entry, invoice.customer_id)
        body_lines_exempt = customer.tax_exempt
        customer_bc = yield from self._ensure_customer(entry, context, invoice.customer_id)
        related = {f"customer:{invoice.customer_id}": customer_bc}
        body = m.invoice_body(invoice, customer_bc, mapping, exempt=body_lines_exempt,
                              local_currency=settings.local_currency)
        existing = yield from self._find_document(context, "salesInvoices", "salesInvoiceLines",
                                                  f"invoice:{invoice.id}", invoice.number)
        already = existing is not None
        notes: list[str] = []
        if existing is None:
            record = yield from self._create(context, "salesInvoices", "create invoice",
                                             body, "invoice", customer_bc, notes)
        elif existing.get("status") == "Draft":
            record = existing
            if entry.event.op is Op.UPDATE:
                record = yield from self._replace_draft(context, existing, body, invoice.id)
                already = False
        else:
            record = existing
            if not self._needs_correction(entry, invoice, record):
                return self._result(record, already=True, related=related)
            if record.get("status") not in CANCELED:
                yield from self._cancel(context, invoice.number, record)
            record = yield from self._create(context, "salesInvoices", "create invoice",
                                             body, "invoice:reissue", customer_bc, notes)
            already = False
        if invoice.status is not InvoiceStatus.DRAFT and record.get("status") == "Draft":
            record = yield from self._post(context, "salesInvoices", record)
            already = False
        if notes:
            record["notes"] = notes
        return self._result(record, already=already, related=related)

    def _create(self, context: SinkContext, entity_set: str, purpose: str,
                body: dict[str, Any], step: str, customer_bc: str, notes: list[str]
                ) -> Flow[dict[str, Any]]:
        """POST a document; when BC refuses it because the customer is blocked (someone
        archived it in BC while the CRM still bills them), unblock the customer — the
        CRM is the source of truth for its activity — and send it once more."""
        response = yield self._write(context, "POST", entity_set, purpose, body=body,
                                     step=step, accept=(400,))
        if response.status == 400:
            error = odata_error(response)
            if error is None or BLOCKED_CUSTOMER_PHRASE not in error.message.lower():
                raise self._classify(response) or PayloadRejectedError(
                    f"{purpose} rejected: {response.text[:300]}", platform=PLATFORM)
            yield from self._unblock_customer(context, customer_bc)
            notes.append(f"customer {customer_bc} was blocked in BC and has been reactivated "
                         "(the CRM still bills them)")
            response = yield self._write(context, "POST", entity_set, purpose, body=body,
                                         step=f"{step}:unblocked")
        return dict(response.json())

    def _unblock_customer(self, context: SinkContext, customer_bc: str) -> Flow[None]:
        current = yield from self._read(context, "customers", customer_bc, "find customer")
        if current is None:
            raise ReferenceMissingError(f"BC customer {customer_bc} no longer exists",
                                        platform=PLATFORM)
        if current.get("blocked") == "All":
            yield from self._patch(context, "customers", customer_bc,
                                   {"blocked": m.BLOCKED_NONE}, etag_of(current),
                                   "reactivate customer")

    def _needs_correction(self, entry: LedgerEntry, invoice: Invoice,
                          record: dict[str, Any]) -> bool:
        """A posted (or already canceled) invoice whose total an UPDATE changes: BC
        cannot edit it, so it is corrected the way BC's own "Correct" does it — cancel
        (corrective credit memo) and issue a new invoice. A CREATE replay, or an update
        that leaves the total alone (status changes, notes), changes nothing in BC."""
        if entry.event.op is not Op.UPDATE:
            return False
        shown = record.get("totalAmountIncludingTax")
        if shown is None:
            return False
        return m.half_up(Decimal(str(shown)), m.AMOUNT_STEP) != m.half_up(invoice.total,
                                                                          m.AMOUNT_STEP)

    def _cancel(self, context: SinkContext, number: str, record: dict[str, Any]
                ) -> Flow[dict[str, Any]]:
        """``Microsoft.NAV.cancel`` of a posted invoice; BC refuses paid ones, so those
        are reported as unsupported before asking."""
        remaining = record.get("remainingAmount")
        total = record.get("totalAmountIncludingTax")
        if record.get("status") == "Paid" or (
                remaining is not None and total is not None
                and Decimal(str(remaining)) != Decimal(str(total))):
            raise self._unsupported(
                f"invoice {number} ({record.get('number')} in BC) has payments or credits "
                "applied; BC cancels or corrects only unpaid posted invoices. Unapply them "
                "in BC first")
        cancelled = yield from self._post(context, "salesInvoices", record,
                                          "Microsoft.NAV.cancel")
        return cancelled

    def _replace_draft(self, context: SinkContext, existing: dict[str, Any],
                       body: dict[str, Any], invoice_id: str) -> Flow[dict[str, Any]]:
        """Update a draft: PATCH the header (If-Match), then swap all lines in one
        atomic $batch so the draft is never left half-replaced."""
        key = str(existing["id"])
        etag = context.versions.get(f"invoice:{invoice_id}") or etag_of(existing)
        yield from self._patch(context, "salesInvoices", key, m.invoice_header(body), etag,
                               "update invoice")
        company = self._company(context)
        base = f"{company}/{entity_path('salesInvoices', key)}/salesInvoiceLines"
        parts = [BatchPart(f"d{i}", "DELETE", f"{base}({line['id']})",
                           headers=if_match(etag_of(line)))
                 for i, line in enumerate(existing.get("salesInvoiceLines") or [])]
        parts += [BatchPart(f"a{i}", "POST", base, body=line)
                  for i, line in enumerate(body["salesInvoiceLines"])]
        response = yield batch_request(parts, purpose="replace invoice lines", atomic=True,
                                       max_parts=MAX_BATCH)
        self._raise_batch(response)
        fresh = yield from self._read(context, "salesInvoices", key, "read document",
                                      "salesInvoiceLines")
        if fresh is None:
            raise ReferenceMissingError(f"draft invoice {key} vanished", platform=PLATFORM)
        return fresh

    def _raise_batch(self, response: PlatformResponse) -> dict[str, PlatformResponse]:
        parts = parse_batch(response)
        for part in parts.values():
            error = self._classify(part)
            if error is not None:
                raise error
        return parts

    def _void_invoice_flow(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        number = event.payload.number if isinstance(event.payload, Invoice) else None
        record: dict[str, Any] | None = None
        known = context.external_ids.get(f"invoice:{event.aggregate_id}")
        if number is not None:
            record = yield from self._find_document(context, "salesInvoices", "",
                                                    f"invoice:{event.aggregate_id}", number)
        elif known:
            record = yield from self._read(context, "salesInvoices", known, "find document")
        if record is None:
            if number is None and not known:
                raise ReferenceMissingError(
                    f"invoice {event.aggregate_id!r} was never synced to BC", platform=PLATFORM)
            # Never written, or a draft we already deleted: nothing to void.
            return WriteResult(external_id=known or f"deleted:{event.aggregate_id}",
                               already_applied=True)
        status = record.get("status")
        if status == "Draft":
            yield self._write(context, "DELETE", entity_path("salesInvoices", str(record["id"])),
                              "delete invoice", etag=etag_of(record))
            return WriteResult(external_id=str(record["id"]), raw=record)
        if status in CANCELED:
            return self._result(record, already=True)
        cancelled = yield from self._cancel(context, number or event.aggregate_id, record)
        return self._result(cancelled)

    # ------------------------------------------------------------------ credit memos

    def _credit_memo_flow(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        note = entry.event.payload
        assert isinstance(note, CreditNote)
        settings = self._settings(context)
        mapping = self._mapping(context)
        if note.disposition is CreditDisposition.REFUNDED:
            raise self._unsupported(
                f"credit note {note.number} was refunded in cash; the BC API v2.0 can post "
                "the credit memo but has no customer refund (payment journal document type "
                "Refund), so writing only the memo would leave a credit the customer "
                "already received. Record memo and refund in BC")
        invoice_bc: str | None = None
        if note.allocations:
            targets = {a.invoice_id for a in note.allocations}
            if len(targets) > 1:
                raise self._unsupported(
                    f"credit note {note.number} is applied to {len(targets)} invoices; a BC "
                    "credit memo applies to one invoice (invoiceId)")
            target = targets.pop()
            invoice_bc = context.external_ids.get(f"invoice:{target}")
            if invoice_bc is None:
                raise ReferenceMissingError(
                    f"credit note {note.number} applies to invoice {target!r}, which was "
                    "never synced to BC", platform=PLATFORM)
        customer = self._customer_of(entry, note.customer_id)
        customer_bc = yield from self._ensure_customer(entry, context, note.customer_id)
        related = {f"customer:{note.customer_id}": customer_bc}
        existing = yield from self._find_document(context, "salesCreditMemos",
                                                  "salesCreditMemoLines",
                                                  f"credit_note:{note.id}", note.number)
        already = existing is not None
        notes: list[str] = []
        if existing is None:
            body = m.credit_memo_body(note, customer_bc, invoice_bc, mapping,
                                      exempt=customer.tax_exempt,
                                      local_currency=settings.local_currency)
            existing = yield from self._create(context, "salesCreditMemos",
                                               "create credit memo", body, "credit_note",
                                               customer_bc, notes)
        if existing.get("status") == "Draft":
            existing = yield from self._post(context, "salesCreditMemos", existing)
            already = False
        if notes:
            existing["notes"] = notes
        return self._result(existing, already=already, related=related)

    # ------------------------------------------------------------------ payments

    def _journal(self, context: SinkContext, payment: Payment) -> str:
        """Customer payment journal id for the payment method
        (``mapping.deposit_accounts``: the journal's balancing account is the deposit)."""
        return self._mapping(context).deposit_account(payment.method.value)

    def _payment_flow(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        payment = entry.event.payload
        assert isinstance(payment, Payment)
        if payment.kind is PaymentKind.REFUND:
            raise self._unsupported(
                f"refund {payment.number}: the BC API v2.0 customerPayments entity has no "
                "Refund document type; record the refund in BC")
        if payment.tip > 0:
            raise self._unsupported(
                f"payment {payment.number} includes a tip of {payment.tip}; a BC customer "
                "payment line can only credit the customer, the tip needs a G/L journal line")
        local = self._settings(context).local_currency
        if payment.currency != local:
            raise self._unsupported(
                f"payment {payment.number} is in {payment.currency}; the BC API v2.0 "
                f"customerPayments entity has no currency field (lines post in {local})")
        known = context.external_ids.get(f"payment:{payment.id}")
        if known:
            return WriteResult(external_id=known, already_applied=True)
        journal = self._journal(context, payment)
        invoice_ids: dict[str, str] = {}
        for allocation in payment.allocations:
            target = context.external_ids.get(f"invoice:{allocation.invoice_id}")
            if target is None:
                raise ReferenceMissingError(
                    f"payment {payment.number} applies to invoice {allocation.invoice_id!r}, "
                    "which was never synced to BC", platform=PLATFORM)
            invoice_ids[allocation.invoice_id] = target
        customer_bc = yield from self._ensure_customer(entry, context, payment.customer_id)
        related = {f"customer:{payment.customer_id}": customer_bc}
        lines_path = f"{entity_path('customerPaymentJournals', journal)}/customerPayments"
        document = m.payment_document_number(payment)
        response = yield self._get(context, lines_path, "find payment", query={
            "$filter": filter_eq("externalDocumentNumber",
                                 m.external_document_number(payment.number))})
        found = collection(response)
        if not found:
            # Posted lines leave the journal; their G/L entries keep the document number.
            found = yield from self._posted_payment(context, document)
        if found:
            return WriteResult(external_id=self._payment_id(journal, found, document),
                               raw=found,
                               already_applied=True, related=related)
        lines = m.payment_lines(payment, customer_bc, invoice_ids)
        if not lines:
            raise PayloadRejectedError(f"payment {payment.number} has no amount to record",
                                       platform=PLATFORM)
        url = f"{self._company(context)}/{lines_path}"
        batch = batch_request([BatchPart(f"p{i}", "POST", url, body=line)
                               for i, line in enumerate(lines)],
                              purpose="create payment", atomic=True, max_parts=MAX_BATCH)
        response = yield batch
        parts = self._raise_batch(response)
        created = [p.json() for _, p in sorted(parts.items())]
        return WriteResult(external_id=self._payment_id(journal, created, document),
                           raw=created,
                           related=related)

    @staticmethod
    def _payment_id(journal: str, lines: list[dict[str, Any]], document: str) -> str:
        """``<journal id>/<first line id>/<documentNumber>``: enough to find the lines
        again (after posting: the first G/L entry's id, which a real BC gives a new
        GUID), and the document number their G/L entries keep once posted. A delete
        event carries no payload, so without the number in the id a replayed delete
        could not tell lines it deleted itself from lines a user posted."""
        first = sorted(lines, key=lambda line: int(line.get("lineNumber")
                                                   or line.get("entryNumber") or 0))[0]
        return f"{journal}/{first['id']}/{document}"

    def _posted_payment(self, context: SinkContext, document: str
                        ) -> Flow[list[dict[str, Any]]]:
        """The G/L entries of a posted payment (by its journal document number)."""
        response = yield self._get(context, "generalLedgerEntries", "find payment", query={
            "$filter": filter_all(("documentNumber", document), ("documentType", "Payment"))})
        return collection(response)

    def _delete_payment_flow(self, entry: LedgerEntry, context: SinkContext
                             ) -> Flow[WriteResult]:
        payment_id = entry.event.aggregate_id
        known = context.external_ids.get(f"payment:{payment_id}")
        if not known or "/" not in known:
            raise ReferenceMissingError(f"payment {payment_id!r} was never synced to BC",
                                        platform=PLATFORM)
        journal, line_id, *document = known.split("/", 2)
        lines_path = f"{entity_path('customerPaymentJournals', journal)}/customerPayments"
        line = yield from self._read(context, lines_path, line_id, "find payment")
        if line is None:
            # Gone from the journal: posted (its G/L entries keep the document number),
            # or deleted — by our own earlier attempt whose answer was lost, or by a user.
            # Either deletion leaves BC as the CRM wants it; posting needs a reversal.
            posted = (yield from self._posted_payment(context, document[0])) \
                if document else True
            if not posted:
                return WriteResult(external_id=known, already_applied=True)
            raise self._unsupported(
                f"payment {payment_id!r} is no longer in its BC payment journal ("
                + ("posted" if document else "posted or deleted there")
                + "); a posted customer payment must be reversed in BC")
        response = yield self._get(context, lines_path, "find payment", query={
            "$filter": filter_eq("externalDocumentNumber", str(line["externalDocumentNumber"]))})
        url = f"{self._company(context)}/{lines_path}"
        parts = [BatchPart(f"d{i}", "DELETE", f"{url}({item['id']})",
                           headers=if_match(etag_of(item)))
                 for i, item in enumerate(collection(response))]
        batch = yield batch_request(parts, purpose="delete payment", atomic=True,
                                    max_parts=MAX_BATCH)
        self._raise_batch(batch)
        return WriteResult(external_id=known)

    # ------------------------------------------------------------------ errors

    def _classify(self, response: PlatformResponse) -> SinkError | None:
        return self.classify_error(response)

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        if response.status < 400:
            return None
        error = odata_error(response)
        if error is None or not error.code:
            return super().classify_error(response)
        code, message = error.code, error.message
        detail = f"{message} (HTTP {response.status})"
        if code in THROTTLED or response.status == 429:
            retry = parse_retry_after(response.headers.get("retry-after"))
            return RateLimitedError(f"throttled: {detail}", retry_after=retry,
                                    platform=PLATFORM, vendor_code=code, status=response.status)
        if response.status == 401:
            return super().classify_error(response)
        if code in CONFIGURATION:
            return ConfigurationError(f"connection or permission problem: {detail}",
                                      platform=PLATFORM, vendor_code=code,
                                      status=response.status)
        if code in TRANSIENT or response.status >= 500:
            return TransientError(f"BC temporarily refused the write: {detail}",
                                  platform=PLATFORM, vendor_code=code, status=response.status)
        if message.startswith(MAPPED_TABLES):
            return ConfigurationError(
                f"the tenant mapping names a record BC does not have: {detail}",
                platform=PLATFORM, vendor_code=code, status=response.status)
        if code in REFERENCE_MISSING:
            return ReferenceMissingError(f"BC does not hold a referenced record: {detail}",
                                         platform=PLATFORM, vendor_code=code,
                                         status=response.status)
        if LOCKED_PERIOD_PHRASE in message.lower():
            # Every later document of the tenant would fail the same way: pause the
            # tenant until the bookkeeper opens the period, rather than dead-letter.
            return ConfigurationError(
                f"posting date is in a closed period in BC (General Ledger Setup "
                f"'Allow Posting From/To'): {detail}", platform=PLATFORM, vendor_code=code,
                status=response.status)
        return PayloadRejectedError(f"BC rejected the request: {detail}", platform=PLATFORM,
                                    vendor_code=code, status=response.status)
