"""Odoo Platform: the write flows, one per event kind, over JSON-2 (or ``execute_kw``).

**Idempotency strategy: lookup by reference before create.** Odoo has no
idempotency key and every RPC call is a POST, so nothing may be blindly re-sent: the
transport refuses to repeat a keyless POST after a transient failure (read-only
calls carry a key and may be repeated), and the runner re-runs the whole flow, which
*first looks the document up*:

* customers: ``res.partner.ref`` = CRM customer id (archived partners included);
* invoices / credit notes: ``account.move`` with ``move_type`` ``out_invoice`` /
  ``out_refund``, ``ref`` = CRM document number, and the partner;
* payments and refunds: ``account.payment`` with ``memo`` (``ref`` before 18) = CRM
  payment number, the partner and the direction;
* applications (payment or credit note → invoice): the ``account.partial.reconcile``
  between the two receivable lines.

``ref``/``memo`` were chosen over an ``ir.model.data`` external id because the
reference is written *in the same create* as the document (an external id is a
second create: a response lost between the two leaves an unlabelled document that no
retry finds), needs no Settings-level access rights for the API user, is
trigram-indexed on ``account.move``, and is what an accountant sees. Each step is a
state check followed by at most one write, so every re-run converges.

**Delivery guarantee: effectively exactly once** for the supported events, provided
nobody else creates customer invoices with the same ``ref`` for the same partner in
Odoo (two matches are reported, not guessed: dead letter). Odoo has no optimistic
concurrency token: updates are last-writer-wins; the version stored is
``write_date``, and a document changed in Odoo since our last write is overwritten
with a note. A posted invoice is only rewritten when its lines or dates differ from
the CRM's (reset to draft, rewrite, re-post, and payments that were reconciled with
it re-applied).

**Voids:** ``button_draft`` then ``button_cancel`` (Odoo unreconciles the payments:
their money stays as the customer's outstanding credit). A cancelled document is
final: an older replayed version of it is reported as already applied.

**Cannot be represented:** tax-rate events (taxes are ``account.tax`` records mapped
per tenant) → :class:`UnsupportedEventError`; tips (the payment is amount less tip, a
note says so); a payment whose allocations Odoo's reconciliation cannot reproduce
(Odoo reconciles as much as both sides allow: a payment with unallocated money
whose target invoice stays open more than its allocation) →
:class:`UnsupportedEventError` naming the amounts.

**Tenant-level problems pause the tenant** (:class:`ConfigurationError`): a lock date
covering the document's accounting date (the flow sends ``date`` explicitly so Odoo
refuses instead of moving revenue to the next open period), missing access rights,
an unmapped account/tax/journal/currency. A customer archived in Odoo behind our
back is reactivated and the write sent (noted in ``raw["notes"]``).
"""

from __future__ import annotations

from collections.abc import Generator
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
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.money import ZERO, from_wire, round_money
from sinks.platforms.common.text import Notes
from sinks.platforms.odoo import mapping as m
from sinks.platforms.odoo.errors import odoo_error
from sinks.platforms.odoo.spec import SPEC, OdooSettings
from sinks.platforms.registry import register
from sinks.transport.rpc import rpc_call, rpc_result

__all__ = ["Odoo"]

Step = Generator[PlatformRequest, PlatformResponse, Any]

MOVE_FIELDS = ["id", "name", "ref", "state", "partner_id", "invoice_date", "invoice_date_due",
               "amount_total", "amount_residual", "write_date", "move_type"]
LINE_FIELDS = ["id", "name", "quantity", "price_unit", "tax_ids", "account_id", "sequence"]
NO_ARCHIVE_FILTER = {"active_test": False}


@register
class Odoo(Platform):
    """Odoo 17-19 ``account`` (see the module docstring for guarantees)."""

    spec = SPEC

    # ------------------------------------------------------------------ plumbing-free helpers

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        return odoo_error(response)

    @staticmethod
    def _ask(s: OdooSettings, model: str, method: str, purpose: str, *,
             ids: list[int] | None = None, params: dict[str, Any] | None = None,
             context: dict[str, Any] | None = None) -> Step:
        """One call; returns its result."""
        response = yield rpc_call(s.target, model, method, purpose=purpose, ids=ids,
                                  params=params, context=context)
        return rpc_result(response)

    def _search(self, s: OdooSettings, model: str, purpose: str, domain: list[Any],
                fields: list[str], *, archived: bool = False) -> Step:
        rows = yield from self._ask(s, model, "search_read", purpose,
                                    params={"domain": domain, "fields": fields, "order": "id"},
                                    context=NO_ARCHIVE_FILTER if archived else None)
        return list(rows or [])

    @staticmethod
    def _known(context: SinkContext, kind: str, crm_id: str) -> int:
        found = context.external_ids.get(f"{kind}:{crm_id}")
        if found is None:
            raise ReferenceMissingError(f"{kind} {crm_id!r} has not been synced to Odoo yet",
                                        platform=SPEC.name)
        return int(found.split(",")[0])

    @staticmethod
    def _raw(record: dict[str, Any], notes: Notes) -> dict[str, Any]:
        return {**record, "notes": list(notes.items)} if notes.items else record

    # ------------------------------------------------------------------ entry point

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        event = entry.event
        kind = event.aggregate_type
        if kind is AggregateType.TAX_RATE:
            raise UnsupportedEventError(
                "Odoo taxes are account.tax records configured in Odoo and mapped per tenant "
                "(mapping.tax_codes); ledgerstream does not create or change them",
                platform=SPEC.name)
        s = self.tenant_settings(context, OdooSettings)
        payload = event.payload
        if kind is AggregateType.CUSTOMER:
            if event.op is Op.DELETE:
                return self._archive_customer(event.aggregate_id, context, s)
            assert isinstance(payload, Customer)
            return self._write_customer(payload, context, s)
        if kind is AggregateType.INVOICE:
            if (event.op is Op.DELETE or event.event_type.endswith(".voided")
                    or (isinstance(payload, Invoice) and payload.status is InvoiceStatus.VOID)):
                number = payload.number if isinstance(payload, Invoice) else None
                return self._cancel_move("invoice", "out_invoice", event.aggregate_id, number,
                                         context, s)
            assert isinstance(payload, Invoice)
            return self._write_move(entry, payload, context, s)
        if kind is AggregateType.CREDIT_NOTE:
            if event.op is Op.DELETE:
                number = payload.number if isinstance(payload, CreditNote) else None
                return self._cancel_move("credit_note", "out_refund", event.aggregate_id,
                                         number, context, s)
            assert isinstance(payload, CreditNote)
            return self._write_move(entry, payload, context, s)
        if kind is AggregateType.PAYMENT:
            if event.op is Op.DELETE:
                return self._cancel_payment(event.aggregate_id, context, s)
            assert isinstance(payload, Payment)
            if payload.kind is PaymentKind.REFUND:
                return self._write_refund(entry, payload, context, s)
            return self._write_payment(entry, payload, context, s)
        raise UnsupportedEventError(f"no Odoo mapping for {kind}", platform=SPEC.name)

    # ------------------------------------------------------------------ customers

    def _find_partner(self, customer_id: str, s: OdooSettings) -> Step:
        rows = yield from self._search(s, "res.partner", "find partner",
                                       [["ref", "=", customer_id]], ["id", "active"],
                                       archived=True)
        if len(rows) > 1:
            raise PayloadRejectedError(
                f"{len(rows)} Odoo partners carry ref {customer_id!r}; merge them first",
                platform=SPEC.name)
        return rows[0] if rows else None

    def _create(self, s: OdooSettings, model: str, purpose: str, vals: dict[str, Any]) -> Step:
        result = yield from self._ask(s, model, "create", purpose, params={"vals_list": [vals]})
        return int(result[0] if isinstance(result, list) else result)

    def _partner(self, entry: LedgerEntry, customer_id: str, context: SinkContext,
                 s: OdooSettings, notes: Notes) -> Step:
        """Odoo partner id of the entry's customer (created from the snapshot when new);
        an archived partner is reactivated: the CRM still bills them."""
        known = context.external_ids.get(f"customer:{customer_id}")
        related: dict[str, str] = {}
        if known is not None:
            partner_id = int(known)
            rows = yield from self._ask(s, "res.partner", "read", "read partner",
                                        ids=[partner_id], params={"fields": ["id", "active"]},
                                        context=NO_ARCHIVE_FILTER)
            if not rows:
                raise ReferenceMissingError(f"Odoo partner {partner_id} no longer exists",
                                            platform=SPEC.name)
            active = bool(rows[0].get("active", True))
        else:
            customer = entry.customer
            if not isinstance(customer, Customer) or customer.id != customer_id:
                raise ReferenceMissingError(
                    f"customer {customer_id!r} is not synced and the entry carries no "
                    f"snapshot", platform=SPEC.name)
            found = yield from self._find_partner(customer_id, s)
            if found is None:
                partner_id = yield from self._create(s, "res.partner", "create partner",
                                                     m.partner_vals(customer, s))
                active = True
            else:
                partner_id, active = int(found["id"]), bool(found.get("active", True))
            related[f"customer:{customer_id}"] = str(partner_id)
        if not active:
            yield from self._ask(s, "res.partner", "write", "reactivate partner",
                                 ids=[partner_id], params={"vals": {"active": True}})
            notes.add(f"customer {customer_id} (Odoo partner {partner_id}) was archived in "
                      f"Odoo; reactivated")
        return partner_id, related

    def _write_customer(self, customer: Customer, context: SinkContext,
                        s: OdooSettings) -> Flow[WriteResult]:
        vals = m.partner_vals(customer, s)
        known = context.external_ids.get(f"customer:{customer.id}")
        if known is not None:
            partner_id: int | None = int(known)
        else:
            found = yield from self._find_partner(customer.id, s)
            partner_id = None if found is None else int(found["id"])
        if partner_id is None:
            partner_id = yield from self._create(s, "res.partner", "create partner", vals)
        else:
            yield from self._ask(s, "res.partner", "write", "update partner",
                                 ids=[partner_id], params={"vals": vals})
        return WriteResult(str(partner_id), document_number=customer.display_name,
                           raw={"id": partner_id, "name": customer.display_name})

    def _archive_customer(self, customer_id: str, context: SinkContext,
                          s: OdooSettings) -> Flow[WriteResult]:
        partner_id = self._known(context, "customer", customer_id)
        yield from self._ask(s, "res.partner", "write", "archive partner", ids=[partner_id],
                             params={"vals": {"active": False}})
        return WriteResult(str(partner_id), raw={"id": partner_id, "active": False})

    # ------------------------------------------------------------------ invoices, credit notes

    def _find_move(self, kind: str, move_type: str, crm_id: str, number: str | None,
                   partner_id: int | None, context: SinkContext, s: OdooSettings) -> Step:
        known = context.external_ids.get(f"{kind}:{crm_id}")
        if known is not None:
            rows = yield from self._ask(s, "account.move", "read", f"read {kind}",
                                        ids=[int(known)], params={"fields": MOVE_FIELDS})
            return rows[0] if rows else None
        if number is None:
            raise ReferenceMissingError(f"{kind} {crm_id!r} is not synced and the event "
                                        f"carries no number to look it up by",
                                        platform=SPEC.name)
        domain: list[Any] = [["move_type", "=", move_type], ["ref", "=", number]]
        if partner_id is not None:
            domain.append(["partner_id", "=", partner_id])
        rows = yield from self._search(s, "account.move", f"find {kind}", domain, MOVE_FIELDS)
        if len(rows) > 1:
            raise PayloadRejectedError(
                f"{len(rows)} Odoo {move_type} moves carry ref {number!r} "
                f"(ids {[r['id'] for r in rows]}); resolve the duplicate in Odoo",
                platform=SPEC.name)
        return rows[0] if rows else None

    def _receivable(self, s: OdooSettings, *, move_id: int | None = None,
                    payment_id: int | None = None) -> Step:
        """The receivable journal item of a posted move or payment (id, residual)."""
        domain: list[Any] = ([["move_id", "=", move_id]] if move_id is not None
                             else [["payment_id", "=", payment_id]])
        domain.append(["account_type", "=", "asset_receivable"])
        rows = yield from self._search(s, "account.move.line", "find receivable line", domain,
                                       ["id", "amount_residual", "move_id"])
        return rows[0] if rows else None

    def _partials(self, s: OdooSettings, line_id: int, other: int | None = None) -> Step:
        domain: list[Any] = ([["debit_move_id", "in", [line_id, other]],
                              ["credit_move_id", "in", [line_id, other]]] if other is not None
                             else ["|", ["debit_move_id", "=", line_id],
                                   ["credit_move_id", "=", line_id]])
        rows = yield from self._search(s, "account.partial.reconcile", "list reconciliations",
                                       domain, ["id", "debit_move_id", "credit_move_id",
                                                "amount"])
        return rows

    def _write_move(self, entry: LedgerEntry, doc: Invoice | CreditNote, context: SinkContext,
                    s: OdooSettings) -> Flow[WriteResult]:
        is_invoice = isinstance(doc, Invoice)
        kind, move_type = ("invoice", "out_invoice") if is_invoice else ("credit_note",
                                                                         "out_refund")
        mapping = self.tenant_mapping(context)
        notes = Notes()
        reversed_id = None
        if isinstance(doc, CreditNote) and doc.invoice_id:
            known_invoice = context.external_ids.get(f"invoice:{doc.invoice_id}")
            reversed_id = int(known_invoice) if known_invoice else None
        targets = ([(self._known(context, "invoice", a.invoice_id), a.amount)
                    for a in doc.allocations if a.amount > 0]
                   if isinstance(doc, CreditNote)
                   and doc.disposition is CreditDisposition.CREDITED else [])
        partner_id, related = yield from self._partner(entry, doc.customer_id, context, s,
                                                       notes)
        found = yield from self._find_move(kind, move_type, doc.id, doc.number, partner_id,
                                           context, s)
        post = not (isinstance(doc, Invoice) and doc.status is InvoiceStatus.DRAFT)
        if found is None:
            vals = m.move_vals(doc, partner_id, mapping, s, notes, reversed_entry_id=reversed_id)
            move_id = yield from self._create(s, "account.move", f"create {kind}", vals)
            if post:
                yield from self._ask(s, "account.move", "action_post", f"post {kind}",
                                     ids=[move_id])
        else:
            move_id = int(found["id"])
            if found["state"] == "cancel":
                # Cancelled is final here: this is a replay of an older version.
                return WriteResult(str(move_id), document_number=found.get("name"),
                                   raw=found, already_applied=True, related=related)
            stored = context.versions.get(f"{kind}:{doc.id}")
            if stored is not None and stored != found.get("write_date"):
                notes.add(f"{kind} {doc.number} was changed in Odoo since our last write "
                          f"(write_date {stored} → {found.get('write_date')}); overwritten")
            vals = m.move_vals(doc, partner_id, mapping, s, notes, replace_lines=True,
                               reversed_entry_id=reversed_id)
            yield from self._rewrite(kind, move_id, found, vals, post, s, notes)
        if targets:
            line = yield from self._receivable(s, move_id=move_id)
            if line is not None:
                for invoice_id, amount in targets:
                    yield from self._apply(s, invoice_id, int(line["id"]), amount, notes,
                                           what=f"credit note {doc.number}")
        if isinstance(doc, CreditNote) and doc.disposition is CreditDisposition.REFUNDED:
            yield from self._refund_credit(doc, move_id, partner_id, mapping, s, notes)
        rows = yield from self._ask(s, "account.move", "read", f"read {kind}", ids=[move_id],
                                    params={"fields": MOVE_FIELDS})
        record = rows[0]
        total = from_wire(record.get("amount_total"))
        if total != round_money(doc.total):
            notes.add(f"Odoo computed a total of {total}, the CRM {round_money(doc.total)} "
                      f"(tax rounding or tax configuration differs)")
        return WriteResult(str(move_id), version=record.get("write_date"),
                           document_number=record.get("name"), raw=self._raw(record, notes),
                           related=related)

    def _rewrite(self, kind: str, move_id: int, found: dict[str, Any], vals: dict[str, Any],
                 post: bool, s: OdooSettings, notes: Notes) -> Step:
        """Bring an existing move to ``vals``: a draft is written (and posted); a posted
        move only when its lines or dates differ, re-applying its reconciliations."""
        if found["state"] == "draft":
            yield from self._ask(s, "account.move", "write", f"update {kind}", ids=[move_id],
                                 params={"vals": vals})
            if post:
                yield from self._ask(s, "account.move", "action_post", f"post {kind}",
                                     ids=[move_id])
            return
        lines = yield from self._search(s, "account.move.line", f"read {kind} lines",
                                        [["move_id", "=", move_id],
                                         ["display_type", "=", "product"]], LINE_FIELDS)
        same = (m.line_keys_of_records(lines) == m.line_keys_of_vals(vals)
                and m.m2o(found.get("partner_id")) == vals["partner_id"]
                and found.get("invoice_date") == vals["invoice_date"]
                and found.get("invoice_date_due", vals.get("invoice_date_due"))
                == vals.get("invoice_date_due", found.get("invoice_date_due")))
        if same:
            return
        receivable = yield from self._receivable(s, move_id=move_id)
        counterparts: list[int] = []
        if receivable is not None:
            line_id = int(receivable["id"])
            for partial in (yield from self._partials(s, line_id)):
                debit, credit = m.m2o(partial["debit_move_id"]), m.m2o(partial["credit_move_id"])
                other = credit if debit == line_id else debit
                if other is not None and other not in counterparts:
                    counterparts.append(other)
        yield from self._ask(s, "account.move", "button_draft", f"reset {kind} to draft",
                             ids=[move_id])
        yield from self._ask(s, "account.move", "write", f"update {kind}", ids=[move_id],
                             params={"vals": vals})
        yield from self._ask(s, "account.move", "action_post", f"post {kind}", ids=[move_id])
        for other in counterparts:
            yield from self._ask(s, "account.move", "js_assign_outstanding_line",
                                 "re-apply payment", ids=[move_id], params={"line_id": other})
        notes.add(f"{kind} {vals['ref']} reset to draft, rewritten and re-posted"
                  + (f"; {len(counterparts)} reconciliation(s) re-applied" if counterparts
                     else ""))

    def _apply(self, s: OdooSettings, move_id: int, line_id: int, wanted: Decimal,
               notes: Notes, *, what: str) -> Step:
        """Reconcile journal item ``line_id`` (a payment's or credit note's) with
        invoice ``move_id`` for ``wanted``, unless already done. Odoo applies as much as
        both sides allow; when that would exceed the CRM's allocation the event cannot
        be represented."""
        rows = yield from self._ask(s, "account.move", "read", "read invoice", ids=[move_id],
                                    params={"fields": ["id", "state", "amount_residual",
                                                       "ref"]})
        invoice = rows[0] if rows else {}
        if invoice.get("state") != "posted":
            notes.add(f"{what}: invoice {invoice.get('ref', move_id)} is "
                      f"{invoice.get('state', 'gone')} in Odoo; the amount stays as credit")
            return
        target = yield from self._receivable(s, move_id=move_id)
        if target is None:
            return
        done = yield from self._partials(s, int(target["id"]), line_id)
        already = sum((from_wire(p["amount"]) for p in done), ZERO)
        open_ = abs(from_wire(invoice.get("amount_residual")))
        want = min(round_money(wanted) - already, open_)
        if want <= 0:
            return
        source = yield from self._search(s, "account.move.line", "read payment line",
                                         [["id", "=", line_id]], ["id", "amount_residual"])
        available = abs(from_wire(source[0]["amount_residual"])) if source else ZERO
        if available <= 0:
            return
        if min(available, open_) > want:
            raise UnsupportedEventError(
                f"{what}: Odoo would apply {min(available, open_)} to invoice "
                f"{invoice.get('ref')} (it reconciles as much as both sides allow) but the "
                f"CRM allocates {want}; split the payment in the CRM or apply it by hand",
                platform=SPEC.name)
        yield from self._ask(s, "account.move", "js_assign_outstanding_line", "apply to invoice",
                             ids=[move_id], params={"line_id": line_id})

    def _refund_credit(self, note: CreditNote, move_id: int, partner_id: int,
                       mapping: TenantMapping, s: OdooSettings, notes: Notes) -> Step:
        """A credit note refunded in cash: an outbound customer payment, reconciled with
        the credit note."""
        line = yield from self._receivable(s, move_id=move_id)
        if line is None or from_wire(line["amount_residual"]) == 0:
            return
        journal = m.odoo_id(mapping.deposit_account("default"), "deposit account (journal)")
        payment_id = yield from self._payment(note.number, partner_id, note, note.total,
                                              journal, s, outbound=True)
        paid = yield from self._receivable(s, payment_id=payment_id)
        if paid is not None and from_wire(paid["amount_residual"]) != 0:
            yield from self._ask(s, "account.move", "js_assign_outstanding_line",
                                 "apply refund to credit note", ids=[move_id],
                                 params={"line_id": int(paid["id"])})
        notes.add(f"credit note {note.number} refunded by Odoo payment {payment_id}")

    def _cancel_move(self, kind: str, move_type: str, crm_id: str, number: str | None,
                     context: SinkContext, s: OdooSettings) -> Flow[WriteResult]:
        found = yield from self._find_move(kind, move_type, crm_id, number, None, context, s)
        if found is None:
            raise ReferenceMissingError(f"{kind} {crm_id!r} is not in Odoo; nothing to void",
                                        platform=SPEC.name)
        move_id = int(found["id"])
        if found["state"] == "cancel":
            return WriteResult(str(move_id), document_number=found.get("name"), raw=found,
                               already_applied=True)
        if found["state"] == "posted":
            yield from self._ask(s, "account.move", "button_draft", f"reset {kind} to draft",
                                 ids=[move_id])
        yield from self._ask(s, "account.move", "button_cancel", f"cancel {kind}", ids=[move_id])
        rows = yield from self._ask(s, "account.move", "read", f"read {kind}", ids=[move_id],
                                    params={"fields": MOVE_FIELDS})
        record = rows[0] if rows else found
        return WriteResult(str(move_id), version=record.get("write_date"),
                           document_number=record.get("name"), raw=record)

    # ------------------------------------------------------------------ payments

    def _payment(self, number: str, partner_id: int, source: Payment | CreditNote,
                 amount: Decimal, journal: int, s: OdooSettings, *, outbound: bool,
                 known: int | None = None) -> Step:
        """Find (by memo) or create and post one ``account.payment``; returns its id."""
        if known is not None:
            rows = yield from self._ask(s, "account.payment", "read", "read payment",
                                        ids=[known], params={"fields": ["id", "state"]})
        else:
            rows = yield from self._search(
                s, "account.payment", "find payment",
                [[s.memo_field, "=", number], ["partner_id", "=", partner_id],
                 ["payment_type", "=", "outbound" if outbound else "inbound"]],
                ["id", "state"])
        live = [r for r in rows if r.get("state") != "cancel"]
        if len(live) > 1:
            raise PayloadRejectedError(f"{len(live)} Odoo payments carry memo {number!r}",
                                       platform=SPEC.name)
        if live:
            payment_id = int(live[0]["id"])
            if live[0].get("state") == "draft":
                yield from self._ask(s, "account.payment", "action_post", "post payment",
                                     ids=[payment_id])
            return payment_id
        vals = m.payment_vals(source, partner_id, amount, journal, s, outbound=outbound)
        payment_id = yield from self._create(s, "account.payment", "create payment", vals)
        yield from self._ask(s, "account.payment", "action_post", "post payment",
                             ids=[payment_id])
        return payment_id

    def _write_payment(self, entry: LedgerEntry, payment: Payment, context: SinkContext,
                       s: OdooSettings) -> Flow[WriteResult]:
        mapping = self.tenant_mapping(context)
        notes = Notes()
        targets = [(self._known(context, "invoice", a.invoice_id), a.amount)
                   for a in payment.allocations if a.amount > 0]
        journal = m.odoo_id(mapping.deposit_account(payment.method.value),
                            "deposit account (journal)")
        amount = payment.amount - payment.tip
        if payment.tip:
            notes.add(f"tip of {payment.tip} not recorded in Odoo (payment is {amount})")
        partner_id, related = yield from self._partner(entry, payment.customer_id, context, s,
                                                       notes)
        known = context.external_ids.get(f"payment:{payment.id}")
        payment_id = yield from self._payment(payment.number, partner_id, payment, amount,
                                              journal, s, outbound=False,
                                              known=int(known) if known else None)
        line = yield from self._receivable(s, payment_id=payment_id)
        if line is not None:
            for invoice_id, wanted in targets:
                yield from self._apply(s, invoice_id, int(line["id"]), wanted, notes,
                                       what=f"payment {payment.number}")
        return WriteResult(str(payment_id), document_number=payment.number,
                           raw=self._raw({"id": payment_id}, notes), related=related)

    def _write_refund(self, entry: LedgerEntry, refund: Payment, context: SinkContext,
                      s: OdooSettings) -> Flow[WriteResult]:
        """Money back to the customer: an outbound payment reconciled with the original
        payment. When the refund re-opens invoices (its allocations) and the original
        has too little unapplied money, the original's reconciliation with those
        invoices is undone first, and what remains of it re-applied afterwards."""
        if refund.refund_of is None:
            raise PayloadRejectedError(f"refund {refund.number} names no original payment",
                                       platform=SPEC.name)
        mapping = self.tenant_mapping(context)
        notes = Notes()
        original = self._known(context, "payment", refund.refund_of)
        reopen = [self._known(context, "invoice", a.invoice_id)
                  for a in refund.allocations if a.amount > 0]
        journal = m.odoo_id(mapping.deposit_account(refund.method.value),
                            "deposit account (journal)")
        partner_id, related = yield from self._partner(entry, refund.customer_id, context, s,
                                                       notes)
        origin = yield from self._receivable(s, payment_id=original)
        if origin is None:
            raise ReferenceMissingError(f"original payment {refund.refund_of!r} has no posted "
                                        f"journal item in Odoo", platform=SPEC.name)
        origin_id = int(origin["id"])
        existing = yield from self._search(
            s, "account.payment", "find refund",
            [[s.memo_field, "=", refund.number], ["partner_id", "=", partner_id],
             ["payment_type", "=", "outbound"]], ["id", "state"])
        if not [r for r in existing if r.get("state") != "cancel"]:
            need = round_money(refund.amount) - abs(from_wire(origin["amount_residual"]))
            for invoice_id in reopen if need > 0 else []:
                target = yield from self._receivable(s, move_id=invoice_id)
                if target is None:
                    continue
                for partial in (yield from self._partials(s, int(target["id"]), origin_id)):
                    yield from self._ask(s, "account.move", "js_remove_outstanding_partial",
                                         "unapply payment", ids=[invoice_id],
                                         params={"partial_id": int(partial["id"])})
                    notes.add(f"payment {refund.refund_of} unapplied from invoice {invoice_id} "
                              f"to fund refund {refund.number}")
        refund_id = yield from self._payment(refund.number, partner_id, refund,
                                             refund.amount, journal, s, outbound=True)
        line = yield from self._receivable(s, payment_id=refund_id)
        if line is not None and from_wire(line["amount_residual"]) != 0:
            yield from self._ask(s, "account.move.line", "reconcile",
                                 "match refund with payment", ids=[int(line["id"]), origin_id])
        for invoice_id in reopen:
            rows = yield from self._search(s, "account.move.line", "read payment line",
                                           [["id", "=", origin_id]], ["id", "amount_residual"])
            if not rows or from_wire(rows[0]["amount_residual"]) == 0:
                break
            invoice = yield from self._ask(s, "account.move", "read", "read invoice",
                                           ids=[invoice_id],
                                           params={"fields": ["id", "state",
                                                              "amount_residual"]})
            if invoice and invoice[0].get("state") == "posted" and from_wire(
                    invoice[0].get("amount_residual")) != 0:
                yield from self._ask(s, "account.move", "js_assign_outstanding_line",
                                     "re-apply payment", ids=[invoice_id],
                                     params={"line_id": origin_id})
        return WriteResult(str(refund_id), document_number=refund.number,
                           raw=self._raw({"id": refund_id}, notes), related=related)

    def _cancel_payment(self, crm_id: str, context: SinkContext,
                        s: OdooSettings) -> Flow[WriteResult]:
        payment_id = self._known(context, "payment", crm_id)
        rows = yield from self._ask(s, "account.payment", "read", "read payment",
                                    ids=[payment_id], params={"fields": ["id", "state"]})
        state = rows[0].get("state") if rows else None
        if state is None or state == "cancel":
            return WriteResult(str(payment_id), already_applied=True, raw=rows[0] if rows else None)
        if state != "draft":
            yield from self._ask(s, "account.payment", "action_draft", "reset payment to draft",
                                 ids=[payment_id])
        yield from self._ask(s, "account.payment", "action_cancel", "cancel payment",
                             ids=[payment_id])
        return WriteResult(str(payment_id), raw={"id": payment_id, "state": "cancel"})
