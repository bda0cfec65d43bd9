"""Zoho Books Platform: the write flows, one per event kind.

**Idempotency strategy: upsert by external id.** Every contact, invoice, credit note
and customer payment carries the CRM id in a tenant-configured *unique* custom field
(``settings.unique_field``, e.g. ``cf_ledgerstream_id``) and is written with
``PUT /<module>`` plus ``X-Unique-Identifier-Key``/``-Value`` and ``X-Upsert: true``:
Zoho updates the record holding that value or creates it. A replay, or a retry after
a lost response, therefore lands on the same record. The sub-resources that have no
upsert (payment refunds, credit-note refunds, credit applications) use **lookup
before create**: list the parent's refunds / credits applied, match our reference,
and only then create.

**Delivery guarantee:** effectively exactly once for every supported event, given the
unique custom field exists on the four modules (if it does not, Zoho rejects the
upsert and the tenant is misconfigured). Zoho has no optimistic-concurrency token, so
updates are last-writer-wins; the version stored is ``last_modified_time``.

**Cannot be represented:** tax-rate events (taxes are configured in Zoho and mapped in
the tenant mapping) → :class:`UnsupportedEventError`; tips (Zoho payments have none:
the payment is amount less tip, its description names the unrecorded tip). Refunds are
written against the original payment's *unused* amount (Zoho's "refund an excess
payment"): a refund that re-opens invoices first takes that much off the payment's
applications; one that re-opens nothing and exceeds the unused amount is rejected by
Zoho (dead letter, with Zoho's message).

**Tenant-level problems pause the tenant** (:class:`ConfigurationError`): a transaction
lock date, an unknown unique field or organisation. A customer made inactive in Zoho
behind our back is reactivated and the write retried (noted in ``raw["notes"]``).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

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
    SinkContext,
    WriteResult,
)
from sinks.core.errors import (
    PayloadRejectedError,
    ReferenceMissingError,
    SinkError,
    UnsupportedEventError,
)
from sinks.platforms.registry import register
from sinks.platforms.zoho_books import mapping as m
from sinks.platforms.zoho_books.errors import zoho_error
from sinks.platforms.zoho_books.spec import SPEC, ZohoBooksSettings

__all__ = ["ZohoBooks"]

Step = Generator[PlatformRequest, PlatformResponse, Any]


@register
class ZohoBooks(Platform):
    """Zoho Books API v3 (see the module docstring for guarantees)."""

    spec = SPEC

    # ------------------------------------------------------------------ plumbing-free helpers

    @staticmethod
    def request(method: str, path: str, purpose: str, settings: ZohoBooksSettings, *,
                json: Any = None, headers: Mapping[str, str] | None = None,
                key: str | None = None, accept: frozenset[int] = frozenset(),
                query: Mapping[str, str] | None = None) -> PlatformRequest:
        # Zoho has no idempotency key, and the executor re-sends a keyed request after a
        # lost response: a keyed POST (refund, credit applied, status change) would be
        # applied twice. POSTs go unkeyed, so a lost response comes back to the runner,
        # which re-runs the flow, and the flow looks up before posting.
        return PlatformRequest(
            method, path, purpose,
            query={**(query or {}), "organization_id": settings.organization_id},
            headers={"Content-Type": "application/json", **(headers or {})}
            if json is not None else dict(headers or {}),
            json=json, idempotency_key=None if method == "POST" else key,
            accept_statuses=accept)

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        return zoho_error(response.status, response.headers, response.body)

    @staticmethod
    def _record(response: PlatformResponse, key: str) -> dict[str, Any]:
        data = response.json()
        record = data.get(key) if isinstance(data, dict) else None
        if not isinstance(record, dict):
            raise PayloadRejectedError(
                f"Zoho response has no {key!r} object: {response.text[:200]}",
                platform=SPEC.name, status=response.status)
        return record

    @staticmethod
    def _known(context: SinkContext, kind: str, crm_id: str) -> str:
        found = context.external_ids.get(f"{kind}:{crm_id}")
        if found is None:
            raise ReferenceMissingError(
                f"{kind} {crm_id!r} has not been synced to Zoho Books yet", platform=SPEC.name)
        return found

    def _put(self, module: str, purpose: str, body: dict[str, Any], crm_id: str,
             contact_id: str, step: str, context: SinkContext,
             settings: ZohoBooksSettings) -> Step:
        """Upsert a document; a customer made inactive in Zoho behind our back is
        reactivated (the CRM still bills them) and the write retried once. Returns the
        response or the error, and notes on what was done on the way."""
        notes: list[str] = []
        for attempt in range(2):
            response = yield self.request(
                "PUT", f"/{module}", purpose, settings, json=body,
                headers=m.upsert_headers(settings, crm_id),
                key=context.key_for(SPEC.name, step), accept=frozenset({400}))
            error = zoho_error(response.status, response.headers, response.body)
            if error is None:
                return response, notes
            if attempt == 0 and "inactive" in error.reason.lower():
                yield self.request("POST", f"/contacts/{contact_id}/active",
                                   "reactivate contact", settings)
                notes.append(f"customer {contact_id} was inactive in Zoho Books; reactivated")
                continue
            return error, notes
        raise AssertionError("unreachable")

    @staticmethod
    def _noted(record: dict[str, Any], notes: list[str]) -> dict[str, Any]:
        return {**record, "notes": notes} if notes else record

    # ------------------------------------------------------------------ entry point

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        kind = event.aggregate_type
        if kind is AggregateType.TAX_RATE:
            raise UnsupportedEventError(
                "Zoho Books taxes are configured in Zoho and mapped per tenant "
                "(mapping.tax_codes); ledgerstream does not create or change tax rates",
                platform=SPEC.name)
        settings = self.tenant_settings(context, ZohoBooksSettings)
        if kind is AggregateType.CUSTOMER:
            if event.op is Op.DELETE:
                return self._deactivate(event.aggregate_id, context, settings)
            return self._upsert_customer(entry, event.payload, context, settings)
        if kind is AggregateType.INVOICE:
            payload = event.payload
            if (event.op is Op.DELETE or event.event_type.endswith(".voided")
                    or (isinstance(payload, Invoice) and payload.status is InvoiceStatus.VOID)):
                return self._void("invoices", "invoice", event.aggregate_id, context, settings)
            return self._write_invoice(entry, payload, context, settings)
        if kind is AggregateType.PAYMENT:
            if event.op is Op.DELETE:
                return self._delete_payment(event.aggregate_id, context, settings)
            payment = event.payload
            assert isinstance(payment, Payment)
            if payment.kind is PaymentKind.REFUND:
                return self._refund_payment(payment, context, settings)
            return self._write_payment(entry, payment, context, settings)
        if kind is AggregateType.CREDIT_NOTE:
            if event.op is Op.DELETE:
                return self._void("creditnotes", "credit_note", event.aggregate_id, context,
                                  settings)
            note = event.payload
            assert isinstance(note, CreditNote)
            return self._write_credit_note(entry, note, context, settings)
        raise UnsupportedEventError(f"no Zoho Books mapping for {kind}", platform=SPEC.name)

    # ------------------------------------------------------------------ customers

    def _contact(self, entry: LedgerEntry, customer_id: str, context: SinkContext,
                 settings: ZohoBooksSettings) -> Step:
        """Zoho contact id of the entry's customer, upserting it when not yet known."""
        known = context.external_ids.get(f"customer:{customer_id}")
        if known is not None:
            return known, {}
        customer = entry.customer
        if not isinstance(customer, Customer) or customer.id != customer_id:
            raise ReferenceMissingError(
                f"customer {customer_id!r} is not synced and the entry carries no snapshot",
                platform=SPEC.name)
        record = yield from self._put_contact(customer, context, settings)
        contact_id = str(record["contact_id"])
        return contact_id, {f"customer:{customer_id}": contact_id}

    def _put_contact(self, customer: Customer, context: SinkContext,
                     settings: ZohoBooksSettings) -> Step:
        """Upsert the contact; on a contact-name clash (Zoho names are unique) retry once
        with the CRM id appended to the name."""
        body = m.contact_body(customer, settings)
        for attempt in range(2):
            response = yield self.request(
                "PUT", "/contacts", "upsert contact", settings, json=body,
                headers=m.upsert_headers(settings, customer.id),
                key=context.key_for(SPEC.name, "customer"),
                accept=frozenset({400}) if attempt == 0 else frozenset())
            error = zoho_error(response.status, response.headers, response.body)
            if error is None:
                return self._record(response, "contact")
            if attempt == 0 and "already exists" in error.reason and "contact" in (
                    error.reason.lower()):
                body = {**body, "contact_name": m.disambiguated_name(customer)}
                continue
            raise error
        raise AssertionError("unreachable")

    def _upsert_customer(self, entry: LedgerEntry, customer: Any, context: SinkContext,
                         settings: ZohoBooksSettings) -> Flow[WriteResult]:
        assert isinstance(customer, Customer)
        record = yield from self._put_contact(customer, context, settings)
        contact_id = str(record["contact_id"])
        if not customer.active and record.get("status") != "inactive":
            yield self.request("POST", f"/contacts/{contact_id}/inactive", "deactivate contact",
                               settings)
        return WriteResult(contact_id, version=record.get("last_modified_time"),
                           document_number=record.get("contact_name"), raw=record)

    def _deactivate(self, customer_id: str, context: SinkContext,
                    settings: ZohoBooksSettings) -> Flow[WriteResult]:
        contact_id = self._known(context, "customer", customer_id)
        response = yield self.request("POST", f"/contacts/{contact_id}/inactive",
                                      "deactivate contact", settings)
        return WriteResult(contact_id, raw=response.json())

    # ------------------------------------------------------------------ invoices

    def _write_invoice(self, entry: LedgerEntry, invoice: Any, context: SinkContext,
                       settings: ZohoBooksSettings) -> Flow[WriteResult]:
        assert isinstance(invoice, Invoice)
        mapping = self.tenant_mapping(context)
        contact_id, related = yield from self._contact(entry, invoice.customer_id, context,
                                                       settings)
        body = m.invoice_body(invoice, contact_id, entry.customer, mapping, settings)
        response, notes = yield from self._put("invoices", "upsert invoice", body, invoice.id,
                                               contact_id, "invoice", context, settings)
        if isinstance(response, SinkError):
            voided = yield from self._voided(response, invoice, settings)
            return replace(voided, related=related)
        if "adjustment" in body:
            notes.append(
                f"rounding adjustment {body['adjustment']:+.2f} sent: Zoho Books "
                f"({settings.tax_rounding} tax rounding) would total "
                f"{invoice.total - Decimal(str(body['adjustment'])):.2f}, the CRM "
                f"{invoice.total:.2f}")
        record = self._record(response, "invoice")
        if record.get("status") == "draft" and invoice.status is not InvoiceStatus.DRAFT:
            # Zoho creates invoices as drafts; the CRM has issued this one.
            yield self.request("POST", f"/invoices/{record['invoice_id']}/status/sent",
                               "mark invoice sent", settings,
                               key=context.key_for(SPEC.name, "sent"))
            record = {**record, "status": "sent"}
        return WriteResult(str(record["invoice_id"]), version=record.get("last_modified_time"),
                           document_number=record.get("invoice_number"),
                           raw=self._noted(record, notes), related=related)

    def _voided(self, error: SinkError, invoice: Invoice, settings: ZohoBooksSettings) -> Step:
        """A replayed older version of an invoice Zoho already holds as void: void is
        final there, so the stale write is done (found by its number); any other
        rejection is raised."""
        if "void" not in error.reason.lower() or not settings.use_crm_numbers:
            raise error
        found = yield self.request("GET", "/invoices", "find invoice", settings,
                                   query={"invoice_number": invoice.number})
        for record in found.json().get("invoices", []):
            if record.get("invoice_number") == invoice.number and record.get("status") == "void":
                return WriteResult(str(record["invoice_id"]), raw=record, already_applied=True)
        raise error

    def _void(self, module: str, kind: str, crm_id: str, context: SinkContext,
              settings: ZohoBooksSettings) -> Flow[WriteResult]:
        """Void (never delete: the audit trail stays) an invoice or a credit note."""
        ext = self._known(context, kind, crm_id)
        key = "invoice" if module == "invoices" else "creditnote"
        current = yield self.request("GET", f"/{module}/{ext}", f"get {key}", settings)
        record = self._record(current, key)
        if record.get("status") == "void":
            return WriteResult(ext, version=record.get("last_modified_time"), raw=record,
                               already_applied=True)
        response = yield self.request("POST", f"/{module}/{ext}/status/void", f"void {key}",
                                      settings, key=context.key_for(SPEC.name, "void"))
        return WriteResult(ext, raw=response.json())

    # ------------------------------------------------------------------ payments

    def _write_payment(self, entry: LedgerEntry, payment: Payment, context: SinkContext,
                       settings: ZohoBooksSettings) -> Flow[WriteResult]:
        mapping = self.tenant_mapping(context)
        reference = m.SPEC.truncate("payment.reference_number", payment.number)
        targets = [(self._known(context, "invoice", a.invoice_id), a.amount)
                   for a in payment.allocations if a.amount > 0]
        contact_id, related = yield from self._contact(entry, payment.customer_id, context,
                                                       settings)
        applications: dict[str, Decimal] = {}
        stored: set[str] = set()
        for invoice_id, wanted in targets:
            room, ours = yield from self._room(invoice_id, reference, settings)
            stored |= ours
            applied = min(wanted, room - applications.get(invoice_id, Decimal(0)))
            if applied > 0:
                applications[invoice_id] = applications.get(invoice_id, Decimal(0)) + applied
        for payment_id in sorted(stored):  # a replay: money refunded since stays refunded
            current = yield self.request("GET", f"/customerpayments/{payment_id}",
                                         "get payment", settings)
            record = self._record(current, "payment")
            applied_now = sum((Decimal(str(a["amount_applied"]))
                               for a in record.get("invoices", [])), Decimal(0))
            refunded = (Decimal(str(record["amount"])) - applied_now
                        - Decimal(str(record.get("unused_amount", 0))))
            excess = sum(applications.values(), Decimal(0)) - (
                payment.amount - payment.tip - refunded)
            for invoice_id in reversed(list(applications)):
                take = min(excess, applications[invoice_id])
                if take > 0:
                    applications[invoice_id] -= take
                    excess -= take
        body = m.payment_body(payment, contact_id, applications, mapping, settings)
        response, notes = yield from self._put("customerpayments", "upsert payment", body,
                                               payment.id, contact_id, "payment", context,
                                               settings)
        if isinstance(response, SinkError):
            raise response
        record = self._record(response, "payment")
        return WriteResult(str(record["payment_id"]), version=record.get("last_modified_time"),
                           document_number=record.get("payment_number"),
                           raw=self._noted(record, notes), related=related)

    def _room(self, invoice_id: str, reference: str, settings: ZohoBooksSettings) -> Step:
        """What a payment with ``reference`` may apply to the invoice: its balance plus
        what this same payment already applies (a replay must not shrink it), and the
        ids of such earlier copies. A void invoice takes nothing: the CRM's allocation
        becomes the customer's credit."""
        current = yield self.request("GET", f"/invoices/{invoice_id}", "get invoice", settings)
        invoice = self._record(current, "invoice")
        if invoice.get("status") == "void":
            return Decimal(0), set()
        listing = yield self.request("GET", f"/invoices/{invoice_id}/payments",
                                     "list invoice payments", settings)
        ours = [p for p in listing.json().get("payments", [])
                if p.get("reference_number") == reference]
        already = sum((Decimal(str(p.get("amount", 0))) for p in ours), Decimal(0))
        return (Decimal(str(invoice.get("balance", 0))) + already,
                {str(p["payment_id"]) for p in ours})

    def _delete_payment(self, crm_id: str, context: SinkContext,
                        settings: ZohoBooksSettings) -> Flow[WriteResult]:
        ext = self._known(context, "payment", crm_id)
        response = yield self.request("DELETE", f"/customerpayments/{ext}", "delete payment",
                                      settings, accept=frozenset({404}))
        if response.status == 404:  # deleted by an earlier attempt whose response was lost
            return WriteResult(ext, already_applied=True)
        return WriteResult(ext, raw=response.json())

    def _refund_payment(self, refund: Payment, context: SinkContext,
                        settings: ZohoBooksSettings) -> Flow[WriteResult]:
        """Zoho refunds only a payment's unused amount. When the CRM refund re-opens
        invoices (its allocations), first take that much off the original payment's
        applications to those invoices, unless an earlier attempt already freed it
        (the unused amount covers the refund), then refund."""
        if refund.refund_of is None:
            raise PayloadRejectedError(f"refund {refund.number} names no original payment",
                                       platform=SPEC.name)
        original = self._known(context, "payment", refund.refund_of)
        reopen = [(self._known(context, "invoice", a.invoice_id), a.amount)
                  for a in refund.allocations if a.amount > 0]
        body = m.payment_refund_body(refund, self.tenant_mapping(context))
        listing = yield self.request("GET", f"/customerpayments/{original}/refunds",
                                     "list payment refunds", settings)
        for existing in listing.json().get("payment_refunds", []):
            if existing.get("reference_number") == body["reference_number"]:
                return WriteResult(str(existing["payment_refund_id"]), raw=existing,
                                   already_applied=True)
        current = yield self.request("GET", f"/customerpayments/{original}", "get payment",
                                     settings)
        record = self._record(current, "payment")
        need = refund.amount - Decimal(str(record.get("unused_amount", 0)))
        if need > 0 and reopen:
            applied = {str(a["invoice_id"]): Decimal(str(a["amount_applied"]))
                       for a in record.get("invoices", [])}
            for invoice_id, value in reopen:
                take = min(value, need, applied.get(invoice_id, Decimal(0)))
                if take > 0:
                    applied[invoice_id] -= take
                    need -= take
            yield self.request("PUT", f"/customerpayments/{original}", "reapply payment",
                               settings, json=m.reapplied_payment_body(record, applied),
                               key=context.key_for(SPEC.name, "reapply"))
        response = yield self.request(
            "POST", f"/customerpayments/{original}/refunds", "refund payment", settings,
            json=body, key=context.key_for(SPEC.name, "refund"))
        refunded = self._record(response, "payment_refund")
        return WriteResult(str(refunded["payment_refund_id"]), raw=refunded)

    # ------------------------------------------------------------------ credit notes

    def _write_credit_note(self, entry: LedgerEntry, note: CreditNote, context: SinkContext,
                           settings: ZohoBooksSettings) -> Flow[WriteResult]:
        mapping = self.tenant_mapping(context)
        targets = {a.invoice_id: self._known(context, "invoice", a.invoice_id)
                   for a in note.allocations if a.amount > 0}
        contact_id, related = yield from self._contact(entry, note.customer_id, context,
                                                       settings)
        body = m.credit_note_body(note, contact_id, entry.customer, mapping, settings)
        response, notes = yield from self._put("creditnotes", "upsert credit note", body,
                                               note.id, contact_id, "credit_note", context,
                                               settings)
        if isinstance(response, SinkError):
            raise response
        record = self._record(response, "creditnote")
        ext = str(record["creditnote_id"])
        drift = m.credit_note_drift(note, entry.customer, mapping, settings)
        if drift:
            notes.append(
                f"Zoho Books ({settings.tax_rounding} tax rounding) totals this credit note "
                f"{note.total - drift:.2f}, the CRM {note.total:.2f}; Zoho credit notes take no "
                "rounding adjustment")
        for allocation in note.allocations:
            if allocation.amount <= 0:
                continue
            invoice_ext = targets[allocation.invoice_id]
            applied = yield self.request("GET", f"/invoices/{invoice_ext}/creditsapplied",
                                         "list credits applied", settings)
            if any(str(c.get("creditnote_id")) == ext
                   for c in applied.json().get("credits", [])):
                continue
            yield self.request(
                "POST", f"/creditnotes/{ext}/invoices", "apply credit", settings,
                json=m.apply_credit_body(invoice_ext, allocation.amount),
                key=context.key_for(SPEC.name, f"apply:{allocation.invoice_id}"))
        if note.disposition is CreditDisposition.REFUNDED and note.total > 0:
            refund = m.credit_refund_body(note, mapping)
            listing = yield self.request("GET", f"/creditnotes/{ext}/refunds",
                                         "list credit note refunds", settings)
            if not any(r.get("reference_number") == refund["reference_number"]
                       for r in listing.json().get("creditnote_refunds", [])):
                yield self.request("POST", f"/creditnotes/{ext}/refunds", "refund credit note",
                                   settings, json=refund,
                                   key=context.key_for(SPEC.name, "credit_refund"))
        return WriteResult(ext, version=record.get("last_modified_time"),
                           document_number=record.get("creditnote_number"),
                           raw=self._noted(record, notes), related=related)
