"""Reckon One Platform: the write flows, one per event kind.

**Idempotency strategy: lookup by reference before create.** Reckon One v2 has no
idempotency key and no upsert, and its list endpoints take only ``page``/``perPage``
(no server-side filter in the spec). So before every create the flow pages through
the collection and matches client-side: invoices, credit notes and receipts by
``reference`` (the CRM number) and customer; customers by the ``crm:customer:<id>``
line in their ``notes``. Sub-writes are checked the same way: a credit note's
``transactionLinks`` are read before linking it to an invoice. No POST carries an
idempotency key, so the transport never re-sends one after a lost response: the
runner re-runs the whole flow, whose lookup then finds what the lost POST created.

**Deletes are hard** (``DELETE`` is Reckon's only void; PUT/PATCH/DELETE answer 204
without a body). So that a replay after losing the id map does not resurrect a voided
document, the flow first records a tombstone ``crm:deleted:<kind>:<crm id>=<reckon
id>`` in the customer's ``notes``, unlinks the document's payments/credits (the money
stays with the customer as unallocated receipt/credit), then deletes. Lookups consult
the tombstones after the reference search.

**Delivery guarantee:** effectively exactly once for every supported event, *given*
the id map or the reference/notes markers are intact (a bookkeeper editing a
``reference`` or the tombstone lines defeats the lookup: at least once then).
Reckon has no optimistic-concurrency token on documents: updates (PUT of the whole
document) are last-writer-wins; no version is stored.

**Cannot be represented** (:class:`UnsupportedEventError`, never skipped silently):
refunds of payments (v2 has no customer-refund endpoint and ``/payments`` is
read-only), REFUNDED credit notes (the cash refund is the same missing endpoint),
documents in a currency other than the book's, and tax-rate events. Tips are an
income line on the receipt (``mapping.tip_account``); processor fees are not booked
(noted on the receipt).

**Tenant-level problems pause the tenant** (:class:`ConfigurationError`): a lock-off
date, a rejected subscription key, a missing permission, an unknown ledger account. A
customer made inactive in Reckon behind our back is reactivated and the write retried
(noted in ``raw["notes"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from decimal import Decimal
from typing import Any

from schemas.models import (
    AggregateType,
    Allocation,
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
from sinks.platforms.common.money import from_wire
from sinks.platforms.reckon_one import mapping as m
from sinks.platforms.reckon_one.errors import reckon_error
from sinks.platforms.reckon_one.spec import SPEC, ReckonOneSettings
from sinks.platforms.registry import register

__all__ = ["COLLECTIONS", "ReckonOne"]

Step = Generator[PlatformRequest, PlatformResponse, Any]
Record = dict[str, Any]

#: Our kind → (list path, item path prefix, label). The spec lists credit notes at
#: ``/creditnotes`` but creates/reads/deletes them at ``/creditNotes``.
COLLECTIONS: Mapping[str, tuple[str, str, str]] = {
    "invoice": ("invoices", "invoices", "invoice"),
    "credit_note": ("creditnotes", "creditNotes", "credit note"),
    "payment": ("receipts", "receipts", "receipt"),
}
ACCEPT_400 = frozenset({400})
ACCEPT_404 = frozenset({404})


def _ref_id(value: Any) -> str | None:
    """The id of a ``ContactRef``-style object (or a bare id)."""
    if isinstance(value, dict):
        found = value.get("id")
        return str(found) if found is not None else None
    return str(value) if value is not None else None


@register
class ReckonOne(Platform):
    """Reckon One API v2 (see the module docstring for guarantees)."""

    spec = SPEC

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def request(method: str, path: str, purpose: str, settings: ReckonOneSettings, *,
                json: Any = None, accept: frozenset[int] = frozenset(),
                query: Mapping[str, str] | None = None) -> PlatformRequest:
        """A request under ``/{bookId}``. Never an idempotency key: Reckon has none,
        and a key would let the transport re-send a POST whose response was lost."""
        return PlatformRequest(
            method, f"/{settings.book_id}{path}", purpose, query=query or {},
            headers={"Content-Type": "application/json"} if json is not None else {},
            json=json, accept_statuses=accept)

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        return reckon_error(response.status, response.headers, response.body)

    @staticmethod
    def _json(response: PlatformResponse) -> Record:
        data = response.json()
        if not isinstance(data, dict):
            raise PayloadRejectedError(f"Reckon One answered without a JSON object: "
                                       f"{response.text[:200]}", platform=SPEC.name,
                                       status=response.status)
        return data

    def _created_id(self, response: PlatformResponse) -> str:
        found = self._json(response).get("id")
        if not found:
            raise PayloadRejectedError("Reckon One created a record but returned no id",
                                       platform=SPEC.name, status=response.status)
        return str(found)

    @staticmethod
    def _known(context: SinkContext, kind: str, crm_id: str) -> str | None:
        return context.external_ids.get(f"{kind}:{crm_id}")

    def _allocation_targets(self, context: SinkContext, allocations: Iterable[Allocation]
                            ) -> list[tuple[str, Decimal]]:
        """(Reckon invoice id, amount) of each positive allocation; a
        :class:`ReferenceMissingError` for an invoice not synced yet."""
        targets = []
        for allocation in allocations:
            if allocation.amount <= 0:
                continue
            invoice_id = self._known(context, "invoice", allocation.invoice_id)
            if invoice_id is None:
                raise ReferenceMissingError(
                    f"invoice {allocation.invoice_id!r} has not been synced to Reckon One yet",
                    platform=SPEC.name)
            targets.append((invoice_id, allocation.amount))
        return targets

    def _find(self, collection: str, purpose: str, settings: ReckonOneSettings,
              match: Callable[[Record], bool]) -> Step:
        """Page through ``collection`` until ``match`` holds; the record or ``None``."""
        page = 1
        while True:
            response = yield self.request(
                "GET", f"/{collection}", purpose, settings,
                query={"page": str(page), "perPage": str(settings.page_size)})
            rows = self._json(response).get("list") or []
            for row in rows:
                if isinstance(row, dict) and match(row):
                    return row
            if len(rows) < settings.page_size:
                return None
            page += 1

    # ------------------------------------------------------------------ entry point

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        kind = event.aggregate_type
        if kind is AggregateType.TAX_RATE:
            raise UnsupportedEventError(
                "Reckon One tax rates are configured in the book and mapped per tenant "
                "(mapping.tax_codes); ledgerstream does not create or change them",
                platform=SPEC.name)
        payload = event.payload
        if kind is AggregateType.PAYMENT and isinstance(payload, Payment) \
                and payload.kind is PaymentKind.REFUND:
            raise UnsupportedEventError(
                f"refund {payload.number}: Reckon One API v2 has no customer-refund "
                "endpoint (/payments is read-only); record the refund in Reckon by hand",
                platform=SPEC.name)
        if kind is AggregateType.CREDIT_NOTE and isinstance(payload, CreditNote) \
                and payload.disposition is CreditDisposition.REFUNDED and payload.total > 0:
            raise UnsupportedEventError(
                f"credit note {payload.number} was refunded in cash: Reckon One API v2 has "
                "no customer-refund endpoint to pay a credit note out; record it by hand",
                platform=SPEC.name)
        settings = self.tenant_settings(context, ReckonOneSettings)
        if kind is AggregateType.CUSTOMER:
            if event.op is Op.DELETE:
                return self._deactivate(event.aggregate_id, context, settings)
            assert isinstance(payload, Customer)
            return self._write_customer(payload, context, settings)
        if kind is AggregateType.INVOICE:
            if (event.op is Op.DELETE or event.event_type.endswith(".voided")
                    or (isinstance(payload, Invoice) and payload.status is InvoiceStatus.VOID)):
                return self._delete("invoice", entry, context, settings)
            assert isinstance(payload, Invoice)
            return self._write_invoice(entry, payload, context, settings)
        if kind is AggregateType.PAYMENT:
            if event.op is Op.DELETE:
                return self._delete("payment", entry, context, settings)
            assert isinstance(payload, Payment)
            return self._write_receipt(entry, payload, context, settings)
        if kind is AggregateType.CREDIT_NOTE:
            if event.op is Op.DELETE:
                return self._delete("credit_note", entry, context, settings)
            assert isinstance(payload, CreditNote)
            return self._write_credit_note(entry, payload, context, settings)
        raise UnsupportedEventError(f"no Reckon One mapping for {kind}", platform=SPEC.name)

    def find_by_reference(self, reference: str,
                          context: SinkContext) -> Flow[WriteResult | None] | None:
        """Find an invoice by its ``reference`` (the CRM invoice number)."""
        settings = self.tenant_settings(context, ReckonOneSettings)
        wanted = m.reference("invoice", reference)

        def flow() -> Flow[WriteResult | None]:
            found = yield from self._find("invoices", "find invoice", settings,
                                          lambda r: r.get("reference") == wanted)
            if found is None:
                return None
            return WriteResult(str(found["id"]), document_number=found.get("invoiceNumber"),
                               raw=found)
        return flow()

    # ------------------------------------------------------------------ customers

    def _lookup_customer(self, crm_id: str, settings: ReckonOneSettings) -> Step:
        tag = m.customer_marker(crm_id)
        return (yield from self._find(
            "customers", "find customer", settings,
            lambda r: tag in str(r.get("notes") or "").splitlines()))

    def _customer(self, entry: LedgerEntry, crm_id: str, context: SinkContext,
                  settings: ReckonOneSettings) -> Step:
        """The Reckon id of CRM customer ``crm_id``: known, found, or created from the
        entry's customer snapshot. Returns ``(id, related)``."""
        known = self._known(context, "customer", crm_id)
        if known is not None:
            return known, {}
        found = yield from self._lookup_customer(crm_id, settings)
        if found is not None:
            return str(found["id"]), {f"customer:{crm_id}": str(found["id"])}
        customer = entry.customer
        if not isinstance(customer, Customer) or customer.id != crm_id:
            raise ReferenceMissingError(
                f"customer {crm_id!r} is not in Reckon One and the entry carries no snapshot "
                "to create it from", platform=SPEC.name)
        created = yield from self._create_customer(customer, settings)
        return created, {f"customer:{crm_id}": created}

    def _create_customer(self, customer: Customer, settings: ReckonOneSettings) -> Step:
        body = m.customer_body(customer)
        for attempt in range(2):
            response = yield self.request("POST", "/customers", "create customer", settings,
                                          json=body, accept=ACCEPT_400)
            error = reckon_error(response.status, response.headers, response.body)
            if error is None:
                return self._created_id(response)
            if attempt == 0 and "already exists" in error.reason.lower():
                body = {**body, "name": m.disambiguated_name(customer)}
                continue
            raise error
        raise AssertionError("unreachable")

    def _write_customer(self, customer: Customer, context: SinkContext,
                        settings: ReckonOneSettings) -> Flow[WriteResult]:
        known = self._known(context, "customer", customer.id)
        record: Record | None = None
        if known is not None:
            current = yield self.request("GET", f"/customers/{known}", "get customer",
                                         settings, accept=ACCEPT_404)
            record = self._json(current) if current.ok else None
        if record is None:
            record = yield from self._lookup_customer(customer.id, settings)
        if record is None:
            created = yield from self._create_customer(customer, settings)
            return WriteResult(created, raw={"id": created})
        ident = str(record["id"])
        name = m.SPEC.truncate("customer.name", customer.display_name)
        if record.get("name") == m.disambiguated_name(customer):
            name = str(record["name"])
        body = m.customer_body(customer, name=name,
                               notes=m.merge_notes(record.get("notes"), crm_id=customer.id))
        for attempt in range(2):
            response = yield self.request("PUT", f"/customers/{ident}", "update customer",
                                          settings, json=body, accept=ACCEPT_400)
            error = reckon_error(response.status, response.headers, response.body)
            if error is None:
                return WriteResult(ident, raw=body)
            if attempt == 0 and "already exists" in error.reason.lower():
                body = {**body, "name": m.disambiguated_name(customer)}
                continue
            raise error
        raise AssertionError("unreachable")

    def _deactivate(self, crm_id: str, context: SinkContext,
                    settings: ReckonOneSettings) -> Flow[WriteResult]:
        """Customers are made inactive, never deleted: their history stays."""
        ident = self._known(context, "customer", crm_id)
        if ident is None:
            found = yield from self._lookup_customer(crm_id, settings)
            if found is None:
                raise ReferenceMissingError(f"customer {crm_id!r} is not in Reckon One",
                                            platform=SPEC.name)
            ident = str(found["id"])
        response = yield self.request("PATCH", f"/customers/{ident}", "deactivate customer",
                                      settings, json={"status": "Inactive"},
                                      accept=ACCEPT_404)
        return WriteResult(ident, raw={"status": "Inactive"},
                           already_applied=response.status == 404)

    def _reactivate(self, customer_id: str, settings: ReckonOneSettings) -> Step:
        yield self.request("PATCH", f"/customers/{customer_id}", "reactivate customer",
                           settings, json={"status": "Active"})
        return f"customer {customer_id} was inactive in Reckon One; reactivated"

    def _send(self, method: str, path: str, purpose: str, body: Record, customer_id: str,
              settings: ReckonOneSettings, notes: list[str],
              accept: frozenset[int] = frozenset()) -> Step:
        """POST/PUT a document; a customer made inactive behind our back is reactivated
        and the write sent once more (the first was rejected, so nothing exists twice).
        Statuses in ``accept`` come back to the caller."""
        for attempt in range(2):
            response = yield self.request(method, path, purpose, settings, json=body,
                                          accept=ACCEPT_400 | accept)
            if response.status in accept:
                return response
            error = reckon_error(response.status, response.headers, response.body)
            if error is None:
                return response
            if attempt == 0 and "inactive" in error.reason.lower():
                notes.append((yield from self._reactivate(customer_id, settings)))
                continue
            raise error
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ lookups of documents

    def _lookup(self, kind: str, number: str, customer_id: str,
                settings: ReckonOneSettings) -> Step:
        collection, _, label = COLLECTIONS[kind]
        wanted = m.reference("receipt" if kind == "payment" else kind, number)
        return (yield from self._find(
            collection, f"find {label}", settings,
            lambda r: r.get("reference") == wanted and _ref_id(r.get("customer")) == customer_id))

    def _tombstoned(self, kind: str, crm_id: str, customer_id: str,
                    settings: ReckonOneSettings) -> Step:
        """The Reckon id of a document we deleted earlier, from the customer's notes."""
        response = yield self.request("GET", f"/customers/{customer_id}", "get customer",
                                      settings)
        return m.tombstones(self._json(response).get("notes")).get(f"{kind}:{crm_id}")

    def _existing(self, kind: str, crm_id: str, number: str, customer_id: str,
                  context: SinkContext, settings: ReckonOneSettings) -> Step:
        """``(id, deleted)`` of the document if it was written before, else ``(None, False)``."""
        known = self._known(context, kind, crm_id)
        if known is not None:
            return known, False
        found = yield from self._lookup(kind, number, customer_id, settings)
        if found is not None:
            return str(found["id"]), False
        gone = yield from self._tombstoned(kind, crm_id, customer_id, settings)
        return (gone, True) if gone else (None, False)

    # ------------------------------------------------------------------ invoices

    def _write_invoice(self, entry: LedgerEntry, invoice: Invoice, context: SinkContext,
                       settings: ReckonOneSettings) -> Flow[WriteResult]:
        mapping = self.tenant_mapping(context)
        customer_id, related = yield from self._customer(entry, invoice.customer_id, context,
                                                         settings)
        body = m.invoice_body(invoice, customer_id, entry.customer, mapping, settings)
        notes: list[str] = []
        ident, deleted = yield from self._existing("invoice", invoice.id, invoice.number,
                                                   customer_id, context, settings)
        if deleted:
            return self._deleted_result(ident, related)
        if ident is None:
            response = yield from self._send("POST", "/invoices", "create invoice", body,
                                             customer_id, settings, notes)
            ident = self._created_id(response)
        elif entry.event.op is Op.UPDATE:
            response = yield from self._send("PUT", f"/invoices/{ident}", "update invoice",
                                             body, customer_id, settings, notes, ACCEPT_404)
            if response.status == 404:
                return (yield from self._vanished(invoice, ident, customer_id, related,
                                                  settings))
        else:  # a replayed create: the invoice exists (or was deleted by a void since)
            current = yield self.request("GET", f"/invoices/{ident}", "get invoice", settings,
                                         accept=ACCEPT_404)
            if current.status == 404:
                return (yield from self._vanished(invoice, ident, customer_id, related,
                                                  settings))
            record = self._json(current)
            return WriteResult(ident, document_number=record.get("invoiceNumber"), raw=record,
                               already_applied=True,
                               related=related)
        record = yield from self._get("invoice", ident, settings)
        return WriteResult(ident, document_number=record.get("invoiceNumber"),
                           raw={**record, "notes": notes} if notes else record,
                           related=related)

    def _vanished(self, invoice: Invoice, ident: str, customer_id: str,
                  related: Mapping[str, str], settings: ReckonOneSettings) -> Step:
        """A known invoice answered 404: voided by us (tombstone) or deleted by someone."""
        gone = yield from self._tombstoned("invoice", invoice.id, customer_id, settings)
        if gone:
            return self._deleted_result(gone, related)
        raise ReferenceMissingError(
            f"invoice {invoice.number} ({ident}) was deleted in Reckon One by someone else",
            platform=SPEC.name, status=404)

    def _get(self, kind: str, ident: str, settings: ReckonOneSettings) -> Step:
        _, path, label = COLLECTIONS[kind]
        response = yield self.request("GET", f"/{path}/{ident}", f"get {label}", settings)
        return self._json(response)

    @staticmethod
    def _deleted_result(ident: str, related: Mapping[str, str]) -> WriteResult:
        return WriteResult(ident, raw={"deleted": True}, already_applied=True,
                           related=related)

    # ------------------------------------------------------------------ receipts (payments)

    def _write_receipt(self, entry: LedgerEntry, payment: Payment, context: SinkContext,
                       settings: ReckonOneSettings) -> Flow[WriteResult]:
        mapping = self.tenant_mapping(context)
        targets = self._allocation_targets(context, payment.allocations)
        customer_id, related = yield from self._customer(entry, payment.customer_id, context,
                                                         settings)
        ident, deleted = yield from self._existing("payment", payment.id, payment.number,
                                                   customer_id, context, settings)
        if deleted:
            return self._deleted_result(ident, related)
        if ident is not None and entry.event.op is not Op.UPDATE:
            return WriteResult(ident, raw={"id": ident, "found": True}, already_applied=True,
                               related=related)
        ours: dict[str, Decimal] = {}
        if ident is not None:
            current = yield from self._get("payment", ident, settings)
            for link in current.get("transactionLinks") or []:
                ours[str(link["transactionId"])] = from_wire(link.get("transactionAmount"))
        money_left = payment.amount - payment.tip
        links: dict[str, Decimal] = {}
        for invoice_id, wanted in targets:
            response = yield self.request("GET", f"/invoices/{invoice_id}", "get invoice",
                                          settings, accept=ACCEPT_404)
            if response.status == 404:  # voided (deleted): the money stays as credit
                continue
            room = from_wire(self._json(response).get("balance")) + ours.get(invoice_id,
                                                                              Decimal(0))
            applied = min(wanted, room - links.get(invoice_id, Decimal(0)), money_left)
            if applied > 0:
                links[invoice_id] = links.get(invoice_id, Decimal(0)) + applied
                money_left -= applied
        body = m.receipt_body(payment, customer_id, links, mapping, settings)
        notes: list[str] = []
        if ident is None:
            response = yield from self._send("POST", "/receipts", "create receipt", body,
                                             customer_id, settings, notes)
            ident = self._created_id(response)
        else:
            yield from self._send("PUT", f"/receipts/{ident}", "update receipt", body,
                                  customer_id, settings, notes)
        raw: Record = {"id": ident, "links": {k: str(v) for k, v in links.items()}}
        if notes:
            raw["notes"] = notes
        return WriteResult(ident, raw=raw, related=related)

    # ------------------------------------------------------------------ credit notes

    def _write_credit_note(self, entry: LedgerEntry, note: CreditNote, context: SinkContext,
                           settings: ReckonOneSettings) -> Flow[WriteResult]:
        mapping = self.tenant_mapping(context)
        targets = self._allocation_targets(context, note.allocations)
        customer_id, related = yield from self._customer(entry, note.customer_id, context,
                                                         settings)
        body = m.credit_note_body(note, customer_id, entry.customer, mapping, settings)
        notes: list[str] = []
        ident, deleted = yield from self._existing("credit_note", note.id, note.number,
                                                   customer_id, context, settings)
        if deleted:
            return self._deleted_result(ident, related)
        if ident is None:
            response = yield from self._send("POST", "/creditNotes", "create credit note",
                                             body, customer_id, settings, notes)
            ident = self._created_id(response)
        elif entry.event.op is Op.UPDATE:
            yield from self._send("PUT", f"/creditNotes/{ident}", "update credit note", body,
                                  customer_id, settings, notes)
        record = yield from self._get("credit_note", ident, settings)
        linked = {str(link.get("transactionId")) for link in record.get("transactionLinks") or []}
        credit_left = from_wire(record.get("balance"))
        for invoice_id, wanted in targets:
            if invoice_id in linked:  # linked by an earlier attempt
                continue
            response = yield self.request("GET", f"/invoices/{invoice_id}", "get invoice",
                                          settings, accept=ACCEPT_404)
            if response.status == 404:
                continue
            applied = min(wanted, from_wire(self._json(response).get("balance")), credit_left)
            if applied <= 0:
                continue
            yield self.request("POST", f"/creditNotes/{ident}/transactionLinks",
                               "link credit note", settings,
                               json=m.credit_link_body(invoice_id, applied))
            credit_left -= applied
        return WriteResult(ident, document_number=record.get("creditNoteNumber"),
                           raw={**record, "notes": notes} if notes else record,
                           related=related)

    # ------------------------------------------------------------------ void / delete

    def _delete(self, kind: str, entry: LedgerEntry, context: SinkContext,
                settings: ReckonOneSettings) -> Flow[WriteResult]:
        """Tombstone in the customer's notes, unlink, then DELETE (see module doc)."""
        event = entry.event
        payload = event.payload
        crm_id = event.aggregate_id
        _, path, label = COLLECTIONS[kind]
        number = getattr(payload, "number", None)
        crm_customer = getattr(payload, "customer_id", None)
        customer_id = None
        if crm_customer is not None:
            customer_id = self._known(context, "customer", crm_customer)
            if customer_id is None:
                found = yield from self._lookup_customer(crm_customer, settings)
                customer_id = str(found["id"]) if found is not None else None
        ident = self._known(context, kind, crm_id)
        if ident is None and number is not None and customer_id is not None:
            found = yield from self._lookup(kind, number, customer_id, settings)
            ident = str(found["id"]) if found is not None else None
        if ident is None and customer_id is not None:
            gone = yield from self._tombstoned(kind, crm_id, customer_id, settings)
            if gone:
                return WriteResult(gone, raw={"deleted": True}, already_applied=True)
        if ident is None:
            raise ReferenceMissingError(f"{label} {number or crm_id!r} is not in Reckon One; "
                                        "nothing to delete", platform=SPEC.name)
        current = yield self.request("GET", f"/{path}/{ident}", f"get {label}", settings,
                                     accept=ACCEPT_404)
        if current.status == 404:  # deleted by an earlier attempt whose response was lost
            return WriteResult(ident, raw={"deleted": True}, already_applied=True)
        record = self._json(current)
        owner = _ref_id(record.get("customer")) or customer_id
        if owner is not None:
            response = yield self.request("GET", f"/customers/{owner}", "get customer",
                                          settings)
            customer = self._json(response)
            line = m.tombstone(kind, crm_id, ident)
            if line not in str(customer.get("notes") or "").splitlines():
                notes = m.merge_notes(customer.get("notes"), extra=[line])
                yield self.request("PATCH", f"/customers/{owner}", "record deletion",
                                   settings, json={"notes": notes})
        if kind != "payment":
            for link in record.get("transactionLinks") or []:
                if link.get("linkId"):
                    yield self.request(
                        "DELETE", f"/{path}/{ident}/transactionlinks/{link['linkId']}",
                        f"unlink {label}", settings, accept=ACCEPT_404)
        response = yield self.request("DELETE", f"/{path}/{ident}", f"delete {label}",
                                      settings, accept=ACCEPT_404)
        return WriteResult(ident, raw={"deleted": True, "reckon": record},
                           already_applied=response.status == 404)
