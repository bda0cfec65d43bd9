"""QuickBooks Online write flows: which requests, in which order, for each CRM event.

Each flow is a generator (see :mod:`sinks.core.contract`): it yields a request,
receives the response, and returns a :class:`WriteResult`. Idempotency has two layers:

1. every write carries ``?requestid=`` = ``context.key_for("quickbooks-online", step)``,
   so a retry of the same event within Intuit's replay window gets the original
   response instead of a second document;
2. before creating a numbered document the flow looks it up by ``DocNumber`` (or a
   payment by its customer and marker), so a replay after the window, or after the
   id map lost a write, still finds the earlier document. A document found by number
   is trusted only if its ``PrivateNote`` marker names the same CRM document.

Updates are sparse (``"sparse": true``) with the stored SyncToken; a 5010 stale-object
fault re-reads the entity and retries once with the current token.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
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
    LedgerEntry,
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
from sinks.platforms.common.money import ZERO, from_wire, round_money, wire
from sinks.platforms.common.run import FlowRun
from sinks.platforms.common.text import Notes, marker
from sinks.platforms.quickbooks import errors as qerr
from sinks.platforms.quickbooks import mapping as qmap
from sinks.platforms.quickbooks.spec import NAME, QuickBooksSettings

__all__ = ["find_invoice", "plan"]

T = TypeVar("T")
Flow = Generator[PlatformRequest, PlatformResponse, T]

#: ``ExternalRef.system`` values that name this platform on a CRM customer.
REF_SYSTEMS = frozenset({NAME, "quickbooks", "qbo"})
#: External ids of RefundReceipts are prefixed, so a later void knows the entity.
REFUND_RECEIPT_PREFIX = "RefundReceipt:"
#: QBO names the holder of a duplicate name in the fault detail: "... Id=58".
_HOLDER = re.compile(r"\bId=(\d+)")


@dataclass
class Run(FlowRun[QuickBooksSettings]):
    """One flow's inputs and what it learns on the way."""

    platform: ClassVar[str] = NAME
    settings_model: ClassVar[type[BaseModel]] = QuickBooksSettings

    def request(self, method: str, path: str, purpose: str, *, body: Any = None,
                query: Mapping[str, str] | None = None, step: str | None = None,
                accept: Iterable[int] = ()) -> PlatformRequest:
        params = {"minorversion": str(self.settings.minor_version), **(query or {})}
        key = None
        if step is not None:
            key = self.context.key_for(NAME, step)
            params["requestid"] = key
        return PlatformRequest(method, path, purpose, query=params, json=body,
                               headers={"Accept": "application/json"},
                               idempotency_key=key, accept_statuses=frozenset(accept))

    def result(self, record: Mapping[str, Any], *, already: bool = False,
               external_id: str | None = None) -> WriteResult:
        raw = {**self.raw, "entity": dict(record)}
        if self.notes.items:
            raw["notes"] = list(self.notes.items)
        return WriteResult(
            external_id=external_id or str(record["Id"]),
            version=str(record["SyncToken"]) if record.get("SyncToken") is not None else None,
            document_number=record.get("DocNumber"),
            raw=raw, already_applied=already, related=dict(self.related),
        )

    def skipped(self, why: str) -> WriteResult:
        """Nothing to write (a draft, a tax rate, a delete of something never synced):
        an empty external id, and the reason in ``raw``."""
        return WriteResult(external_id="", raw={"skipped": why}, related=dict(self.related))


# --------------------------------------------------------------------------- requests


def _raise_for(response: PlatformResponse) -> None:
    error = qerr.classify(response)
    if error is not None:
        raise error


def _code(response: PlatformResponse) -> str | None:
    faults = qerr.faults_of(response.body) if response.status >= 400 else []
    return faults[0].code if faults else None


def _path(entity: str) -> str:
    return "/" + entity.lower()


def read(run: Run, entity: str, ident: str) -> Flow[dict[str, Any]]:
    response = yield run.request("GET", f"{_path(entity)}/{ident}", f"read {entity.lower()}")
    return dict(response.json()[entity])


def query(run: Run, entity: str, where: str, purpose: str) -> Flow[list[dict[str, Any]]]:
    text = f"select * from {entity} where {where}"
    response = yield run.request("GET", "/query", purpose, query={"query": text})
    found = (response.json() or {}).get("QueryResponse") or {}
    return [dict(r) for r in found.get(entity, [])]


def write(run: Run, entity: str, body: Mapping[str, Any], purpose: str, step: str,
          operation: Mapping[str, str] | None = None) -> Flow[PlatformResponse]:
    """POST a create/update; 400s come back to the caller, which handles the vendor
    codes it knows and raises the rest."""
    response = yield run.request("POST", _path(entity), purpose, body=dict(body),
                                 query=operation, step=step, accept=(400,))
    return response


def update(run: Run, entity: str, ident: str, version_key: str, fields: Mapping[str, Any],
           purpose: str, step: str, *, operation: Mapping[str, str] | None = None,
           sparse: bool = True, token: str | None = None) -> Flow[dict[str, Any]]:
    """Sparse update (or void/delete with ``operation``) with the stored SyncToken; on
    5010 re-read the entity and retry once with the current one."""
    if token is None:
        token = run.context.versions.get(version_key)
    if token is None:
        token = str((yield from read(run, entity, ident))["SyncToken"])
    extra = {"sparse": True} if sparse else {}
    body = {**fields, "Id": ident, "SyncToken": token, **extra}
    response = yield from write(run, entity, body, purpose, step, operation)
    if _code(response) == qerr.STALE:
        current = yield from read(run, entity, ident)
        body["SyncToken"] = str(current["SyncToken"])
        response = yield from write(run, entity, body, purpose, f"{step}/stale-retry",
                                    operation)
    _raise_for(response)
    return dict(response.json()[entity])


def void(run: Run, entity: str, ident: str, version_key: str, step: str
         ) -> Flow[dict[str, Any]]:
    """Void keeps the document (amounts zeroed) for the audit trail. QBO cannot delete
    a sent invoice cleanly, and a deleted payment leaves no trace; voiding is what a
    bookkeeper would do for both."""
    if entity == "Payment":
        operation = {"operation": "update", "include": "void"}
        return (yield from update(run, entity, ident, version_key, {}, "void payment", step,
                                  operation=operation))
    return (yield from update(run, entity, ident, version_key, {}, f"void {entity.lower()}",
                              step, operation={"operation": "void"}, sparse=False))


# --------------------------------------------------------------------------- customers


def _customer_snapshot(run: Run, crm_id: str) -> Customer:
    payload = run.entry.event.payload
    if isinstance(payload, Customer) and payload.id == crm_id:
        return payload
    if run.entry.customer is not None and run.entry.customer.id == crm_id:
        return run.entry.customer
    raise ReferenceMissingError(
        f"customer {crm_id} is not in QuickBooks yet and the ledger entry carries no "
        f"snapshot of it to create it from", platform=NAME)


def _pick(rows: list[dict[str, Any]], customer: Customer) -> dict[str, Any] | None:
    """Our own customer if a row carries our marker; else the single row that is not
    marked as another CRM customer's (two CRM customers may share a name or email)."""
    tag = marker("customer", customer.id)
    own = [r for r in rows if r.get("Notes") == tag]
    if own:
        return own[0]
    free = [r for r in rows if not str(r.get("Notes") or "").startswith("crm:customer:")]
    return free[0] if len(free) == 1 else None


def find_customer(run: Run, customer: Customer) -> Flow[dict[str, Any] | None]:
    """The tenant's matching rules in order; the first that finds exactly one customer
    (or one carrying our marker) wins."""
    for rule in run.mapping.customer_matching.rules:
        rows: list[dict[str, Any]] = []
        if rule is CustomerMatchRule.EXTERNAL_REF:
            for ext in customer.external_refs:
                if ext.system.lower() not in REF_SYSTEMS:
                    continue
                response = yield run.request("GET", f"/customer/{ext.external_id}",
                                             "read customer", accept=(400, 404))
                if response.ok:
                    rows.append(dict(response.json()["Customer"]))
        elif rule is CustomerMatchRule.EMAIL and customer.email:
            rows = yield from query(run, "Customer",
                                    f"PrimaryEmailAddr = {qmap.quote(customer.email)}",
                                    "find customer")
        elif rule is CustomerMatchRule.DISPLAY_NAME:
            names = (qmap.customer_body(customer, Notes())["DisplayName"],
                     qmap.disambiguated_name(customer, Notes()))
            rows = yield from query(run, "Customer",
                                    f"DisplayName in ({', '.join(map(qmap.quote, names))})",
                                    "find customer")
        found = _pick(rows, customer)
        if found is not None:
            return found
    return None


def reactivate(run: Run, record: Mapping[str, Any], customer: Customer) -> Flow[None]:
    """Make an inactive QBO customer active again, if the CRM says it is active (the
    CRM is billing them, so QuickBooks' inactive flag is stale); otherwise the event
    cannot be written and says why."""
    if not customer.active:
        raise PayloadRejectedError(
            f"customer {customer.id} is inactive in both the CRM and QuickBooks "
            f"(Id={record['Id']}); reactivate it before posting documents to it",
            platform=NAME, vendor_code=qerr.NOT_FOUND)
    yield from update(run, "Customer", str(record["Id"]), "", {"Active": True},
                      "reactivate customer", f"customer:{customer.id}/reactivate",
                      token=str(record["SyncToken"]))
    run.notes.add(f"customer {customer.id} was inactive in QuickBooks; reactivated")


def _name_holder(run: Run, response: PlatformResponse, customer: Customer
                 ) -> Flow[dict[str, Any] | None]:
    """On 6240, the customer holding the name if it is ours (its ``Notes`` carry our
    marker): an earlier attempt created it and the id map lost it."""
    for fault in qerr.faults_of(response.body):
        match = _HOLDER.search(fault.detail)
        if fault.code == qerr.DUPLICATE_NAME and match:
            record = yield from read(run, "Customer", match.group(1))
            if record.get("Notes") == marker("customer", customer.id):
                return record
    return None


def create_customer(run: Run, customer: Customer) -> Flow[tuple[dict[str, Any], bool]]:
    """Create; a taken DisplayName is either ours already (adopted) or someone
    else's (retried once with the CRM id appended). Returns the record and whether it
    was created now from ``customer`` (False: adopted, written by an earlier attempt,
    perhaps from an older snapshot)."""
    body = qmap.customer_body(customer, run.notes)
    step = f"customer:{customer.id}"
    response = yield from write(run, "Customer", body, "create customer", step)
    for retry in (f"{step}/disambiguated", None):
        if _code(response) != qerr.DUPLICATE_NAME:
            break
        ours = yield from _name_holder(run, response, customer)
        if ours is not None:
            return ours, False
        if retry is None:
            break
        body["DisplayName"] = qmap.disambiguated_name(customer, run.notes)
        response = yield from write(run, "Customer", body, "create customer", retry)
    _raise_for(response)
    return dict(response.json()["Customer"]), True


def ensure_customer(run: Run, crm_id: str) -> Flow[str]:
    """The QBO id of a CRM customer: from the id map, else found by the tenant's rules,
    else created (and reported in ``WriteResult.related``)."""
    key = f"customer:{crm_id}"
    known = run.known(key)
    if known:
        return known
    record, _ = yield from _found_or_created(run, _customer_snapshot(run, crm_id))
    run.related[key] = str(record["Id"])
    return str(record["Id"])


def _found_or_created(run: Run, customer: Customer) -> Flow[tuple[dict[str, Any], bool]]:
    """The tenant's matching customer (reactivated if QuickBooks had it inactive), else
    a new one; and whether it was just created from ``customer``."""
    record = yield from find_customer(run, customer)
    if record is not None:
        if not record.get("Active", True):
            yield from reactivate(run, record, customer)
        return record, False
    if run.mapping.customer_matching.create_missing:
        return (yield from create_customer(run, customer))
    raise ConfigurationError(
        f"customer {customer.id} matches no QuickBooks customer and the tenant does not "
        f"create missing ones (mapping.customer_matching.create_missing)", platform=NAME)


def customer_flow(run: Run) -> Flow[WriteResult]:
    event = run.entry.event
    key = f"customer:{event.aggregate_id}"
    known = run.known(key)
    if event.op is Op.DELETE:
        if not known:
            return run.skipped("customer was never written to QuickBooks")
        record = yield from update(run, "Customer", known, key, {"Active": False},
                                   "deactivate customer", "customer/deactivate")
        return run.result(record)
    customer = _customer_snapshot(run, event.aggregate_id)
    if not known:
        record, created = yield from _found_or_created(run, customer)
        if created:
            # written from this very snapshot a moment ago: a read and a sparse update
            # of the same fields would only cost two more calls of the tenant's budget
            return run.result(record)
        known = str(record["Id"])
    body = qmap.customer_body(customer, run.notes)
    try:
        record = yield from update(run, "Customer", known, key, body, "update customer",
                                   "customer/update")
    except PayloadRejectedError as exc:
        if exc.vendor_code != qerr.DUPLICATE_NAME:
            raise
        body["DisplayName"] = qmap.disambiguated_name(customer, run.notes)
        record = yield from update(run, "Customer", known, key, body, "update customer",
                                   "customer/update/disambiguated")
    return run.result(record)


# --------------------------------------------------------------------------- documents


def find_document(run: Run, entity: str, doc_number: str, kind: str, crm_id: str,
                  customer_ref: str | None) -> Flow[dict[str, Any] | None]:
    """The QBO document with ``doc_number`` if it is ours: its marker names the same
    CRM document, or (markerless, e.g. after a void rewrote the note) it belongs to the
    same customer. A number held by a different document is a rejection, not a
    duplicate: writing ours would collide with a bookkeeper's document."""
    rows = yield from query(run, entity, f"DocNumber = {qmap.quote(doc_number)}",
                            f"find {entity.lower()}")
    for row in rows:
        note = str(row.get("PrivateNote") or "")
        if note.startswith(marker(kind, crm_id)):
            return row
        if not note.startswith("crm:") and customer_ref is not None and \
                qmap.ref(customer_ref) == {"value": (row.get("CustomerRef") or {}).get("value")}:
            return row
    if rows:
        raise PayloadRejectedError(
            f"{entity} number {doc_number} is already used in QuickBooks by {entity} "
            f"Id={rows[0]['Id']}, which is not CRM {kind} {crm_id}", platform=NAME,
            vendor_code=qerr.DUPLICATE_DOC_NUMBER)
    return None


def write_for_customer(run: Run, entity: str, body: dict[str, Any], purpose: str, step: str,
                       customer: Customer) -> Flow[PlatformResponse]:
    """Write a customer's document; a 610 on ``CustomerRef`` means the customer was
    made inactive behind our back: reactivate it and retry once."""
    response = yield from write(run, entity, body, purpose, step)
    if _code(response) == qerr.NOT_FOUND and "CustomerRef" in {
            f.element for f in qerr.faults_of(response.body)}:
        record = yield from read(run, "Customer", body["CustomerRef"]["value"])
        if record.get("Active", True):
            _raise_for(response)
        yield from reactivate(run, record, customer)
        response = yield from write(run, entity, body, purpose, f"{step}/after-reactivation")
    return response


def create_document(run: Run, entity: str, body: dict[str, Any], kind: str, crm_id: str,
                    customer: Customer) -> Flow[tuple[dict[str, Any], bool]]:
    """Create; a 6140 duplicate number means an earlier attempt won the race (returns
    it as already applied)."""
    response = yield from write_for_customer(run, entity, body, f"create {entity.lower()}",
                                             kind, customer)
    if _code(response) == qerr.DUPLICATE_DOC_NUMBER:
        found = yield from find_document(run, entity, body["DocNumber"], kind, crm_id,
                                         body["CustomerRef"]["value"])
        if found is not None:
            return found, True
    _raise_for(response)
    return dict(response.json()[entity]), False


def upsert_document(run: Run, entity: str, body: dict[str, Any], kind: str, crm_id: str,
                    customer: Customer, known: str | None) -> Flow[tuple[dict[str, Any], bool]]:
    """Update the known document, or the one found by number, or create it."""
    key = f"{kind}:{crm_id}"
    token = None
    if not known:
        found = yield from find_document(run, entity, body["DocNumber"], kind, crm_id,
                                         body["CustomerRef"]["value"])
        if found is not None:
            if run.entry.event.op is Op.CREATE:
                return found, True
            known, token = str(found["Id"]), str(found["SyncToken"])
    if known:
        record = yield from update(run, entity, known, key, body, f"update {entity.lower()}",
                                   f"{kind}/update", token=token)
        return record, False
    return (yield from create_document(run, entity, body, kind, crm_id, customer))


def invoice_flow(run: Run) -> Flow[WriteResult]:
    event = run.entry.event
    key = f"invoice:{event.aggregate_id}"
    known = run.known(key)
    invoice = event.payload
    if event.op is Op.DELETE or (isinstance(invoice, Invoice)
                                 and invoice.status is InvoiceStatus.VOID):
        if not known:
            return run.skipped("invoice was never written to QuickBooks; nothing to void")
        record = yield from void(run, "Invoice", known, key, "invoice/void")
        return run.result(record)
    assert isinstance(invoice, Invoice)
    if invoice.status is InvoiceStatus.DRAFT and not known:
        return run.skipped("QuickBooks has no draft invoices; written once sent")
    customer_ref = yield from ensure_customer(run, invoice.customer_id)
    customer = _customer_snapshot(run, invoice.customer_id)
    body = qmap.invoice_body(invoice, customer, customer_ref, run.mapping, run.notes)
    record, already = yield from upsert_document(run, "Invoice", body, "invoice", invoice.id,
                                                 customer, known)
    return run.result(record, already=already)


# --------------------------------------------------------------------------- money


def _linked(record: Mapping[str, Any] | None, txn_type: str) -> dict[str, Decimal]:
    """Amounts a payment currently applies, by linked transaction id."""
    out: dict[str, Decimal] = {}
    for line in (record or {}).get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == txn_type:
                txn = str(link["TxnId"])
                out[txn] = out.get(txn, ZERO) + from_wire(line.get("Amount"))
    return out


def applicable(run: Run, allocations: Iterable[Allocation], *,
               current: Mapping[str, Any] | None = None,
               limit: Decimal | None = None) -> Flow[list[tuple[str, Decimal]]]:
    """(QBO invoice id, amount) for each allocation, capped at what QBO says is open on
    the invoice (plus what ``current`` already applies to it) and at ``limit`` overall.
    The CRM lets a payment be allocated beyond an invoice's balance and keeps the
    excess as the customer's credit; QBO refuses, so the excess stays unapplied on the
    payment, which is the same thing in QBO's books."""
    already = _linked(current, "Invoice")
    used: dict[str, Decimal] = {}
    out: list[tuple[str, Decimal]] = []
    remaining = limit
    for allocation in allocations:
        txn = run.known(f"invoice:{allocation.invoice_id}")
        if not txn:
            raise ReferenceMissingError(
                f"invoice {allocation.invoice_id} was never written to QuickBooks",
                platform=NAME)
        invoice = yield from read(run, "Invoice", txn)
        open_ = from_wire(invoice.get("Balance")) + already.get(txn, ZERO) - used.get(txn, ZERO)
        wanted = round_money(allocation.amount)
        amount = max(ZERO, min(wanted, open_))
        if remaining is not None:
            amount = min(amount, remaining)
            remaining -= amount
        if amount != wanted:
            run.notes.add(f"allocation of {wanted} to invoice {allocation.invoice_id} exceeds "
                          f"its open balance; {amount} applied, {wanted - amount} left "
                          f"unapplied")
        used[txn] = used.get(txn, ZERO) + amount
        out.append((txn, amount))
    return out


def find_payment(run: Run, customer_ref: str, crm_id: str) -> Flow[dict[str, Any] | None]:
    rows = yield from query(run, "Payment", f"CustomerRef = {qmap.quote(customer_ref)}",
                            "find payment")
    tag = marker("payment", crm_id)
    return next((r for r in rows if str(r.get("PrivateNote") or "").startswith(tag)), None)


def payment_flow(run: Run) -> Flow[WriteResult]:
    event = run.entry.event
    key = f"payment:{event.aggregate_id}"
    known = run.known(key)
    payment = event.payload
    if event.op is Op.DELETE:
        if not known:
            return run.skipped("payment was never written to QuickBooks; nothing to void")
        record = yield from void(run, "Payment", known, key, "payment/void")
        return run.result(record)
    assert isinstance(payment, Payment)
    if payment.kind is PaymentKind.REFUND:
        return (yield from refund_flow(run, payment))
    run.raw["deposit_adjustments"] = {"tip": str(payment.tip),
                                      "processor_fee": str(payment.processor_fee)}
    customer_ref = yield from ensure_customer(run, payment.customer_id)
    current = None
    if known:
        current = yield from read(run, "Payment", known)
    else:
        current = yield from find_payment(run, customer_ref, payment.id)
    if current is not None and event.op is Op.CREATE:
        return run.result(current, already=True)
    settled = round_money(payment.amount - payment.tip)
    applications = yield from applicable(run, payment.allocations, current=current,
                                         limit=settled)
    body = qmap.payment_body(payment, customer_ref, applications, run.mapping, run.notes)
    if current is not None:
        record = yield from update(run, "Payment", str(current["Id"]), key, body,
                                   "update payment", "payment/update",
                                   token=str(current["SyncToken"]))
        return run.result(record)
    response = yield from write_for_customer(run, "Payment", body, "create payment", "payment",
                                             _customer_snapshot(run, payment.customer_id))
    _raise_for(response)
    return run.result(response.json()["Payment"])


def refund_flow(run: Run, refund: Payment) -> Flow[WriteResult]:
    """A CRM refund reverses (part of) an earlier payment and re-opens what it paid.

    QBO has no negative payment, and a RefundReceipt would reverse income rather than
    re-open the receivable, which is not what the CRM booked. So the refund reduces
    the original payment: its lines on the refunded invoices and its total shrink by
    the refund (voided when nothing is left). The payment's note records each refund
    applied, which makes a replay a no-op even outside the requestid window.
    """
    if not refund.refund_of:
        raise UnsupportedEventError(
            f"refund {refund.number} names no original payment (refund_of); QuickBooks "
            f"needs one to reverse", platform=NAME)
    original_key = f"payment:{refund.refund_of}"
    original = run.known(original_key)
    if not original:
        raise ReferenceMissingError(
            f"refund {refund.number}: payment {refund.refund_of} was never written to "
            f"QuickBooks", platform=NAME)
    record = yield from read(run, "Payment", original)
    tag = marker("refund", refund.id)
    note = str(record.get("PrivateNote") or "")
    if f"{tag} " in note or from_wire(record.get("TotalAmt")) == 0:
        return run.result(record, already=True)
    amount = round_money(refund.amount - refund.tip)
    total = from_wire(record.get("TotalAmt")) - amount
    if total < 0:
        raise PayloadRejectedError(
            f"refund {refund.number} of {amount} exceeds what is left of payment "
            f"{refund.refund_of} in QuickBooks ({from_wire(record.get('TotalAmt'))})",
            platform=NAME)
    if total == 0:
        voided = yield from void(run, "Payment", original, original_key, "refund/void")
        return run.result(voided)
    held = sum((a for a in _linked(record, "Invoice").values()), ZERO)
    unallocated = amount - round_money(sum((a.amount for a in refund.allocations), ZERO))
    unapplied = from_wire(record.get("TotalAmt")) - held
    if unallocated > unapplied:
        # Money back beyond the customer's credit on this payment, re-opening no
        # invoice: the customer owes it, with no invoice to carry it. QBO would need a
        # Check/JournalEntry to A/R, which this sink does not write; cutting the
        # payment's invoice lines instead would re-open invoices the CRM keeps paid.
        raise UnsupportedEventError(
            f"refund {refund.number} returns {unallocated} not allocated to any invoice, "
            f"but payment {refund.refund_of} holds only {unapplied} of unapplied credit in "
            f"QuickBooks; a refund that leaves the customer owing without an invoice is "
            f"not written by this sink (record it against the invoices it re-opens, or as "
            f"a cheque to A/R in QuickBooks)", platform=NAME)
    cuts: dict[str, Decimal] = {}
    for allocation in refund.allocations:
        txn = run.known(f"invoice:{allocation.invoice_id}")
        if txn:
            cuts[txn] = cuts.get(txn, ZERO) + round_money(allocation.amount)
    lines = []
    for line in record.get("Line") or []:
        links = [link for link in line.get("LinkedTxn") or [] if link.get("TxnType") ==
                 "Invoice"]
        line_amount = from_wire(line.get("Amount"))
        if links:
            txn = str(links[0]["TxnId"])
            cut = min(cuts.get(txn, ZERO), line_amount)
            cuts[txn] = cuts.get(txn, ZERO) - cut
            line_amount -= cut
        if line_amount > 0:
            lines.append({"Amount": wire(line_amount), "LinkedTxn": line.get("LinkedTxn")})
    applied = sum((from_wire(line["Amount"]) for line in lines), ZERO)
    if applied > total:
        raise PayloadRejectedError(
            f"refund {refund.number}: the payment would apply {applied} but keep only "
            f"{total}; allocate the refund to the invoices it re-opens", platform=NAME)
    fields = {"TotalAmt": wire(total), "Line": lines,
              "PrivateNote": qmap.private_note(
                  "payment", refund.refund_of,
                  note.partition(" | ")[2] or None,
                  f"{tag} {refund.number} {amount} on {refund.received_date}", notes=run.notes)}
    updated = yield from update(run, "Payment", original, original_key, fields,
                                "refund payment", "refund", token=str(record["SyncToken"]))
    return run.result(updated)


# --------------------------------------------------------------------------- credit notes


def credit_note_flow(run: Run) -> Flow[WriteResult]:
    event = run.entry.event
    key = f"credit_note:{event.aggregate_id}"
    known = run.known(key)
    note = event.payload
    if event.op is Op.DELETE:
        if not known:
            return run.skipped("credit note was never written to QuickBooks; nothing to void")
        if known.startswith(REFUND_RECEIPT_PREFIX):
            ident = known.removeprefix(REFUND_RECEIPT_PREFIX)
            record = yield from void(run, "RefundReceipt", ident, key, "credit_note/void")
            return run.result(record, external_id=known)
        record = yield from void(run, "CreditMemo", known, key, "credit_note/void")
        return run.result(record)
    assert isinstance(note, CreditNote)
    customer_ref = yield from ensure_customer(run, note.customer_id)
    customer = _customer_snapshot(run, note.customer_id)
    if note.disposition is CreditDisposition.REFUNDED:
        body = qmap.refund_receipt_body(note, customer, customer_ref, run.mapping, run.notes)
        record, already = yield from upsert_document(
            run, "RefundReceipt", body, "credit_note", note.id, customer,
            known.removeprefix(REFUND_RECEIPT_PREFIX) if known else None)
        return run.result(record, already=already,
                          external_id=REFUND_RECEIPT_PREFIX + str(record["Id"]))
    body = qmap.credit_memo_body(note, customer, customer_ref, run.mapping, run.notes)
    memo, already = yield from upsert_document(run, "CreditMemo", body, "credit_note",
                                               note.id, customer, known)
    if note.allocations and not memo.get("LinkedTxn"):
        applications = yield from applicable(run, note.allocations,
                                             limit=from_wire(memo.get("RemainingCredit",
                                                                      memo.get("TotalAmt"))))
        if any(amount > 0 for _, amount in applications):
            apply_body = qmap.credit_application_body(note, customer_ref, str(memo["Id"]),
                                                      applications, run.notes)
            response = yield from write(run, "Payment", apply_body, "apply credit memo",
                                        "credit_note/apply")
            _raise_for(response)
            run.raw["application_payment_id"] = str(response.json()["Payment"]["Id"])
            already = False
    return run.result(memo, already=already)


# --------------------------------------------------------------------------- entry point

_KINDS = {AggregateType.CUSTOMER: "customer", AggregateType.INVOICE: "invoice",
          AggregateType.PAYMENT: "payment", AggregateType.CREDIT_NOTE: "credit_note"}


def plan(entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
    """The flow for one ledger entry, chosen by the event's aggregate type.

    A CREATE whose document the id map already holds is a replay: it is reported as
    already applied without a request (the map and the sync log are committed
    together, so the earlier write is known to have succeeded).
    """
    run = Run.start(entry, context)
    event = entry.event
    kind = event.aggregate_type
    own = f"{_KINDS.get(kind, '')}:{event.aggregate_id}"
    known = run.known(own)
    if event.op is Op.CREATE and known and kind is not AggregateType.TAX_RATE:
        return WriteResult(external_id=known, version=context.versions.get(own),
                           already_applied=True, raw={"replay": "known in the id map"})
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
    """An invoice by its CRM number (``DocNumber``), for ``ledgerstream reconcile``."""
    tenant = context.tenant
    if tenant is None:
        raise ConfigurationError(f"tenant {context.tenant_id!r} has no configuration",
                                 platform=NAME)
    run = Run(None, context, tenant.platform_settings(QuickBooksSettings), tenant.mapping)
    rows = yield from query(run, "Invoice", f"DocNumber = {qmap.quote(reference)}",
                            "find invoice")
    return run.result(rows[0]) if rows else None
