"""Sage Business Cloud Accounting v3.1 sink.

Delivery guarantee: **exactly once** for every create, by Sage's native idempotency:
each POST carries ``idempotency_id`` (``context.key_for(platform, step)`` without
hyphens, 32 hex characters) inside the resource's own namespace
(``{"sales_invoice": {"idempotency_id": ...}}``), so a replayed event or a retry
after a lost response gets the first response back instead of a second document.
Contacts are additionally found by ``reference`` (the CRM customer id) before one is
created, and a duplicate-number rejection is resolved by looking the invoice up by
``reference`` (our CRM id) and counting it as already applied. Updates (PUT) and voids
(DELETE) are idempotent by nature; Sage has no optimistic-concurrency token, so the
flow compares the document's ``updated_at`` with the one stored after our last write
and refuses to overwrite a document a bookkeeper edited in Sage since.

Supported: customers (create/update), invoices (create, update, void on delete or
status VOID), payments with allocations (receipt, update, delete), processor fees
(OTHER_PAYMENT to the fee account) and tips (OTHER_RECEIPT to the tip account), credit
notes (CREDITED: allocated to invoices with a contact allocation; REFUNDED: a
CUSTOMER_REFUND allocated to the credit note), refunds (CUSTOMER_REFUND), credit-note
void. Unsupported, raising :class:`UnsupportedEventError`: customer deletion (Sage
refuses to delete a contact with transactions), tax-rate events (tax rates are Sage
settings, mapped through ``tax_codes``), updating a credit note after it was issued,
voiding a document that has payments or credit allocated (Sage voids only unallocated
documents), a refund allocated to an invoice (Sage allocates refunds only to credit
notes or money on account). An over-payment's allocation is capped at the invoice's
outstanding amount; the rest stays on account.

What each event type becomes is the table :data:`ROUTES`; amounts and names come from
:mod:`.mapping`; protocol mechanics from :mod:`sinks.transport.session_rest`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

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
    UnsupportedEventError,
    parse_retry_after,
)
from sinks.platforms.registry import register
from sinks.platforms.sage_accounting import mapping as m
from sinks.transport.session_rest import error_entries, hex_key, lookup_one, unwrap, wrap

NAME = "sage-accounting"

#: Sources of these limits: Sage's published v3.0 limits (200 requests per 60 s per
#: business); v3.1 figures are not published in the spec (see docs).
RATE_LIMIT = RateLimitPolicy((RateWindow(200, 60),), concurrency=None, default_retry_after=60)

#: Name lengths we truncate to. Not in the swagger; conservative values (see docs).
MAX_NAME_LENGTHS = {
    "contact.name": 100,
    "contact.reference": 50,
    "document.reference": 25,
    "line.description": 255,
    "notes": 2000,
}

#: ``$source`` fields whose rejection means the tenant mapping points at a Sage
#: record that does not exist (or is inactive): pause the tenant, do not dead-letter.
MAPPING_SOURCES = frozenset({"ledger_account_id", "tax_rate_id", "bank_account_id",
                             "payment_method_id", "currency_id"})
#: ``$source`` fields naming a document the sink itself created earlier.
REFERENCE_SOURCES = frozenset({"contact_id", "artefact_id"})


class SageSettings(BaseModel):
    """``settings`` of a Sage tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = "https://api.accounting.sage.com/v3.1"
    #: Sent as ``X-Business``; without it Sage uses the user's lead business, which
    #: is never what a multi-business sink wants.
    business_id: str = Field(min_length=1)
    token_url: str = "https://oauth.accounting.sage.com/token"
    void_reason: str = "Voided in the repair-shop CRM"


def _limits() -> m.Limits:
    return m.Limits(
        contact_name=MAX_NAME_LENGTHS["contact.name"],
        contact_reference=MAX_NAME_LENGTHS["contact.reference"],
        document_reference=MAX_NAME_LENGTHS["document.reference"],
        line_description=MAX_NAME_LENGTHS["line.description"],
        notes=MAX_NAME_LENGTHS["notes"],
    )


def _result(record: dict[str, Any], number_field: str | None = None, **extra: Any) -> WriteResult:
    return WriteResult(
        external_id=str(record["id"]),
        version=record.get("updated_at"),
        document_number=record.get(number_field) if number_field else None,
        raw=record,
        **extra,
    )


@register
class SageAccounting(Platform):
    """The Sage Accounting platform: routes each event to a flow (see :data:`ROUTES`)."""

    spec: ClassVar[PlatformSpec] = PlatformSpec(
        name=NAME,
        display_name="Sage Business Cloud Accounting",
        protocol=WireProtocol.REST_JSON,
        supports_idempotency_key=True,
        supports_upsert=False,
        supports_void=True,
        max_batch_size=1,
        multi_currency=True,
        partial_payments=True,
        rate_limit=RATE_LIMIT,
        max_name_lengths=MAX_NAME_LENGTHS,
        settings_model=SageSettings,
        guards_edits=True,
    )

    # ------------------------------------------------------------------ helpers

    def _request(self, context: SinkContext, method: str, path: str, purpose: str, *,
                 json: Any = None, query: dict[str, str] | None = None,
                 key: str | None = None, accept: frozenset[int] = frozenset()
                 ) -> PlatformRequest:
        settings = self.tenant_settings(context, SageSettings)
        return PlatformRequest(method, path, purpose, query=query or {},
                               headers={"X-Business": settings.business_id,
                                        "Accept": "application/json"},
                               json=json, idempotency_key=key, accept_statuses=accept)

    def _create(self, context: SinkContext, path: str, resource: str, body: dict[str, Any],
                step: str, purpose: str, accept: frozenset[int] = frozenset()
                ) -> PlatformRequest:
        key = context.key_for(NAME, step)
        payload = wrap(resource, {**body, "idempotency_id": hex_key(key)})
        return self._request(context, "POST", path, purpose, json=payload, key=key,
                             accept=accept)

    def _raise(self, response: PlatformResponse) -> SinkError:
        error = self.classify_error(response)
        return error or PayloadRejectedError(f"unexpected HTTP {response.status}",
                                             platform=NAME, status=response.status)

    # ------------------------------------------------------------------ entry point

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        route = ROUTES.get((event.aggregate_type, event.op))
        if route is None:
            raise UnsupportedEventError(
                UNSUPPORTED.get(event.aggregate_type,
                                f"{event.event_type} has no Sage Accounting equivalent"),
                platform=NAME)
        return route(self, entry, context)

    # ------------------------------------------------------------------ contacts

    def _find_contact(self, customer_id: str, context: SinkContext
                      ) -> Flow[dict[str, Any] | None]:
        reference = customer_id[: MAX_NAME_LENGTHS["contact.reference"]]
        request = self._request(context, "GET", "/contacts", "find contact",
                                query={"search": reference, "contact_type_id": "CUSTOMER"})
        return (yield from lookup_one(request, lambda c: c.get("reference") == reference,
                                      what=f"contact reference {reference!r}", platform=NAME))

    def _contact_id(self, entry: LedgerEntry, customer_id: str, context: SinkContext
                    ) -> Flow[str]:
        """The Sage contact of ``customer_id``: known, found by reference, or created."""
        known = context.external_ids.get(f"customer:{customer_id}")
        if known:
            return known
        found = yield from self._find_contact(customer_id, context)
        if found is not None:
            return str(found["id"])
        customer = entry.customer
        if not isinstance(customer, Customer) or customer.id != customer_id:
            raise ReferenceMissingError(
                f"customer {customer_id!r} is not in Sage and the entry carries no snapshot "
                "to create it from", platform=NAME)
        tenant = self.tenant_config(context)
        if not tenant.mapping.customer_matching.create_missing:
            raise ReferenceMissingError(
                f"customer {customer_id!r} has no Sage contact and create_missing is off",
                platform=NAME)
        body = m.contact_body(customer, _limits())
        response = yield self._create(context, "/contacts", "contact", body, "customer",
                                      "create contact")
        return str(unwrap(response)["id"])

    def _customer_upsert(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        customer: Customer = entry.event.payload
        key = f"customer:{customer.id}"
        known = context.external_ids.get(key)
        if not known:
            found = yield from self._find_contact(customer.id, context)
            known = str(found["id"]) if found is not None else None
        body = m.contact_body(customer, _limits())
        if known:
            response = yield self._request(context, "PUT", f"/contacts/{known}",
                                           "update contact", json=wrap("contact", body))
        else:
            response = yield self._create(context, "/contacts", "contact", body, "customer",
                                          "create contact")
        record = unwrap(response)
        return _result(record, "reference", related={key: str(record["id"])})

    # ------------------------------------------------------------------ invoices

    def _exempt(self, entry: LedgerEntry) -> bool:
        return bool(entry.customer is not None and entry.customer.tax_exempt)

    def _invoice_write(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        invoice: Invoice = entry.event.payload
        key = f"invoice:{invoice.id}"
        known = context.external_ids.get(key)
        if invoice.status is InvoiceStatus.VOID:
            if not known:
                raise ReferenceMissingError(
                    f"invoice {invoice.number} was voided but never reached Sage", platform=NAME)
            return (yield from self._void(context, "sales_invoices", known, "invoice_number"))
        contact_id = yield from self._contact_id(entry, invoice.customer_id, context)
        related = {f"customer:{invoice.customer_id}": contact_id}
        tenant = self.tenant_config(context)
        body = m.invoice_body(invoice, contact_id, tenant.mapping, exempt=self._exempt(entry),
                              limits=_limits())
        if known:
            return (yield from self._invoice_update(context, known, body,
                                                    context.versions.get(key), related))
        response = yield self._create(context, "/sales_invoices", "sales_invoice", body,
                                      "invoice", "create invoice", accept=frozenset({422}))
        if response.status == 422:
            if not _is_duplicate(response, "invoice_number"):
                raise self._raise(response)
            existing = yield from self._find_document(context, "sales_invoices", invoice.id)
            if existing is None:
                raise PayloadRejectedError(
                    f"invoice number {invoice.number} is already used in Sage by a document "
                    "that is not this CRM invoice", platform=NAME, vendor_code="RecordInvalid",
                    status=422)
            return _result(existing, "invoice_number", already_applied=True, related=related)
        return _result(unwrap(response), "invoice_number", related=related)

    def _invoice_update(self, context: SinkContext, known: str, body: dict[str, Any],
                        version: str | None, related: dict[str, str]) -> Flow[WriteResult]:
        current = unwrap((yield self._request(context, "GET", f"/sales_invoices/{known}",
                                               "get invoice")))
        if _same_document(current, body):
            # Our last write already landed (e.g. its response was lost).
            return _result(current, "invoice_number", already_applied=True, related=related)
        if version is not None and current.get("updated_at") != version:
            raise PayloadRejectedError(
                f"invoice {current.get('invoice_number')} was changed in Sage at "
                f"{current.get('updated_at')} after our last write ({version}); refusing to "
                "overwrite a bookkeeper's edit", platform=NAME, vendor_code="StaleVersion")
        response = yield self._request(context, "PUT", f"/sales_invoices/{known}",
                                       "update invoice", json=wrap("sales_invoice", body))
        return _result(unwrap(response), "invoice_number", related=related)

    def _find_document(self, context: SinkContext, collection: str, reference: str
                       ) -> Flow[dict[str, Any] | None]:
        ref = reference[: MAX_NAME_LENGTHS["document.reference"]]
        request = self._request(context, "GET", f"/{collection}", f"find {collection}",
                                query={"search": ref, "attributes": "all"})
        return (yield from lookup_one(
            request, lambda d: d.get("reference") == ref and not _is_void(d),
            what=f"{collection} reference {ref!r}", platform=NAME))

    def _void(self, context: SinkContext, collection: str, known: str, number_field: str
              ) -> Flow[WriteResult]:
        current = unwrap((yield self._request(context, "GET", f"/{collection}/{known}",
                                               f"get {collection}")))
        if _is_void(current):
            return _result(current, number_field, already_applied=True)
        if _norm(current.get("outstanding_amount")) != _norm(current.get("total_amount")):
            raise UnsupportedEventError(
                f"{current.get(number_field)} has payments or credit allocated; Sage voids "
                "only unallocated documents: remove the allocations in Sage (the money then "
                "stays on account) and replay the event", platform=NAME)
        reason = self.tenant_settings(context, SageSettings).void_reason
        response = yield self._request(context, "DELETE", f"/{collection}/{known}",
                                       f"void {collection}", query={"void_reason": reason})
        record = unwrap(response) if response.body else {**current, "void_reason": reason}
        return _result(record, number_field)

    def _invoice_delete(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        known = context.external_ids.get(f"invoice:{entry.event.aggregate_id}")
        if not known:
            raise ReferenceMissingError(
                f"invoice {entry.event.aggregate_id!r} was deleted but never reached Sage",
                platform=NAME)
        return (yield from self._void(context, "sales_invoices", known, "invoice_number"))

    # ------------------------------------------------------------------ payments

    def _artefacts(self, context: SinkContext, payment: Payment, *,
                   own: dict[str, Decimal]) -> Flow[list[tuple[str, Decimal]]]:
        """Sage artefacts the payment is allocated to. An allocation beyond what the
        invoice could take (an over-payment) is capped at it; the rest stays on account.
        What it could take is its outstanding amount plus what this very payment
        already allocates to it (``own``: when the payment is rewritten, Sage releases
        its old allocations first), so a replay or update sends the same cap again."""
        out = []
        refund = payment.kind is PaymentKind.REFUND
        for allocation in payment.allocations:
            if refund:
                target = context.external_ids.get(f"credit_note:{allocation.invoice_id}")
                if target is None:
                    raise UnsupportedEventError(
                        f"refund {payment.number} re-opens invoice {allocation.invoice_id!r}; "
                        "Sage allocates a customer refund only to credit notes or money on "
                        "account, so the original receipt's allocation must be reduced in "
                        "Sage first", platform=NAME)
                out.append((target, m.cents(allocation.amount)))
                continue
            target = context.external_ids.get(f"invoice:{allocation.invoice_id}")
            if target is None:
                raise ReferenceMissingError(
                    f"payment {payment.number} is allocated to invoice "
                    f"{allocation.invoice_id!r}, which has not reached Sage", platform=NAME)
            amount = m.cents(allocation.amount)
            invoice = unwrap((yield self._request(
                context, "GET", f"/sales_invoices/{target}", "get invoice")))
            room = Decimal(str(invoice.get("outstanding_amount", 0))) + own.get(target, 0)
            amount = min(amount, m.cents(room))
            if amount > 0:
                out.append((target, amount))
        return out

    def _payment_create(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        payment: Payment = entry.event.payload
        key = f"payment:{payment.id}"
        mapping = self.tenant_config(context).mapping
        bank = mapping.deposit_account(payment.method.value)
        contact_id = yield from self._contact_id(entry, payment.customer_id, context)
        known = context.external_ids.get(key)
        own: dict[str, Decimal] = {}
        if known:
            current = unwrap((yield self._request(context, "GET", f"/contact_payments/{known}",
                                                  "get payment")))
            own = _allocated(current)
        allocations = yield from self._artefacts(context, payment, own=own)
        body = m.receipt_body(payment, contact_id, bank, allocations, limits=_limits())
        if known:
            response = yield self._request(context, "PUT", f"/contact_payments/{known}",
                                           "update payment", json=wrap("contact_payment", body))
            record = unwrap(response)
            return _result(record, related={f"customer:{payment.customer_id}": contact_id})
        response = yield self._create(context, "/contact_payments", "contact_payment", body,
                                      "payment", "create payment")
        record = unwrap(response)
        method = m.PAYMENT_METHODS[payment.method]
        date = payment.received_date.isoformat()
        if payment.kind is PaymentKind.PAYMENT and payment.tip > 0:
            yield self._create(context, "/other_payments", "other_payment", m.bank_line_body(
                receipt=True, date=date, bank_account_id=bank,
                ledger_account_id=mapping.tips_account(), amount=m.cents(payment.tip),
                reference=body["reference"], details=f"Tip on {payment.number}",
                payment_method_id=method), "tip", "create tip")
        if payment.kind is PaymentKind.PAYMENT and payment.processor_fee > 0:
            yield self._create(context, "/other_payments", "other_payment", m.bank_line_body(
                receipt=False, date=date, bank_account_id=bank,
                ledger_account_id=mapping.fee_account(), amount=m.cents(payment.processor_fee),
                reference=body["reference"], details=f"Processor fee on {payment.number}",
                payment_method_id=method), "fee", "create processor fee")
        return _result(record, related={f"customer:{payment.customer_id}": contact_id})

    def _payment_delete(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        known = context.external_ids.get(f"payment:{entry.event.aggregate_id}")
        if not known:
            raise ReferenceMissingError(
                f"payment {entry.event.aggregate_id!r} was deleted but never reached Sage",
                platform=NAME)
        yield self._request(context, "DELETE", f"/contact_payments/{known}", "delete payment",
                            accept=frozenset({404}))
        # 404: deleted by an earlier attempt whose response was lost; same outcome.
        return WriteResult(external_id=known)

    # ------------------------------------------------------------------ credit notes

    def _credit_note_create(self, entry: LedgerEntry, context: SinkContext
                            ) -> Flow[WriteResult]:
        note: CreditNote = entry.event.payload
        known = context.external_ids.get(f"credit_note:{note.id}")
        if known and entry.event.op is Op.CREATE:
            return WriteResult(external_id=known, already_applied=True)  # a replay
        if known:
            raise UnsupportedEventError(
                f"credit note {note.number} is already in Sage; issued credit notes are not "
                "edited by this sink (void it and issue a new one)", platform=NAME)
        mapping = self.tenant_config(context).mapping
        contact_id = yield from self._contact_id(entry, note.customer_id, context)
        related = {f"customer:{note.customer_id}": contact_id}
        body = m.credit_note_body(note, contact_id, mapping, exempt=self._exempt(entry),
                                  limits=_limits())
        response = yield self._create(context, "/sales_credit_notes", "sales_credit_note",
                                      body, "credit_note", "create credit note")
        record = unwrap(response)
        note_id = str(record["id"])
        date = note.issue_date.isoformat()
        if note.disposition is CreditDisposition.CREDITED and note.allocations:
            targets = []
            for allocation in note.allocations:
                invoice = context.external_ids.get(f"invoice:{allocation.invoice_id}")
                if invoice is None:
                    raise ReferenceMissingError(
                        f"credit note {note.number} is allocated to invoice "
                        f"{allocation.invoice_id!r}, which has not reached Sage", platform=NAME)
                targets.append((invoice, m.cents(allocation.amount)))
            yield self._create(context, "/contact_allocations", "contact_allocation",
                               m.allocation_body(contact_id, date, note_id, targets),
                               "allocation", "allocate credit note")
        elif note.disposition is CreditDisposition.REFUNDED:
            refund = {
                "transaction_type_id": m.CUSTOMER_REFUND,
                "contact_id": contact_id,
                "bank_account_id": mapping.deposit_account("refund"),
                "date": date,
                "total_amount": body["total_amount"],
                "reference": body["reference"],
                "allocated_artefacts": [{"artefact_id": note_id,
                                         "amount": body["total_amount"]}],
            }
            yield self._create(context, "/contact_payments", "contact_payment", refund,
                               "refund", "refund credit note")
        return _result(record, "credit_note_number", related=related)

    def _credit_note_delete(self, entry: LedgerEntry, context: SinkContext
                            ) -> Flow[WriteResult]:
        known = context.external_ids.get(f"credit_note:{entry.event.aggregate_id}")
        if not known:
            raise ReferenceMissingError(
                f"credit note {entry.event.aggregate_id!r} was deleted but never reached Sage",
                platform=NAME)
        return (yield from self._void(context, "sales_credit_notes", known, "credit_note_number"))

    # ------------------------------------------------------------------ lookups, errors

    def find_by_reference(self, reference: str, context: SinkContext
                          ) -> Flow[WriteResult | None] | None:
        """Find a sales invoice by ``reference`` (the CRM invoice id)."""

        def flow() -> Flow[WriteResult | None]:
            found = yield from self._find_document(context, "sales_invoices", reference)
            return None if found is None else _result(found, "invoice_number")

        return flow()

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        """Sage errors are a list of ``{"$severity", "$dataCode", "$message", "$source"}``."""
        if response.status < 400:
            return None
        entries = [e for e in error_entries(response.body) if "$dataCode" in e]
        if not entries:
            return super().classify_error(response)
        first = entries[0]
        code = str(first.get("$dataCode"))
        sources = {str(e.get("$source") or "") for e in entries}
        message = "; ".join(
            f"{e.get('$source')}: {e.get('$message')}" if e.get("$source")
            else str(e.get("$message")) for e in entries)
        status = response.status
        if status == 429 or code == "TooManyRequests":
            return RateLimitedError(
                f"Sage throttled the business: {message}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                platform=NAME, vendor_code=code, status=status)
        if status == 401:
            if code == "AuthorizationFailure" and "subscription" in message.lower():
                return ConfigurationError(f"Sage business has no active subscription: {message}",
                                          platform=NAME, vendor_code=code, status=status)
            return AuthExpiredError(f"Sage rejected the access token: {message}",
                                    platform=NAME, vendor_code=code, status=status)
        if status == 403 or code in ("AccessDenied", "BusinessNotFound"):
            return ConfigurationError(f"Sage denied access to the business: {message}",
                                      platform=NAME, vendor_code=code, status=status)
        if status >= 500:
            return super().classify_error(response)
        if code == "RecordNotFound" or status == 404:
            return ReferenceMissingError(f"Sage does not hold the record: {message}",
                                         platform=NAME, vendor_code=code, status=status)
        if "lock date" in message.lower() or "locked period" in message.lower():
            # Every document dated in the closed period fails the same way until a
            # person moves the lock date: pause the tenant rather than dead-letter.
            return ConfigurationError(
                f"the document's date is in a period closed in Sage (lock date); move the "
                f"lock date, then resume the tenant: {message}",
                platform=NAME, vendor_code=code, status=status)
        if sources & MAPPING_SOURCES:
            return ConfigurationError(
                f"the tenant mapping points at a Sage record that is missing or inactive: "
                f"{message}", platform=NAME, vendor_code=code, status=status)
        if sources & REFERENCE_SOURCES:
            return ReferenceMissingError(f"Sage does not hold a referenced record: {message}",
                                         platform=NAME, vendor_code=code, status=status)
        return PayloadRejectedError(f"Sage rejected the document: {message}",
                                    platform=NAME, vendor_code=code, status=status)


def _is_void(record: dict[str, Any]) -> bool:
    status = record.get("status")
    status_id = status.get("id") if isinstance(status, dict) else status
    return status_id == "VOID" or bool(record.get("deleted_at"))


def _allocated(payment: dict[str, Any]) -> dict[str, Decimal]:
    """Artefact id → amount a stored contact payment allocates to it."""
    out: dict[str, Decimal] = {}
    for item in payment.get("allocated_artefacts") or []:
        artefact = item.get("artefact")
        if isinstance(artefact, dict) and artefact.get("id") is not None:
            key = str(artefact["id"])
            out[key] = out.get(key, Decimal(0)) + Decimal(str(item.get("amount", 0)))
    return out


def _is_duplicate(response: PlatformResponse, source: str) -> bool:
    return any(e.get("$source") == source and "taken" in str(e.get("$message", "")).lower()
               for e in error_entries(response.body))


def _same_document(current: dict[str, Any], body: dict[str, Any]) -> bool:
    """Does the stored invoice already carry what ``body`` would write?"""
    fields = ("date", "due_date", "reference", "invoice_number", "notes", "net_amount",
              "tax_amount", "total_amount")
    contact = current.get("contact")
    if isinstance(contact, dict) and contact.get("id") != body.get("contact_id"):
        return False
    if any(_norm(current.get(f)) != _norm(body.get(f)) for f in fields):
        return False
    # A draft issued in the CRM changes nothing but its status: still an update.
    status = current.get("status")
    current_draft = (status.get("id") if isinstance(status, dict) else status) == "DRAFT"
    if current_draft != (body.get("status_id") == "DRAFT"):
        return False
    mine = [(line["description"], _norm(line["net_amount"])) for line in body["invoice_lines"]]
    theirs = [(line.get("description"), _norm(line.get("net_amount")))
              for line in current.get("invoice_lines", [])]
    return mine == theirs


def _norm(value: Any) -> Any:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return Decimal(str(value)).quantize(m.CENT)
    return value


Route = Callable[[SageAccounting, LedgerEntry, SinkContext], Flow[WriteResult]]

#: (aggregate, op) → flow. Anything absent raises UnsupportedEventError (see below).
ROUTES: dict[tuple[AggregateType, Op], Route] = {
    (AggregateType.CUSTOMER, Op.CREATE): SageAccounting._customer_upsert,
    (AggregateType.CUSTOMER, Op.UPDATE): SageAccounting._customer_upsert,
    (AggregateType.INVOICE, Op.CREATE): SageAccounting._invoice_write,
    (AggregateType.INVOICE, Op.UPDATE): SageAccounting._invoice_write,
    (AggregateType.INVOICE, Op.DELETE): SageAccounting._invoice_delete,
    (AggregateType.PAYMENT, Op.CREATE): SageAccounting._payment_create,
    (AggregateType.PAYMENT, Op.UPDATE): SageAccounting._payment_create,
    (AggregateType.PAYMENT, Op.DELETE): SageAccounting._payment_delete,
    (AggregateType.CREDIT_NOTE, Op.CREATE): SageAccounting._credit_note_create,
    (AggregateType.CREDIT_NOTE, Op.UPDATE): SageAccounting._credit_note_create,
    (AggregateType.CREDIT_NOTE, Op.DELETE): SageAccounting._credit_note_delete,
}

UNSUPPORTED: dict[AggregateType, str] = {
    AggregateType.CUSTOMER: "Sage Accounting refuses to delete a contact that has "
                            "transactions; archive the contact in Sage by hand",
    AggregateType.TAX_RATE: "tax rates are Sage settings, not documents; map the CRM tax "
                            "code to a Sage tax_rate_id in mapping.tax_codes instead",
}
