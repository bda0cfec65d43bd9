"""Xero write flows: which requests, in which order, for each CRM event.

Idempotency: every PUT/POST carries ``Idempotency-Key`` =
``context.key_for("xero", step)``, so a retry within Xero's window replays the
original response. Outside it, the flow looks documents up by their number
(``InvoiceNumbers``, ``CreditNoteNumber``) and payments by their unique ``Reference``
before writing, and trusts what it finds only if it belongs to the same contact.

Collection writes use ``?summarizeErrors=false``: Xero then answers 200 with
per-element ``ValidationErrors``, which :mod:`.errors` turns into a rejection quoting
every message. A void that Xero refuses while payments exist deletes those payments
first and records the money as the customer's overpayment, as the CRM keeps it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

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
from sinks.core.contract import PlatformRequest, PlatformResponse, SinkContext, WriteResult
from sinks.core.errors import (
    ConfigurationError,
    PayloadRejectedError,
    ReferenceMissingError,
    UnsupportedEventError,
)
from sinks.core.mapping import CustomerMatchRule
from sinks.platforms.common.money import ZERO, from_wire, round_money
from sinks.platforms.common.run import FlowRun
from sinks.platforms.xero import errors as xerr
from sinks.platforms.xero import mapping as xmap
from sinks.platforms.xero.spec import NAME, XeroSettings

__all__ = ["find_invoice", "plan"]

T = TypeVar("T")
Flow = Generator[PlatformRequest, PlatformResponse, T]

REF_SYSTEMS = frozenset({NAME})
_KINDS = {AggregateType.CUSTOMER: "customer", AggregateType.INVOICE: "invoice",
          AggregateType.PAYMENT: "payment", AggregateType.CREDIT_NOTE: "credit_note"}


@dataclass
class Run(FlowRun[XeroSettings]):
    """One flow's inputs and what it learns on the way."""

    platform: ClassVar[str] = NAME
    settings_model: ClassVar[type[BaseModel]] = XeroSettings

    def request(self, method: str, path: str, purpose: str, *, body: Any = None,
                query: Mapping[str, str] | None = None, step: str | None = None,
                accept: Iterable[int] = ()) -> PlatformRequest:
        headers = {"xero-tenant-id": self.settings.xero_tenant_id, "Accept": "application/json"}
        key = None
        if step is not None:
            key = self.context.key_for(NAME, step)
            headers["Idempotency-Key"] = key
        return PlatformRequest(method, path, purpose, query=query or {}, headers=headers,
                               json=body, idempotency_key=key,
                               accept_statuses=frozenset(accept))

    def result(self, external_id: str, record: Mapping[str, Any] | None = None, *,
               number: str | None = None, already: bool = False) -> WriteResult:
        raw = {**self.raw}
        if record is not None:
            raw["entity"] = dict(record)
        if self.notes.items:
            raw["notes"] = list(self.notes.items)
        return WriteResult(external_id=external_id, document_number=number, raw=raw,
                           already_applied=already, related=dict(self.related))

    def skipped(self, why: str) -> WriteResult:
        return WriteResult(external_id="", raw={"skipped": why}, related=dict(self.related))


# --------------------------------------------------------------------------- requests


def get(run: Run, path: str, collection: str, purpose: str,
        query: Mapping[str, str] | None = None) -> Flow[list[dict[str, Any]]]:
    response = yield run.request("GET", path, purpose, query=query, accept=(404,))
    if response.status == 404:
        return []
    return [dict(r) for r in (response.json() or {}).get(collection) or []]


def _element(response: PlatformResponse, collection: str) -> dict[str, Any]:
    """The written element, or the classified error raised inside the flow (so a flow
    can catch the rejections it knows how to fix, e.g. a taken contact name)."""
    error = xerr.classify(response)
    if error is not None:
        raise error
    return dict((response.json() or {})[collection][0])


def put(run: Run, path: str, collection: str, element: Mapping[str, Any], purpose: str,
        step: str, method: str = "PUT") -> Flow[dict[str, Any]]:
    """One element, written without ``summarizeErrors=false`` on purpose: with it a
    rejected element comes back as HTTP 200, which the Idempotency-Key store keeps,
    so the retry after a bookkeeper fixes the cause (a lock date, an archived
    contact) would replay the rejection forever. A single element gains nothing from
    per-element results; :mod:`.errors` still reads that shape for batch writes."""
    response = yield run.request(method, path, purpose, body={collection: [dict(element)]},
                                 step=step, accept=(200, 400))
    return _element(response, collection)


def post_status(run: Run, path: str, collection: str, element: Mapping[str, Any],
                purpose: str, step: str) -> Flow[dict[str, Any]]:
    """POST to a single resource (update, status change)."""
    response = yield run.request("POST", path, purpose, body={collection: [dict(element)]},
                                 step=step, accept=(200, 400))
    return _element(response, collection)


# --------------------------------------------------------------------------- contacts


def _snapshot(run: Run, crm_id: str) -> Customer:
    payload = run.entry.event.payload
    if isinstance(payload, Customer) and payload.id == crm_id:
        return payload
    if run.entry.customer is not None and run.entry.customer.id == crm_id:
        return run.entry.customer
    raise ReferenceMissingError(
        f"customer {crm_id} is not in Xero yet and the ledger entry carries no snapshot of "
        f"it to create it from", platform=NAME)


def _pick(rows: list[dict[str, Any]], customer: Customer) -> dict[str, Any] | None:
    """Our contact (ContactNumber = CRM id), else the one contact not numbered for
    another CRM customer."""
    own = xmap.contact_number(customer.id)
    mine = [r for r in rows if r.get("ContactNumber") == own]
    if mine:
        return mine[0]
    free = [r for r in rows if not r.get("ContactNumber")]
    return free[0] if len(free) == 1 else None


def find_contact(run: Run, customer: Customer) -> Flow[dict[str, Any] | None]:
    # Our own stamp first: it cannot match anyone else.
    rows = yield from get(run, "/Contacts", "Contacts", "find contact", {
        "where": xmap.where_equals("ContactNumber", xmap.contact_number(customer.id))})
    if rows:
        return rows[0]
    for rule in run.mapping.customer_matching.rules:
        rows = []
        if rule is CustomerMatchRule.EXTERNAL_REF:
            for ext in customer.external_refs:
                if ext.system.lower() in REF_SYSTEMS:
                    rows += yield from get(run, f"/Contacts/{ext.external_id}", "Contacts",
                                           "read contact")
        elif rule is CustomerMatchRule.EMAIL and customer.email:
            rows = yield from get(run, "/Contacts", "Contacts", "find contact", {
                "where": xmap.where_equals("EmailAddress", customer.email)})
        elif rule is CustomerMatchRule.DISPLAY_NAME:
            rows = yield from get(run, "/Contacts", "Contacts", "find contact", {
                "where": xmap.where_equals("Name", customer.display_name.strip())})
        found = _pick(rows, customer)
        if found is not None:
            return found
    return None


def restore(run: Run, contact: Mapping[str, Any], customer: Customer) -> Flow[None]:
    """Un-archive a contact the CRM still bills (Xero refuses documents for archived
    contacts); if the CRM itself has the customer inactive, refuse instead."""
    if not customer.active:
        raise PayloadRejectedError(
            f"customer {customer.id} is inactive in the CRM and archived in Xero "
            f"(ContactID {contact['ContactID']})", platform=NAME)
    ident = str(contact["ContactID"])
    yield from post_status(run, f"/Contacts/{ident}", "Contacts",
                           {"ContactID": ident, "ContactStatus": "ACTIVE"},
                           "restore contact", f"customer:{customer.id}/restore")
    run.notes.add(f"contact {contact.get('Name')!r} was archived in Xero; restored")


def create_contact(run: Run, customer: Customer) -> Flow[dict[str, Any]]:
    body = xmap.contact_body(customer, run.mapping, run.notes)
    step = f"customer:{customer.id}"
    try:
        return (yield from put(run, "/Contacts", "Contacts", body, "create contact", step))
    except PayloadRejectedError as exc:
        if xerr.NAME_TAKEN not in exc.reason:
            raise
    body["Name"] = xmap.disambiguated_name(customer, run.notes)
    return (yield from put(run, "/Contacts", "Contacts", body, "create contact",
                           f"{step}/disambiguated"))


def ensure_contact(run: Run, crm_id: str) -> Flow[str]:
    key = f"customer:{crm_id}"
    known = run.known(key)
    if known:
        return known
    customer = _snapshot(run, crm_id)
    contact = yield from find_contact(run, customer)
    if contact is not None:
        if contact.get("ContactStatus") == "ARCHIVED":
            yield from restore(run, contact, customer)
    elif run.mapping.customer_matching.create_missing:
        contact = yield from create_contact(run, customer)
    else:
        raise ConfigurationError(
            f"customer {crm_id} matches no Xero contact and the tenant does not create "
            f"missing ones (mapping.customer_matching.create_missing)", platform=NAME)
    run.related[key] = str(contact["ContactID"])
    return str(contact["ContactID"])


def customer_flow(run: Run) -> Flow[WriteResult]:
    event = run.entry.event
    key = f"customer:{event.aggregate_id}"
    known = run.known(key)
    if event.op is Op.DELETE:
        if not known:
            return run.skipped("customer was never written to Xero")
        record = yield from post_status(run, f"/Contacts/{known}", "Contacts",
                                        {"ContactID": known, "ContactStatus": "ARCHIVED"},
                                        "archive contact", "customer/archive")
        return run.result(known, record)
    customer = _snapshot(run, event.aggregate_id)
    if not known:
        known = yield from ensure_contact(run, customer.id)
        run.related.pop(key, None)
    body = {**xmap.contact_body(customer, run.mapping, run.notes), "ContactID": known}
    try:
        record = yield from post_status(run, f"/Contacts/{known}", "Contacts", body,
                                        "update contact", "customer/update")
    except PayloadRejectedError as exc:
        if xerr.NAME_TAKEN not in exc.reason:
            raise
        body["Name"] = xmap.disambiguated_name(customer, run.notes)
        record = yield from post_status(run, f"/Contacts/{known}", "Contacts", body,
                                        "update contact", "customer/update/disambiguated")
    return run.result(known, record)


# --------------------------------------------------------------------------- documents

_DOCS = {
    "invoice": ("/Invoices", "Invoices", "InvoiceID", "InvoiceNumber"),
    "credit_note": ("/CreditNotes", "CreditNotes", "CreditNoteID", "CreditNoteNumber"),
}


def find_document(run: Run, kind: str, number: str, contact_id: str
                  ) -> Flow[dict[str, Any] | None]:
    """The live document with ``number`` if it is this contact's; a number taken by
    another contact's document is a rejection (Xero numbers are unique)."""
    path, collection, _, number_field = _DOCS[kind]
    query = ({"InvoiceNumbers": number} if kind == "invoice"
             else {"where": xmap.where_equals(number_field, number)})
    rows = [r for r in (yield from get(run, path, collection, f"find {kind}", query))
            if r.get(number_field) == number and r.get("Status") != "DELETED"]
    for row in rows:
        if (row.get("Contact") or {}).get("ContactID") == contact_id:
            return row
    if rows:
        raise PayloadRejectedError(
            f"{number_field} {number} is already used in Xero by another contact's "
            f"document", platform=NAME)
    return None


def write_document(run: Run, path: str, collection: str, element: dict[str, Any],
                   purpose: str, step: str, customer: Customer, method: str = "PUT"
                   ) -> Flow[dict[str, Any]]:
    """Write; if Xero refuses because the contact was archived behind our back,
    restore it (when the CRM still has the customer active) and retry once."""
    try:
        return (yield from put(run, path, collection, element, purpose, step, method))
    except PayloadRejectedError as exc:
        if xerr.ARCHIVED not in exc.reason:
            raise
    contact_id = element["Contact"]["ContactID"]
    yield from restore(run, {"ContactID": contact_id, "Name": customer.display_name}, customer)
    return (yield from put(run, path, collection, element, purpose,
                           f"{step}/after-restore", method))


def upsert_document(run: Run, kind: str, body: dict[str, Any], known: str | None,
                    customer: Customer) -> Flow[tuple[dict[str, Any], bool]]:
    path, collection, id_field, number_field = _DOCS[kind]
    if not known:
        found = yield from find_document(run, kind, body[number_field],
                                         body["Contact"]["ContactID"])
        if found is not None:
            if run.entry.event.op is Op.CREATE:
                return found, True
            known = str(found[id_field])
    if known:
        element = {**body, id_field: known}
        record = yield from write_document(run, f"{path}/{known}", collection, element,
                                           f"update {kind}", f"{kind}/update", customer,
                                           method="POST")
        return record, False
    return (yield from write_document(run, path, collection, body, f"create {kind}", kind,
                                      customer)), False


def void_invoice(run: Run, ident: str) -> Flow[dict[str, Any]]:
    """VOIDED for an authorised invoice, DELETED for a draft. Xero refuses to void an
    invoice with payments ("cannot be edited as it has a payment ... allocated"): each
    payment's money is first recorded as the customer's overpayment (where the CRM
    keeps it: unapplied credit, which a later refund pays back), then the payment is
    deleted, then the invoice voided. In that order a retry after any step repeats
    nothing: the overpayment is found by its Reference, a deleted payment is no longer
    on the invoice."""
    rows = yield from get(run, f"/Invoices/{ident}", "Invoices", "read invoice")
    if not rows:
        raise ReferenceMissingError(f"invoice {ident} is not in Xero", platform=NAME)
    invoice = rows[0]
    if invoice["Status"] in ("VOIDED", "DELETED"):
        return invoice
    if from_wire(invoice.get("AmountCredited")) > 0:
        raise PayloadRejectedError(
            "Xero cannot void an invoice with credit notes allocated; remove the "
            "allocations in Xero first", platform=NAME)
    number = str(invoice.get("InvoiceNumber") or ident)
    for n, paid in enumerate(invoice.get("Payments") or []):
        reference = f"{paid.get('Reference') or paid['PaymentID']} (void of {number})"
        over = yield from overpay(run, invoice["Contact"]["ContactID"],
                                  from_wire(paid["Amount"]), reference,
                                  run.entry.event.occurred_at.date(),
                                  str(invoice.get("CurrencyCode") or "USD"), "default",
                                  f"invoice/void/{n}/overpayment")
        yield from post_status(run, f"/Payments/{paid['PaymentID']}", "Payments",
                               {"Status": "DELETED"}, "delete payment", f"invoice/void/{n}")
        run.notes.add(f"payment {paid['PaymentID']} ({paid['Amount']}) deleted to void the "
                      f"invoice; kept as the customer's overpayment {over}")
    status = "DELETED" if invoice["Status"] in ("DRAFT", "SUBMITTED") else "VOIDED"
    return (yield from post_status(run, f"/Invoices/{ident}", "Invoices",
                                   {"InvoiceID": ident, "Status": status}, "void invoice",
                                   "invoice/void"))


#: Header fields Xero still lets a sink change on an invoice with money on it.
_HEADER_FIELDS = ("Reference", "DueDate")


def _line_key(line: Mapping[str, Any]) -> tuple[Any, ...]:
    def dec(value: Any, places: int = 2) -> Decimal:
        return round_money(Decimal(str(value if value is not None else 0)), places=places)
    return (str(line.get("Description") or ""), dec(line.get("Quantity"), 4),
            dec(line.get("UnitAmount")), dec(line.get("LineAmount")),
            str(line.get("AccountCode") or ""), str(line.get("TaxType") or ""),
            dec(line.get("TaxAmount")), str(line.get("ItemCode") or ""))


def same_document(body: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Does Xero already hold what ``body`` would write (contact, date, currency, line
    amount type and lines, as the sink wrote them)?"""
    return ((body["Contact"]["ContactID"] == (record.get("Contact") or {}).get("ContactID"))
            and str(record.get("DateString", ""))[:10] == body["Date"]
            and record.get("CurrencyCode", body["CurrencyCode"]) == body["CurrencyCode"]
            and record.get("LineAmountTypes") == body["LineAmountTypes"]
            and [_line_key(x) for x in body["LineItems"]]
            == [_line_key(x) for x in record.get("LineItems") or []])


def settled_invoice_update(run: Run, ident: str, body: Mapping[str, Any], invoice: Invoice
                           ) -> Flow[dict[str, Any] | None]:
    """A new version of an invoice that already carries payments or credit: Xero
    refuses any edit of its lines ("cannot be edited as it has a payment or credit note
    allocated to it"). Payments are their own events, so a version that only moves the
    payment-derived state (status PARTIALLY_PAID/PAID, amount paid/due) writes no lines:
    at most the header fields Xero still accepts. A real edit of the document is
    refused (the CRM must void and re-issue it). ``None``: no money on it, write as
    usual."""
    rows = yield from get(run, f"/Invoices/{ident}", "Invoices", "read invoice")
    if not rows:
        return None
    record = rows[0]
    money_on_it = from_wire(record.get("AmountPaid")) + from_wire(
        record.get("AmountCredited")) > 0
    if record.get("Status") not in ("PAID", "AUTHORISED") or not money_on_it:
        return None
    if not same_document(body, record):
        raise UnsupportedEventError(
            f"invoice {invoice.number} was edited after payments or credit were applied to "
            f"it in Xero, which refuses edits of such invoices; void it in the CRM and "
            f"issue a new one (or remove the payments in Xero first)", platform=NAME)
    held = {"Reference": str(record.get("Reference") or ""),
            "DueDate": str(record.get("DueDateString") or "")[:10]}
    header = {k: body[k] for k in _HEADER_FIELDS if k in body and held[k] != str(body[k])}
    if not header or record.get("Status") == "PAID":
        if header:
            run.notes.add(f"invoice is PAID in Xero; header change {sorted(header)} not "
                          f"written")
        run.raw["unchanged"] = "only payment-derived state changed; lines not re-sent"
        return record
    return (yield from post_status(run, f"/Invoices/{ident}", "Invoices",
                                   {"InvoiceID": ident, **header}, "update invoice header",
                                   "invoice/update/header"))


def invoice_flow(run: Run) -> Flow[WriteResult]:
    event = run.entry.event
    key = f"invoice:{event.aggregate_id}"
    known = run.known(key)
    invoice = event.payload
    if event.op is Op.DELETE or (isinstance(invoice, Invoice)
                                 and invoice.status is InvoiceStatus.VOID):
        if not known:
            return run.skipped("invoice was never written to Xero; nothing to void")
        record = yield from void_invoice(run, known)
        return run.result(known, record, number=record.get("InvoiceNumber"))
    assert isinstance(invoice, Invoice)
    contact_id = yield from ensure_contact(run, invoice.customer_id)
    customer = _snapshot(run, invoice.customer_id)
    body = xmap.invoice_body(invoice, customer, contact_id, run.mapping, run.notes)
    if known and event.op is not Op.CREATE:
        settled = yield from settled_invoice_update(run, known, body, invoice)
        if settled is not None:
            return run.result(known, settled, number=settled.get("InvoiceNumber"))
    record, already = yield from upsert_document(run, "invoice", body, known, customer)
    return run.result(str(record["InvoiceID"]), record, number=record.get("InvoiceNumber"),
                      already=already)


# --------------------------------------------------------------------------- money


def _contact_where(contact_id: str) -> str:
    return f'Contact.ContactID==guid("{contact_id}")'


def overpay(run: Run, contact_id: str, amount: Decimal, reference: str, day: date,
            currency: str, method: str, step: str) -> Flow[str]:
    """Record ``amount`` as the contact's overpayment (customer credit): a
    RECEIVE-OVERPAYMENT bank transaction, unless this contact's overpayment with the
    same Reference exists already (a replay after the idempotency window)."""
    body = xmap.overpayment_body(contact_id=contact_id,
                                 account=run.mapping.deposit_account(method), amount=amount,
                                 day=day, reference=reference, currency=currency)
    rows = yield from get(run, "/Overpayments", "Overpayments", "find overpayment", {
        "where": f'{xmap.where_equals("Reference", body["Reference"])} AND '
                 f'{_contact_where(contact_id)}'})
    live = [r for r in rows if r.get("Status") != "VOIDED"]
    if live:
        return str(live[0]["OverpaymentID"])
    record = yield from put(run, "/BankTransactions", "BankTransactions", body,
                            "record overpayment", step)
    return str(record.get("OverpaymentID") or record.get("BankTransactionID"))


def _reference(payment: Payment, n: int, count: int) -> str:
    return payment.number if count == 1 else f"{payment.number}/{n + 1}"


def payment_flow(run: Run) -> Flow[WriteResult]:
    event = run.entry.event
    key = f"payment:{event.aggregate_id}"
    known = run.known(key)
    payment = event.payload
    if event.op is Op.DELETE:
        if not known:
            return run.skipped("payment was never written to Xero; nothing to delete")
        for n, ident in enumerate(known.split(",")):
            yield from post_status(run, f"/Payments/{ident}", "Payments", {"Status": "DELETED"},
                                   "delete payment", f"payment/delete/{n}")
        return run.result(known)
    assert isinstance(payment, Payment)
    if payment.kind is PaymentKind.REFUND:
        return (yield from refund_flow(run, payment))
    if event.op is Op.UPDATE:
        raise UnsupportedEventError(
            f"payment {payment.number} was edited; Xero payments cannot be edited, only "
            f"deleted — void it in the CRM and record it again", platform=NAME)
    run.raw["deposit_adjustments"] = {"tip": str(payment.tip),
                                      "processor_fee": str(payment.processor_fee)}
    account = run.mapping.deposit_account(payment.method.value)
    left = round_money(payment.amount - payment.tip)
    ids: list[str] = []
    count = len(payment.allocations)
    for n, allocation in enumerate(payment.allocations):
        reference = _reference(payment, n, count)
        existing = yield from get(run, "/Payments", "Payments", "find payment",
                                  {"where": xmap.where_equals("Reference", reference)})
        if existing:  # written before; if since deleted, by a refund or void: keep it so
            ids.append(str(existing[0]["PaymentID"]))
            left -= from_wire(existing[0]["Amount"])
            continue
        invoice_id = _invoice_id(run, allocation)
        rows = yield from get(run, f"/Invoices/{invoice_id}", "Invoices", "read invoice")
        due = from_wire(rows[0].get("AmountDue")) if rows and \
            rows[0].get("Status") == "AUTHORISED" else ZERO
        amount = min(round_money(allocation.amount), due, left)
        if amount < round_money(allocation.amount):
            run.notes.add(f"allocation of {allocation.amount} to invoice "
                          f"{allocation.invoice_id} exceeds what Xero has due ({due}); "
                          f"{amount} applied, the rest is the customer's overpayment")
        if amount <= 0:
            continue
        record = yield from put(run, "/Payments", "Payments", xmap.payment_body(
            account=account, amount=amount, day=payment.received_date, reference=reference,
            invoice_id=invoice_id), "create payment", f"payment/{n}")
        ids.append(str(record["PaymentID"]))
        left -= amount
    if left > 0:
        contact_id = yield from ensure_contact(run, payment.customer_id)
        over = yield from overpay(run, contact_id, left, payment.number,
                                  payment.received_date, payment.currency,
                                  payment.method.value, "payment/overpayment")
        run.raw["overpayment_id"] = over
        ids.append(over)
    return run.result(",".join(ids))


def _invoice_id(run: Run, allocation: Allocation) -> str:
    invoice_id = run.known(f"invoice:{allocation.invoice_id}")
    if not invoice_id:
        raise ReferenceMissingError(
            f"invoice {allocation.invoice_id} was never written to Xero", platform=NAME)
    return invoice_id


def refund_flow(run: Run, refund: Payment) -> Flow[WriteResult]:
    """A CRM refund reverses part of an earlier payment and re-opens what it paid.

    Xero payments cannot be edited or be negative, so for each invoice the refund
    re-opens, the original payment on it is deleted and replaced by one for what is
    left, with a Reference naming the refund — which also makes a replay find it.
    The unallocated rest pays back the customer's unapplied credit, which Xero holds
    as overpayments: see :func:`refund_credit`.
    """
    if not refund.refund_of:
        raise UnsupportedEventError(f"refund {refund.number} names no original payment",
                                    platform=NAME)
    original = run.known(f"payment:{refund.refund_of}")
    if not original:
        raise ReferenceMissingError(
            f"refund {refund.number}: payment {refund.refund_of} was never written to Xero",
            platform=NAME)
    allocated = sum((a.amount for a in refund.allocations), ZERO)
    unallocated = round_money(refund.amount - refund.tip) - round_money(allocated)
    written: list[str] = []
    for n, allocation in enumerate(refund.allocations):
        invoice_id = _invoice_id(run, allocation)
        reference = f"{refund.number} refund of {refund.refund_of}/{n + 1}"
        done = yield from get(run, "/Payments", "Payments", "find payment",
                              {"where": xmap.where_equals("Reference", reference)})
        if any(p.get("Status") != "DELETED" for p in done):
            written += [str(p["PaymentID"]) for p in done if p.get("Status") != "DELETED"]
            continue
        cut = round_money(allocation.amount)
        for ident in original.split(","):
            rows = yield from get(run, f"/Payments/{ident}", "Payments", "read payment")
            if not rows or (rows[0].get("Invoice") or {}).get("InvoiceID") != invoice_id:
                continue
            paid = rows[0]
            amount = from_wire(paid["Amount"])
            if paid.get("Status") != "DELETED":
                yield from post_status(run, f"/Payments/{ident}", "Payments",
                                       {"Status": "DELETED"}, "delete payment",
                                       f"refund/{n}/delete")
            rest = amount - cut
            if rest > 0:
                record = yield from put(run, "/Payments", "Payments", xmap.payment_body(
                    account=str((paid.get("Account") or {}).get("Code")
                                or run.mapping.deposit_account(refund.method.value)),
                    amount=rest, day=refund.received_date, reference=reference,
                    invoice_id=invoice_id), "replace payment", f"refund/{n}/replace")
                written.append(str(record["PaymentID"]))
            break
        else:
            raise ReferenceMissingError(
                f"refund {refund.number}: no payment of {refund.refund_of} on invoice "
                f"{allocation.invoice_id} in Xero", platform=NAME)
    if unallocated > 0:
        written += yield from refund_credit(run, refund, unallocated, original)
    return run.result(",".join(written) or original)


def refund_credit(run: Run, refund: Payment, amount: Decimal, original: str
                  ) -> Flow[list[str]]:
    """Pay ``amount`` of the customer's unapplied credit back (an unallocated CRM
    refund). Xero holds that credit as overpayments (money kept when an invoice was
    voided after payment, or received beyond the invoices); Xero's refund of one is a
    payment against it (``Overpayment.OverpaymentID``, type AROVERPAYMENTPAYMENT),
    which lowers its RemainingCredit. The refunded payment's own overpayments go
    first, then the customer's others, oldest first. Each draw's Reference is
    ``<refund> refund of credit/<n>``, so a replay counts what was already paid back.
    More than Xero holds is refused before anything is written."""
    contact_id = yield from ensure_contact(run, refund.customer_id)
    rows = yield from get(run, "/Overpayments", "Overpayments", "find customer credit",
                          {"where": _contact_where(contact_id)})
    prefix = f"{refund.number} refund of credit/"
    done = [p for o in rows for p in o.get("Payments") or []
            if str(p.get("Reference") or "").startswith(prefix)]
    ids = [str(p["PaymentID"]) for p in done]
    need = round_money(amount) - sum((from_wire(p["Amount"]) for p in done), ZERO)
    if need <= 0:
        return ids
    own = set(original.split(","))
    references = set()
    for ident in own:
        if any(str(o.get("OverpaymentID")) == ident for o in rows):
            continue
        paid = yield from get(run, f"/Payments/{ident}", "Payments", "read payment")
        references |= {str(p.get("Reference")) for p in paid if p.get("Reference")}

    def linked(row: Mapping[str, Any]) -> bool:
        reference = str(row.get("Reference") or "")
        return str(row.get("OverpaymentID")) in own or any(
            reference.startswith(f"{r} ") for r in references)

    candidates = [o for o in rows if o.get("Status") == "AUTHORISED"
                  and from_wire(o.get("RemainingCredit")) > 0
                  and (o.get("CurrencyCode") or refund.currency) == refund.currency]
    candidates.sort(key=lambda o: (not linked(o), str(o.get("DateString") or "")))
    available = sum((from_wire(o.get("RemainingCredit")) for o in candidates), ZERO)
    if available < need:
        raise UnsupportedEventError(
            f"refund {refund.number} pays back {need} {refund.currency} of customer "
            f"{refund.customer_id}'s unapplied credit, but Xero holds only "
            f"{round_money(available)} of it as overpayments; record the money as credit "
            f"in the CRM first",
            platform=NAME)
    account = run.mapping.deposit_account(refund.method.value)
    n = len(done)
    for row in candidates:
        take = min(from_wire(row.get("RemainingCredit")), need)
        n += 1
        record = yield from put(run, "/Payments", "Payments", xmap.payment_body(
            account=account, amount=take, day=refund.received_date,
            reference=f"{prefix}{n}", overpayment_id=str(row["OverpaymentID"])),
            "refund overpayment", f"refund/credit/{n}")
        ids.append(str(record["PaymentID"]))
        need -= take
        if need <= 0:
            break
    run.notes.add(f"{round_money(amount)} paid back from the customer's overpayments")
    return ids


# --------------------------------------------------------------------------- credit notes


def credit_note_flow(run: Run) -> Flow[WriteResult]:
    event = run.entry.event
    key = f"credit_note:{event.aggregate_id}"
    known = run.known(key)
    note = event.payload
    if event.op is Op.DELETE:
        if not known:
            return run.skipped("credit note was never written to Xero; nothing to void")
        record = yield from post_status(run, f"/CreditNotes/{known}", "CreditNotes",
                                        {"CreditNoteID": known, "Status": "VOIDED"},
                                        "void credit note", "credit_note/void")
        return run.result(known, record)
    assert isinstance(note, CreditNote)
    contact_id = yield from ensure_contact(run, note.customer_id)
    customer = _snapshot(run, note.customer_id)
    body = xmap.credit_note_body(note, customer, contact_id, run.mapping, run.notes)
    record, already = yield from upsert_document(run, "credit_note", body, known, customer)
    ident = str(record["CreditNoteID"])
    remaining = from_wire(record.get("RemainingCredit", record.get("Total")))
    if note.disposition is CreditDisposition.REFUNDED and remaining > 0:
        refunded = yield from put(run, "/Payments", "Payments", xmap.payment_body(
            account=run.mapping.deposit_account("refund"), amount=remaining,
            day=note.issue_date, reference=f"{note.number} refund", credit_note_id=ident),
            "refund credit note", "credit_note/refund")
        run.raw["refund_payment_id"] = str(refunded["PaymentID"])
        already = False
    elif note.disposition is CreditDisposition.CREDITED:
        done = {(a.get("Invoice") or {}).get("InvoiceID") for a in record.get("Allocations")
                or []}
        for n, allocation in enumerate(note.allocations):
            invoice_id = _invoice_id(run, allocation)
            if invoice_id in done:
                continue
            rows = yield from get(run, f"/Invoices/{invoice_id}", "Invoices", "read invoice")
            due = from_wire(rows[0].get("AmountDue")) if rows and \
                rows[0].get("Status") == "AUTHORISED" else ZERO
            amount = min(round_money(allocation.amount), due, remaining)
            if amount <= 0:
                run.notes.add(f"credit for invoice {allocation.invoice_id} not allocated: "
                              f"nothing due on it in Xero")
                continue
            yield run.request(
                "PUT", f"/CreditNotes/{ident}/Allocations", "allocate credit note",
                body=xmap.allocation_body(invoice_id, amount, note.issue_date),
                step=f"credit_note/allocate/{n}")
            remaining -= amount
            already = False
    return run.result(ident, record, number=record.get("CreditNoteNumber"), already=already)


# --------------------------------------------------------------------------- entry point


def plan(entry: Any, context: SinkContext) -> Flow[WriteResult]:
    """The flow for one ledger entry; a CREATE the id map already holds is a replay
    and is reported as already applied without a request."""
    run = Run.start(entry, context)
    event = entry.event
    kind = event.aggregate_type
    own = f"{_KINDS.get(kind, '')}:{event.aggregate_id}"
    known = run.known(own)
    if event.op is Op.CREATE and known and kind is not AggregateType.TAX_RATE:
        return WriteResult(external_id=known, already_applied=True,
                           raw={"replay": "known in the id map"})
    if kind is AggregateType.CUSTOMER:
        return (yield from customer_flow(run))
    if kind is AggregateType.INVOICE:
        return (yield from invoice_flow(run))
    if kind is AggregateType.PAYMENT:
        return (yield from payment_flow(run))
    if kind is AggregateType.CREDIT_NOTE:
        return (yield from credit_note_flow(run))
    return run.skipped("tax rates are mapped per tenant (mapping.tax_codes), not synced")


def find_invoice(reference: str, context: SinkContext) -> Flow[WriteResult | None]:
    """An invoice by its CRM number (``InvoiceNumber``), for ``ledgerstream reconcile``."""
    run = Run.start(None, context)
    rows = yield from get(run, "/Invoices", "Invoices", "find invoice",
                          {"InvoiceNumbers": reference})
    return run.result(str(rows[0]["InvoiceID"]), rows[0], number=reference) if rows else None
