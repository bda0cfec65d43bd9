"""Does a platform's ledger say what the CRM says? A pure comparison.

:func:`expected_ledger` turns CRM events (or ledger entries) into what any correct
accounting platform must hold: per invoice its total and open balance (or that it
is void), per credit note its remaining credit, per customer the outstanding
balance. The definitions are those of ``stream_processors.balances`` (paid = money
less tips, a refund allocated to an invoice re-opens it, a REFUNDED credit note
settles itself in cash, allocations beyond an invoice's balance become the
customer's credit).

:func:`reconcile` compares that with a platform's ledger in neutral terms — the
shape of the sandboxes' ``ledger_report`` (documents, payments, duplicates), which a
production reader of a real platform produces the same way — through the sink's
external-id map, and lists every :class:`Difference`. An empty list means the books
agree. Used by the contract suite, the end-to-end tests and ``ledgerstream
reconcile``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from schemas.models import (
    CreditDisposition,
    CreditNote,
    FinancialEvent,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    Op,
    Payment,
    PaymentKind,
)
from sinks.platforms.common.money import ZERO, from_wire, round_money

__all__ = [
    "Difference",
    "ExpectedCredit",
    "ExpectedInvoice",
    "ExpectedLedger",
    "expected_ledger",
    "format_differences",
    "reconcile",
]

#: Statuses (both platforms' spellings) of documents that no longer count.
CLOSED = frozenset({"VOIDED", "DELETED", "Voided", "Deleted"})
DRAFT = frozenset({"DRAFT", "SUBMITTED", "Draft"})


@dataclass(frozen=True)
class ExpectedInvoice:
    crm_id: str
    customer_id: str
    currency: str
    total: Decimal
    open_balance: Decimal
    voided: bool
    draft: bool


@dataclass(frozen=True)
class ExpectedCredit:
    crm_id: str
    customer_id: str
    total: Decimal
    remaining: Decimal
    refunded: bool


@dataclass(frozen=True)
class ExpectedLedger:
    invoices: Mapping[str, ExpectedInvoice]
    credit_notes: Mapping[str, ExpectedCredit]
    #: Outstanding per customer (what they owe; negative: we owe them).
    customers: Mapping[str, Decimal]
    #: Payments (CRM id) that still carry money.
    payments: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Difference:
    """One disagreement; ``key`` names the CRM document (``invoice:inv1``)."""

    what: str
    key: str
    crm: str | None
    platform: str | None
    note: str = ""

    def __str__(self) -> str:
        extra = f" ({self.note})" if self.note else ""
        return f"{self.key}: {self.what}: CRM {self.crm} ≠ platform {self.platform}{extra}"


def _latest(events: Iterable[FinancialEvent]) -> dict[tuple[str, str], FinancialEvent]:
    latest: dict[tuple[str, str], FinancialEvent] = {}
    for event in events:
        key = (event.aggregate_type.value, event.aggregate_id)
        held = latest.get(key)
        if held is None or event.aggregate_version >= held.aggregate_version:
            latest[key] = event
    return latest


@dataclass
class _Inv:
    doc: Invoice
    applied: Decimal = ZERO

    @property
    def receivable(self) -> bool:
        return self.doc.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID)


@dataclass
class _Cust:
    pool: Decimal = ZERO
    invoices: list[str] = field(default_factory=list)


def expected_ledger(items: Iterable[LedgerEntry | FinancialEvent]) -> ExpectedLedger:
    """The ledger the CRM's latest documents imply, amounts rounded to cents."""
    events = [i.event if isinstance(i, LedgerEntry) else i for i in items]
    order = {(e.aggregate_type.value, e.aggregate_id): n for n, e in reversed(
        list(enumerate(events)))}
    latest = sorted(_latest(events).values(),
                    key=lambda e: order[(e.aggregate_type.value, e.aggregate_id)])
    live = [e.payload for e in latest if e.op is not Op.DELETE and e.payload is not None]
    invoices = {d.id: _Inv(d) for d in live if isinstance(d, Invoice)}
    customers: dict[str, _Cust] = {}
    for inv in invoices.values():
        customers.setdefault(inv.doc.customer_id, _Cust()).invoices.append(inv.doc.id)
    credits: dict[str, ExpectedCredit] = {}

    def target(invoice_id: str, currency: str) -> _Inv | None:
        inv = invoices.get(invoice_id)
        return inv if inv and inv.receivable and inv.doc.currency == currency else None

    paying: set[str] = set()
    for doc in live:
        if isinstance(doc, Payment):
            cust = customers.setdefault(doc.customer_id, _Cust())
            sign = -1 if doc.kind is PaymentKind.REFUND else 1
            unallocated = round_money(doc.amount - doc.tip)
            for allocation in doc.allocations:
                amount = round_money(allocation.amount)
                unallocated -= amount
                hit = target(allocation.invoice_id, doc.currency)
                if hit is None:
                    cust.pool += sign * amount
                else:
                    hit.applied += sign * amount
            cust.pool += sign * unallocated
            if doc.kind is PaymentKind.PAYMENT:
                paying.add(doc.id)
        elif isinstance(doc, CreditNote):
            cust = customers.setdefault(doc.customer_id, _Cust())
            total = round_money(doc.total)
            if doc.disposition is CreditDisposition.REFUNDED:
                credits[doc.id] = ExpectedCredit(doc.id, doc.customer_id, total, ZERO, True)
                continue
            remaining = total
            for allocation in doc.allocations:
                hit = target(allocation.invoice_id, doc.currency)
                open_ = ZERO if hit is None else max(ZERO, round_money(hit.doc.total) -
                                                     hit.applied)
                amount = min(round_money(allocation.amount), open_, remaining)
                if hit is not None:
                    hit.applied += amount
                remaining -= amount
            cust.pool += remaining
            credits[doc.id] = ExpectedCredit(doc.id, doc.customer_id, total, remaining, False)
    expected: dict[str, ExpectedInvoice] = {}
    for inv in invoices.values():
        doc = inv.doc
        total = round_money(doc.total) if inv.receivable else ZERO
        open_ = max(ZERO, total - inv.applied)
        if inv.receivable:
            customers[doc.customer_id].pool += max(ZERO, inv.applied - total)
        expected[doc.id] = ExpectedInvoice(
            doc.id, doc.customer_id, doc.currency, round_money(doc.total), open_,
            voided=doc.status is InvoiceStatus.VOID, draft=doc.status is InvoiceStatus.DRAFT)
    outstanding = {
        cid: sum((expected[i].open_balance for i in c.invoices), ZERO) - c.pool
        for cid, c in customers.items()
    }
    return ExpectedLedger(expected, credits, outstanding, frozenset(paying))


def _ids(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def reconcile(expected: ExpectedLedger, report: Mapping[str, Any], ids: Mapping[str, str],
              *, only_ours: bool = True) -> list[Difference]:
    """Every way ``report`` (a platform ledger in neutral terms) disagrees with
    ``expected``; ``ids`` is the external-id map (``"invoice:inv1"`` → platform id).

    ``only_ours`` (the default, for a platform the sink writes alone, as in tests)
    also reports documents and customers that no CRM document maps to — duplicates
    and strays; turn it off against a real company that holds other records."""
    diffs: list[Difference] = []
    docs = {(d["kind"], str(d["id"])): d for d in report.get("documents", [])}
    seen: set[tuple[str, str]] = set()

    for crm_id, inv in expected.invoices.items():
        key = f"invoice:{crm_id}"
        doc = docs.get(("invoice", ids.get(key, "")))
        if (inv.draft or inv.voided) and doc is None:
            # a draft need not be on the books yet; a voided invoice may be gone from
            # them: platforms delete a document that was never released instead of
            # voiding it (Acumatica, Business Central) — either way it counts for nothing
            continue
        if doc is None:
            diffs.append(Difference("missing", key, str(inv.total), None))
            continue
        seen.add(("invoice", str(doc["id"])))
        closed = doc["status"] in CLOSED
        if inv.voided != closed:
            diffs.append(Difference("voided", key, str(inv.voided), doc["status"]))
            continue
        if inv.voided:
            continue
        if from_wire(doc["total"]) != inv.total:
            diffs.append(Difference("total", key, str(inv.total), doc["total"]))
        if not inv.draft and from_wire(doc["balance"]) != inv.open_balance:
            diffs.append(Difference("open balance", key, str(inv.open_balance), doc["balance"]))

    for crm_id, credit in expected.credit_notes.items():
        key = f"credit_note:{crm_id}"
        doc = docs.get(("credit_note", ids.get(key, "")))
        if doc is None:
            diffs.append(Difference("missing", key, str(credit.total), None))
            continue
        seen.add(("credit_note", str(doc["id"])))
        if from_wire(doc["total"]) != credit.total:
            diffs.append(Difference("total", key, str(credit.total), doc["total"]))
        if from_wire(doc["balance"]) != credit.remaining:
            diffs.append(Difference("remaining credit", key, str(credit.remaining),
                                    doc["balance"]))

    balances: dict[str, Decimal] = {}
    for doc in report.get("documents", []):
        if doc["status"] in CLOSED or doc["status"] in DRAFT:
            continue
        sign = 1 if doc["kind"] == "invoice" else -1
        cid = str(doc["customer_id"])
        balances[cid] = balances.get(cid, ZERO) + sign * from_wire(doc["balance"])
    for pay in report.get("payments", []):
        if pay["status"] not in CLOSED:
            cid = str(pay["customer_id"])
            balances[cid] = balances.get(cid, ZERO) - from_wire(pay["unapplied"])
    for crm_id, owed in expected.customers.items():
        key = f"customer:{crm_id}"
        platform_id = ids.get(key)
        if platform_id is None:
            if owed != 0:
                diffs.append(Difference("missing", key, str(owed), None))
            continue
        actual = balances.get(platform_id, ZERO)
        if actual != owed:
            diffs.append(Difference("customer balance", key, str(owed), str(actual)))

    for crm_id in sorted(expected.payments):
        key = f"payment:{crm_id}"
        found = [p for p in report.get("payments", []) if str(p["id"]) in _ids(ids.get(key))]
        if not found:
            diffs.append(Difference("missing", key, "a payment", None))

    if only_ours:
        for (kind, platform_id), doc in docs.items():
            if (kind, platform_id) not in seen and doc["status"] not in CLOSED:
                diffs.append(Difference("unexpected document", f"{kind}:?", None,
                                        f"{platform_id} {doc.get('number')} {doc['total']}"))
        mapped = {v for k, v in ids.items() if k.startswith("customer:")}
        for customer in report.get("customers", []):
            if str(customer["id"]) not in mapped:
                diffs.append(Difference("unexpected customer", "customer:?", None,
                                        f"{customer['id']} {customer.get('name')!r}"))
    duplicates = (report.get("duplicates") or {}).get("count", 0)
    if duplicates:
        diffs.append(Difference("duplicates", "ledger", "0", str(duplicates),
                                str((report.get("duplicates") or {}).get("groups"))))
    return diffs


def format_differences(diffs: Iterable[Difference]) -> str:
    return "\n".join(str(d) for d in diffs) or "books agree"
