"""Sage Intacct Platform (XML API 3.0): the write flows, one per event kind.

**Idempotency strategy: native key plus lookup by reference.** Every write is one
request whose ``control/controlid`` is the event's deterministic key
(``context.key_for``) with ``control/uniqueid=true``: Intacct *rejects* (does not
replay) a second request with that id, and the rejection carries no record key, so
the flow then looks the record up with ``readByQuery`` by our reference (invoice
``RECORDID`` = CRM number, adjustment ``RECORDID`` = credit-note number, payment
``DOCNUMBER`` = CRM payment number and customer). Because Intacct does not document
how long a controlid stays unique, and payments have no unique number, a document
whose external id is not yet known is also looked up *before* it is created.
Customers need no lookup: the Intacct ``CUSTOMERID`` is the CRM id, and a second
create is rejected as "already exists".

**Delivery guarantee:** effectively exactly once for invoices, credit adjustments,
customers and payments (a lost response is retried with the same controlid and
resolved by lookup; a replay finds the record by reference). Intacct has no
optimistic-concurrency token in the XML API, so updates are last-writer-wins.

**Cannot be represented** (→ :class:`UnsupportedEventError`, dead letter with the
reason): refunds of payments and credit notes refunded in cash (the XML API 3.0
schema has no AR refund function), edits of payments or credit notes (Intacct posts
them; they can only be reversed), credit notes allocated to more than one invoice
(``create_aradjustment`` names one invoice), tax-rate events (taxes are GL accounts in
the tenant mapping), voids of invoices that have payments or credits applied
(Intacct reverses only unsettled invoices, ``BL03002147``; the flow checks
``TOTALDUE`` before reversing and does not reverse and re-enter the payments itself).

**Tenant-level problems pause the tenant** (:class:`ConfigurationError`): a closed
period, an unauthorised sender id. A customer made inactive in Intacct behind our
back is reactivated and the write re-sent (noted in ``raw["notes"]``).
"""

from __future__ import annotations

from collections.abc import Generator
from decimal import Decimal
from typing import Any

from lxml import etree

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
from sinks.platforms.sage_intacct import mapping as m
from sinks.platforms.sage_intacct.errors import (
    ALREADY_EXISTS,
    CUSTOMER_INACTIVE,
    DUPLICATE_CONTROL_ID,
    PAID_INVOICE,
    PAID_VOID,
    error_of,
    flow_handled,
    intacct_error,
)
from sinks.platforms.sage_intacct.spec import GATEWAY_PATH, SPEC, SageIntacctSettings
from sinks.transport.xmlapi import XmlResponse, envelope, parse_response, xml_request

__all__ = ["SageIntacct"]

Step = Generator[PlatformRequest, PlatformResponse, Any]
_DUPLICATE = frozenset({DUPLICATE_CONTROL_ID, ALREADY_EXISTS})


def _settled_in_part(record: dict[str, Any]) -> bool:
    """Whether an ``ARINVOICE`` record shows payments or credits applied (due below
    total): Intacct would refuse to reverse it, so the void is dead-lettered with a
    clear reason before a doomed request is sent."""
    try:
        return Decimal(str(record["TOTALDUE"])) != Decimal(str(record["TOTALENTERED"]))
    except (KeyError, ArithmeticError, ValueError):
        return False  # fields not returned: Intacct's own BL03002147 still answers


@register
class SageIntacct(Platform):
    """Sage Intacct XML API 3.0 (see the module docstring for guarantees)."""

    spec = SPEC

    # ------------------------------------------------------------------ helpers

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        return intacct_error(response)

    def _send(self, function: etree._Element, purpose: str, context: SinkContext,
              step: str, *, write: bool, allow: frozenset[str] = frozenset()) -> Step:
        """Send one function; return ``(parsed answer, handled kind or None)``. A write
        is unique by controlid; an answer the caller did not ``allow`` is raised."""
        settings = self.tenant_settings(context, SageIntacctSettings)
        control_id = context.key_for(SPEC.name, step if write else f"read:{step}")
        root = envelope(function, sender_id=settings.sender_id, control_id=control_id,
                        unique=write)
        response = yield xml_request(GATEWAY_PATH, root, purpose=purpose,
                                     idempotency_key=control_id)
        parsed = parse_response(response.body)
        if parsed is None:
            error = intacct_error(response, handled=False)
            raise error or PayloadRejectedError(
                f"Intacct answer is not XML: {response.text[:200]}", platform=SPEC.name)
        if parsed.ok:
            return parsed, None
        kind = flow_handled(parsed)
        if kind is not None and kind in allow:
            return parsed, kind
        raise error_of(parsed, response)

    def _find(self, obj: str, query: str, context: SinkContext, step: str) -> Step:
        """The first record of ``obj`` matching ``query``, or ``None``."""
        parsed, _ = yield from self._send(m.query_function(obj, query), f"find {obj.lower()}",
                                          context, step, write=False)
        records = parsed.result().records()
        return records[0] if records else None

    @staticmethod
    def _key(parsed: XmlResponse) -> str:
        key = parsed.result().key
        if not key:
            raise PayloadRejectedError("Intacct answer carries no record key",
                                       platform=SPEC.name)
        return key

    @staticmethod
    def _known(context: SinkContext, kind: str, crm_id: str) -> str:
        found = context.external_ids.get(f"{kind}:{crm_id}")
        if found is None:
            raise ReferenceMissingError(
                f"{kind} {crm_id!r} has not been synced to Sage Intacct yet",
                platform=SPEC.name)
        return found

    def _write(self, function: etree._Element, purpose: str, context: SinkContext, step: str,
               customer_crm_id: str, notes: list[str]) -> Step:
        """A create that may meet an inactive customer (reactivated, then re-sent under
        a new controlid). Returns ``(parsed, kind)`` with kind ``None`` or a duplicate."""
        parsed, kind = yield from self._send(function, purpose, context, step, write=True,
                                             allow=_DUPLICATE | {CUSTOMER_INACTIVE})
        if kind == CUSTOMER_INACTIVE:
            yield from self._send(m.status_function(customer_crm_id, True),
                                  "reactivate customer", context, f"{step}:reactivate",
                                  write=True, allow=_DUPLICATE)
            notes.append(f"customer {m.customer_id(customer_crm_id)} was inactive in Sage "
                         "Intacct; reactivated")
            parsed, kind = yield from self._send(function, purpose, context, f"{step}:again",
                                                 write=True, allow=_DUPLICATE)
        return parsed, kind

    # ------------------------------------------------------------------ entry point

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        kind = event.aggregate_type
        if kind is AggregateType.TAX_RATE:
            raise UnsupportedEventError(
                "Sage Intacct sales taxes are GL accounts mapped per tenant "
                "(mapping.tax_codes); ledgerstream does not create tax rates",
                platform=SPEC.name)
        if kind is AggregateType.CUSTOMER:
            if event.op is Op.DELETE:
                return self._deactivate(event.aggregate_id, context)
            return self._upsert_customer(event.payload, context)
        if kind is AggregateType.INVOICE:
            payload = event.payload
            if (event.op is Op.DELETE or event.event_type.endswith(".voided")
                    or (isinstance(payload, Invoice) and payload.status is InvoiceStatus.VOID)):
                return self._void(entry, context)
            assert isinstance(payload, Invoice)
            return self._write_invoice(entry, payload, context)
        if kind is AggregateType.PAYMENT:
            if event.op is Op.DELETE:
                return self._reverse_payment(entry, context)
            payment = event.payload
            assert isinstance(payment, Payment)
            if payment.kind is PaymentKind.REFUND:
                raise UnsupportedEventError(
                    "the Sage Intacct XML API 3.0 has no AR refund function; record the "
                    f"refund {payment.number} in Intacct by hand", platform=SPEC.name)
            return self._write_payment(entry, payment, context)
        if kind is AggregateType.CREDIT_NOTE:
            note = event.payload
            assert isinstance(note, CreditNote)
            if note.disposition is CreditDisposition.REFUNDED and note.total > 0:
                raise UnsupportedEventError(
                    "a credit note refunded in cash needs an AR refund, which the Sage "
                    "Intacct XML API 3.0 lacks", platform=SPEC.name)
            return self._write_credit_note(entry, note, context)
        raise UnsupportedEventError(f"no Sage Intacct mapping for {kind}", platform=SPEC.name)

    # ------------------------------------------------------------------ customers

    def _customer(self, entry: LedgerEntry, crm_id: str, context: SinkContext) -> Step:
        """Intacct CUSTOMERID of the entry's customer, creating it when not yet known."""
        known = context.external_ids.get(f"customer:{crm_id}")
        if known is not None:
            return known, {}
        customer = entry.customer
        if not isinstance(customer, Customer) or customer.id != crm_id:
            raise ReferenceMissingError(
                f"customer {crm_id!r} is not synced and the entry carries no snapshot",
                platform=SPEC.name)
        yield from self._send(m.customer_function(customer, update=False), "create customer",
                              context, "customer", write=True, allow=_DUPLICATE)
        cid = m.customer_id(crm_id)
        return cid, {f"customer:{crm_id}": cid}

    def _upsert_customer(self, customer: Any, context: SinkContext) -> Flow[WriteResult]:
        assert isinstance(customer, Customer)
        cid = m.customer_id(customer.id)
        if f"customer:{customer.id}" not in context.external_ids:
            parsed, kind = yield from self._send(
                m.customer_function(customer, update=False), "create customer", context,
                "customer", write=True, allow=_DUPLICATE)
            if kind is None:
                return WriteResult(cid, document_number=cid, raw={"key": parsed.result().key})
        yield from self._send(m.customer_function(customer, update=True), "update customer",
                              context, "customer:update", write=True, allow=_DUPLICATE)
        return WriteResult(cid, document_number=cid)

    def _deactivate(self, crm_id: str, context: SinkContext) -> Flow[WriteResult]:
        cid = self._known(context, "customer", crm_id)
        yield from self._send(m.status_function(crm_id, False), "deactivate customer", context,
                              "customer:inactive", write=True, allow=_DUPLICATE)
        return WriteResult(cid)

    # ------------------------------------------------------------------ invoices

    def _find_invoice(self, number: str, context: SinkContext) -> Step:
        return (yield from self._find(
            "ARINVOICE", f"RECORDID = {m.quote(SPEC.truncate('invoice.number', number))}",
            context, "find-invoice"))

    def _write_invoice(self, entry: LedgerEntry, invoice: Invoice,
                       context: SinkContext) -> Flow[WriteResult]:
        mapping = self.tenant_mapping(context)
        settings = self.tenant_settings(context, SageIntacctSettings)
        _, related = yield from self._customer(entry, invoice.customer_id, context)
        exempt = bool(isinstance(entry.customer, Customer) and entry.customer.tax_exempt)
        notes: list[str] = []
        key = context.external_ids.get(f"invoice:{invoice.id}")
        if key is None:
            found = yield from self._find_invoice(invoice.number, context)
            if found is not None:
                key = found["RECORDNO"]
                if entry.event.op is not Op.UPDATE:
                    return WriteResult(key, document_number=found.get("RECORDID"), raw=found,
                                       already_applied=True, related=related)
        if key is None:
            parsed, kind = yield from self._write(
                m.invoice_function(invoice, exempt, mapping, settings), "create invoice",
                context, "invoice", invoice.customer_id, notes)
            if kind is None:
                return WriteResult(self._key(parsed), document_number=invoice.number,
                                   raw={"notes": notes}, related=related)
            found = yield from self._find_invoice(invoice.number, context)
            if found is None:
                raise PayloadRejectedError(
                    f"Intacct reports invoice {invoice.number} as a duplicate but no "
                    "ARINVOICE has that number", platform=SPEC.name)
            return WriteResult(found["RECORDNO"], document_number=invoice.number, raw=found,
                               already_applied=True, related=related)
        lines, _ = yield from self._send(
            m.query_function("ARINVOICEITEM", f"RECORDKEY = {m.quote(key)}", "RECORDNO"),
            "find invoice lines", context, "invoice-lines", write=False)
        existing = len(lines.result().records())
        function = m.update_invoice_function(key, invoice, exempt, existing, mapping)
        yield from self._write(function, "update invoice", context, "invoice:update",
                               invoice.customer_id, notes)
        return WriteResult(key, document_number=invoice.number, raw={"notes": notes},
                           related=related)

    def _void(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        """Reverse (never delete: the audit trail stays) an invoice."""
        crm_id = entry.event.aggregate_id
        key = context.external_ids.get(f"invoice:{crm_id}")
        payload = entry.event.payload
        query = (f"RECORDNO = {m.quote(key)}" if key is not None else
                 f"RECORDID = {m.quote(payload.number)}" if isinstance(payload, Invoice)
                 else None)
        if query is None:
            raise ReferenceMissingError(f"invoice {crm_id!r} has not been synced",
                                        platform=SPEC.name)
        found = yield from self._find("ARINVOICE", query, context, "void-find")
        if found is None:
            raise ReferenceMissingError(f"invoice {crm_id!r} not found in Sage Intacct",
                                        platform=SPEC.name)
        key = found["RECORDNO"]
        if found.get("STATE") == "Reversed":
            return WriteResult(key, raw=found, already_applied=True)
        if _settled_in_part(found):
            raise UnsupportedEventError(
                f"invoice {crm_id} has payments or credits applied in Sage Intacct (total "
                f"{found.get('TOTALENTERED')}, due {found.get('TOTALDUE')}); {PAID_VOID}",
                platform=SPEC.name, vendor_code=PAID_INVOICE)
        when = entry.event.occurred_at.date()
        _, kind = yield from self._send(
            m.reverse_function(key, when, f"voided in CRM ({crm_id})"), "reverse invoice",
            context, "void", write=True, allow=_DUPLICATE)
        return WriteResult(key, raw=found, already_applied=kind is not None)

    # ------------------------------------------------------------------ payments

    def _find_payment(self, payment: Payment, context: SinkContext) -> Step:
        ref = SPEC.truncate("payment.refid", payment.number)
        return (yield from self._find(
            "ARPYMT", f"DOCNUMBER = {m.quote(ref)} AND CUSTOMERID = "
            f"{m.quote(m.customer_id(payment.customer_id))}", context, "find-payment"))

    def _write_payment(self, entry: LedgerEntry, payment: Payment,
                       context: SinkContext) -> Flow[WriteResult]:
        known = context.external_ids.get(f"payment:{payment.id}")
        if known is not None:
            if entry.event.op is Op.UPDATE:
                raise UnsupportedEventError(
                    "Sage Intacct AR payments cannot be edited once posted; reverse and "
                    "re-enter it in Intacct", platform=SPEC.name)
            return WriteResult(known, already_applied=True)
        mapping = self.tenant_mapping(context)
        settings = self.tenant_settings(context, SageIntacctSettings)
        targets = [(self._known(context, "invoice", a.invoice_id), a.amount)
                   for a in payment.allocations if a.amount > 0]
        _, related = yield from self._customer(entry, payment.customer_id, context)
        found = yield from self._find_payment(payment, context)
        if found is not None:
            return WriteResult(found["RECORDNO"], raw=found, already_applied=True,
                               related=related)
        applications: dict[str, Decimal] = {}
        for key, wanted in targets:
            invoice = yield from self._find("ARINVOICE", f"RECORDNO = {m.quote(key)}",
                                            context, f"due:{key}")
            if invoice is None or invoice.get("STATE") == "Reversed":
                continue
            room = Decimal(invoice.get("TOTALDUE") or 0) - applications.get(key, Decimal(0))
            applied = min(wanted, room)
            if applied > 0:
                applications[key] = applications.get(key, Decimal(0)) + applied
        spare = payment.amount - payment.tip
        for key in list(applications):  # never apply more than the money
            applications[key] = min(applications[key], max(spare, Decimal(0)))
            spare -= applications[key]
        notes: list[str] = []
        parsed, kind = yield from self._write(
            m.payment_function(payment, applications, mapping, settings), "create payment",
            context, "payment", payment.customer_id, notes)
        if kind is None:
            return WriteResult(self._key(parsed), document_number=payment.number,
                               raw={"notes": notes}, related=related)
        found = yield from self._find_payment(payment, context)
        if found is None:
            raise PayloadRejectedError(f"payment {payment.number} reported as a duplicate but "
                                       "not found", platform=SPEC.name)
        return WriteResult(found["RECORDNO"], raw=found, already_applied=True, related=related)

    def _reverse_payment(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        from sinks.transport.xmlapi import date_element, element

        key = self._known(context, "payment", entry.event.aggregate_id)
        function = element("reverse_arpayment", children=[
            date_element("datereversed", entry.event.occurred_at.date()),
            element("description", "deleted in CRM")], key=key)
        _, kind = yield from self._send(function, "reverse payment", context, "reverse",
                                        write=True, allow=_DUPLICATE)
        return WriteResult(key, already_applied=kind is not None)

    # ------------------------------------------------------------------ credit notes

    def _write_credit_note(self, entry: LedgerEntry, note: CreditNote,
                           context: SinkContext) -> Flow[WriteResult]:
        known = context.external_ids.get(f"credit_note:{note.id}")
        if known is not None:
            if entry.event.op is Op.UPDATE:
                raise UnsupportedEventError(
                    "Sage Intacct AR adjustments cannot be edited once posted",
                    platform=SPEC.name)
            return WriteResult(known, already_applied=True)
        allocations = [a for a in note.allocations if a.amount > 0]
        if len(allocations) > 1:
            raise UnsupportedEventError(
                "a Sage Intacct AR adjustment applies to one invoice; credit note "
                f"{note.number} is allocated to {len(allocations)}", platform=SPEC.name)
        mapping = self.tenant_mapping(context)
        settings = self.tenant_settings(context, SageIntacctSettings)
        applied_to = None
        if allocations:
            key = self._known(context, "invoice", allocations[0].invoice_id)
            invoice = yield from self._find("ARINVOICE", f"RECORDNO = {m.quote(key)}",
                                            context, "credit-target")
            if invoice is None:
                raise ReferenceMissingError(f"invoice {key} not found", platform=SPEC.name)
            applied_to = invoice.get("RECORDID")
        _, related = yield from self._customer(entry, note.customer_id, context)
        query = f"RECORDID = {m.quote(SPEC.truncate('invoice.number', note.number))}"
        found = yield from self._find("ARADJUSTMENT", query, context, "find-credit")
        if found is not None:
            return WriteResult(found["RECORDNO"], raw=found, already_applied=True,
                               related=related)
        exempt = bool(isinstance(entry.customer, Customer) and entry.customer.tax_exempt)
        notes: list[str] = []
        parsed, kind = yield from self._write(
            m.adjustment_function(note, exempt, applied_to, mapping, settings),
            "create credit adjustment", context, "credit_note", note.customer_id, notes)
        if kind is None:
            return WriteResult(self._key(parsed), document_number=note.number,
                               raw={"notes": notes}, related=related)
        found = yield from self._find("ARADJUSTMENT", query, context, "find-credit")
        if found is None:
            raise PayloadRejectedError(f"credit note {note.number} reported as a duplicate "
                                       "but not found", platform=SPEC.name)
        return WriteResult(found["RECORDNO"], raw=found, already_applied=True, related=related)
