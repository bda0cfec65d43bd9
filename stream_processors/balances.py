"""A customer's receivables as a pure function of the CRM documents: no faust, no I/O.

Why "state = latest version of every document" rather than running totals: a running
total double-counts the moment an event is replayed, re-ordered or edited. Keeping the
newest version of each invoice, payment and credit note (and a tombstone for deleted
ones) makes every event idempotent — applying it twice, or an older version after a
newer one, changes nothing — and makes a void or delete reverse its effect exactly
once, because the balances are recomputed from the surviving documents.

Definitions (per customer and currency; an amount in another currency is its own
balance):

* ``invoiced`` = totals of invoices that are neither DRAFT nor VOID nor deleted.
* ``paid`` = money received: PAYMENT amounts less tips (tips are the technician's).
* ``refunded`` = money paid back: REFUND amounts less tips, plus the totals of credit
  notes with disposition REFUNDED (the credit went back as cash).
* ``credited`` = totals of credit notes (both dispositions).
* ``outstanding`` = invoiced - paid - credited + refunded (negative: we owe them).
* Per invoice: ``paid`` = PAYMENT allocations - REFUND allocations to it (a refund
  allocated to an invoice re-opens it); ``credited`` = allocations of CREDITED credit
  notes (a REFUNDED credit note settles itself with cash and re-opens nothing);
  ``open_balance`` = max(0, total - paid - credited).
* ``unapplied_credit`` = money and credit not applied to a live invoice: unallocated
  remainders, allocations to unknown/void/deleted/draft invoices or to invoices of
  another currency, and over-application beyond an invoice's total; less unallocated
  refunds. Signed: negative means more was refunded than was held on account.
* Hence, always: ``outstanding == sum(open_balance) - unapplied_credit``.
* Aging splits the open invoice balances by days past ``due_date`` as of the newest
  ``occurred_at`` the customer's ledger has applied (event time, never the wall clock,
  so a replay ages identically).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from schemas.models import (
    AgingBuckets,
    CreditDisposition,
    CreditNote,
    CustomerBalance,
    Invoice,
    InvoiceBalance,
    InvoiceStatus,
    Payment,
    PaymentKind,
)

ZERO = Decimal(0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEDUPE_WINDOW = 512
"""Event ids remembered per customer. Beyond the window, a redelivered event is still
harmless: it carries a version the ledger already holds."""


class DocKind(StrEnum):
    INVOICE = "i"
    PAYMENT = "p"
    CREDIT = "c"


@dataclass(frozen=True)
class Doc:
    """The newest known version of one CRM document, reduced to what balances need."""

    kind: DocKind
    id: str
    version: int
    event_id: str
    deleted: bool = False
    currency: str = ""
    amount: Decimal = ZERO
    """Invoice/credit-note total; payment amount less tip."""
    status: str = ""
    """Invoice status, payment kind or credit-note disposition."""
    due: date | None = None
    allocations: tuple[tuple[str, Decimal], ...] = ()

    def to_json(self) -> list[Any]:
        return [
            self.kind.value, self.id, self.version, self.event_id, self.deleted,
            self.currency, str(self.amount), self.status,
            self.due.isoformat() if self.due else None,
            [[i, str(a)] for i, a in self.allocations],
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> Doc:
        kind, id_, version, event_id, deleted, currency, amount, status, due, allocs = data
        return cls(
            DocKind(kind), id_, version, event_id, deleted, currency, Decimal(amount), status,
            date.fromisoformat(due) if due else None,
            tuple((i, Decimal(a)) for i, a in allocs),
        )

    @property
    def live(self) -> bool:
        return not self.deleted


def doc_from_payload(payload: Invoice | Payment | CreditNote, version: int, event_id: str) -> Doc:
    """Reduce a CRM document to its balance-relevant fields."""
    if isinstance(payload, Invoice):
        return Doc(DocKind.INVOICE, payload.id, version, event_id, False, payload.currency,
                   payload.total, payload.status.value, payload.due_date)
    if isinstance(payload, Payment):
        return Doc(DocKind.PAYMENT, payload.id, version, event_id, False, payload.currency,
                   payload.amount - payload.tip, payload.kind.value, None,
                   tuple((a.invoice_id, a.amount) for a in payload.allocations))
    return Doc(DocKind.CREDIT, payload.id, version, event_id, False, payload.currency,
               payload.total, payload.disposition.value, None,
               tuple((a.invoice_id, a.amount) for a in payload.allocations))


def tombstone(kind: DocKind, doc_id: str, version: int, event_id: str,
              previous: Doc | None) -> Doc:
    """A deleted document keeps its version (so an older CREATE stays ignored) and its
    currency (so the balance it leaves is republished)."""
    return Doc(kind, doc_id, version, event_id, True, previous.currency if previous else "")


class Verdict(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    """An older aggregate_version arrived after a newer one: ignored for state."""
    CONFLICT = "conflict"
    """Same version, different event: the CRM reused a version; the first one wins."""


@dataclass(frozen=True)
class CustomerLedger:
    """Everything the processor keeps per ``tenant:customer`` (one table row, so one
    changelog record per event: the state moves atomically)."""

    docs: Mapping[str, Doc] = field(default_factory=dict)
    """Keyed ``<kind>:<id>``."""
    recent_event_ids: tuple[str, ...] = ()
    as_of: datetime | None = None
    stale_events: int = 0

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "d": [d.to_json() for d in self.docs.values()],
                "e": list(self.recent_event_ids),
                "t": self.as_of.isoformat() if self.as_of else None,
                "s": self.stale_events,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> CustomerLedger:
        if not raw:
            return cls()
        data = json.loads(raw)
        docs = [Doc.from_json(d) for d in data["d"]]
        return cls(
            {_doc_key(d.kind, d.id): d for d in docs},
            tuple(data["e"]),
            datetime.fromisoformat(data["t"]) if data["t"] else None,
            data["s"],
        )

    def get(self, kind: DocKind, doc_id: str) -> Doc | None:
        return self.docs.get(_doc_key(kind, doc_id))

    def seen(self, event_id: str) -> bool:
        return event_id in self.recent_event_ids


def _doc_key(kind: DocKind, doc_id: str) -> str:
    return f"{kind.value}:{doc_id}"


@dataclass(frozen=True)
class Applied:
    """What :func:`apply_doc` decided, and the ledger after it."""

    verdict: Verdict
    ledger: CustomerLedger
    previous: Doc | None
    current: Doc | None

    @property
    def currencies(self) -> set[str]:
        """Currencies whose balance this event can have changed."""
        return {d.currency for d in (self.previous, self.current) if d and d.currency}

    @property
    def invoice_ids(self) -> list[str]:
        """Invoices this event can have changed, in a stable order."""
        ids: list[str] = []
        for d in (self.previous, self.current):
            if d is None:
                continue
            if d.kind is DocKind.INVOICE:
                ids.append(d.id)
            ids.extend(i for i, _ in d.allocations)
        return list(dict.fromkeys(ids))


def remember(ledger: CustomerLedger, event_id: str, occurred_at: datetime) -> CustomerLedger:
    """Record an event id in the bounded dedupe window and advance the event clock."""
    recent = (*ledger.recent_event_ids, event_id)[-DEDUPE_WINDOW:]
    as_of = occurred_at if ledger.as_of is None else max(ledger.as_of, occurred_at)
    return replace(ledger, recent_event_ids=recent, as_of=as_of)


def apply_doc(
    ledger: CustomerLedger, new: Doc, occurred_at: datetime
) -> Applied:
    """Apply a document version (or tombstone) with the version rules of the module."""
    if ledger.seen(new.event_id):
        return Applied(Verdict.DUPLICATE, ledger, None, None)
    key = _doc_key(new.kind, new.id)
    old = ledger.docs.get(key)
    if old is not None and new.version < old.version:
        stale = replace(ledger, stale_events=ledger.stale_events + 1)
        return Applied(Verdict.STALE, remember(stale, new.event_id, occurred_at), old, None)
    if old is not None and new.version == old.version:
        verdict = Verdict.DUPLICATE if old.event_id == new.event_id else Verdict.CONFLICT
        return Applied(verdict, remember(ledger, new.event_id, occurred_at), old, None)
    docs = dict(ledger.docs)
    docs[key] = new
    updated = remember(replace(ledger, docs=docs), new.event_id, occurred_at)
    return Applied(Verdict.APPLIED, updated, old, new)


# --------------------------------------------------------------------------- balances


@dataclass
class _InvoiceAcc:
    doc: Doc
    paid: Decimal = ZERO
    credited: Decimal = ZERO


@dataclass
class _CurrencyAcc:
    invoiced: Decimal = ZERO
    paid: Decimal = ZERO
    credited: Decimal = ZERO
    refunded: Decimal = ZERO
    pool: Decimal = ZERO
    """Money/credit not (yet) applied to a live invoice."""


@dataclass(frozen=True)
class Balances:
    """The result of :func:`compute_balances`."""

    invoices: Mapping[str, InvoiceBalance]
    customers: Mapping[str, CustomerBalance]
    """By currency."""


def _is_receivable(doc: Doc) -> bool:
    return doc.live and doc.status not in (InvoiceStatus.DRAFT.value, InvoiceStatus.VOID.value)


def _derive_status(doc: Doc, total: Decimal, applied: Decimal, open_: Decimal) -> InvoiceStatus:
    if not doc.live or doc.status == InvoiceStatus.VOID.value:
        return InvoiceStatus.VOID
    if doc.status == InvoiceStatus.DRAFT.value:
        return InvoiceStatus.DRAFT
    if open_ <= 0:
        return InvoiceStatus.PAID
    if applied > 0 and open_ < total:
        return InvoiceStatus.PARTIALLY_PAID
    return InvoiceStatus.SENT


def aging_bucket(days_past_due: int) -> str:
    """Name of the AgingBuckets field for a number of days past due."""
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "d1_30"
    if days_past_due <= 60:
        return "d31_60"
    if days_past_due <= 90:
        return "d61_90"
    return "d90_plus"


def compute_balances(
    ledger: CustomerLedger,
    tenant_id: str,
    customer_id: str,
    last_event_id: str,
    currencies: Iterable[str] | None = None,
    invoice_ids: Iterable[str] | None = None,
) -> Balances:
    """Every invoice balance and the customer's balance per currency.

    ``currencies`` limits the customer balances returned (all the ledger knows by
    default); ``invoice_ids`` limits the invoice balances returned (all by default).
    Every document still counts towards the customer's figures; the limits only spare
    building (and validating) models nobody reads — the processor needs the invoices
    one event touched, not all of the customer's.
    """
    wanted_invoices = None if invoice_ids is None else set(invoice_ids)
    as_of = ledger.as_of or EPOCH
    invoices: dict[str, _InvoiceAcc] = {}
    accs: dict[str, _CurrencyAcc] = {}

    def acc(currency: str) -> _CurrencyAcc:
        return accs.setdefault(currency, _CurrencyAcc())

    for doc in ledger.docs.values():
        if doc.kind is DocKind.INVOICE:
            invoices[doc.id] = _InvoiceAcc(doc)
            if doc.currency:
                acc(doc.currency)
            if _is_receivable(doc):
                acc(doc.currency).invoiced += doc.amount

    def target(invoice_id: str, currency: str) -> _InvoiceAcc | None:
        inv = invoices.get(invoice_id)
        if inv is None or not _is_receivable(inv.doc) or inv.doc.currency != currency:
            return None
        return inv

    for doc in ledger.docs.values():
        if doc.kind is DocKind.INVOICE or not doc.live:
            continue
        a = acc(doc.currency)
        refund = doc.status in (PaymentKind.REFUND.value, CreditDisposition.REFUNDED.value)
        sign = -1 if doc.status == PaymentKind.REFUND.value else 1
        if doc.kind is DocKind.PAYMENT:
            if refund:
                a.refunded += doc.amount
            else:
                a.paid += doc.amount
        else:
            a.credited += doc.amount
            if refund:
                a.refunded += doc.amount
                continue  # settled in cash: nothing left to apply, nothing re-opened
        unallocated = doc.amount
        for invoice_id, amount in doc.allocations:
            unallocated -= amount
            inv = target(invoice_id, doc.currency)
            if inv is None:
                a.pool += sign * amount
            elif doc.kind is DocKind.PAYMENT:
                inv.paid += sign * amount
            else:
                inv.credited += amount
        a.pool += sign * unallocated

    out_invoices: dict[str, InvoiceBalance] = {}
    aging: dict[str, dict[str, Decimal]] = {}
    for inv in invoices.values():
        doc = inv.doc
        if not doc.currency:
            continue
        receivable = _is_receivable(doc)
        total = doc.amount if receivable else ZERO
        applied = inv.paid + inv.credited
        open_ = max(ZERO, total - applied)
        if receivable:
            acc(doc.currency).pool += max(ZERO, applied - total)
            if open_ > 0:
                days = (as_of.date() - doc.due).days if doc.due else 0
                buckets = aging.setdefault(doc.currency, {})
                name = aging_bucket(days)
                buckets[name] = buckets.get(name, ZERO) + open_
        if wanted_invoices is not None and doc.id not in wanted_invoices:
            continue
        out_invoices[doc.id] = InvoiceBalance(
            invoice_id=doc.id, currency=doc.currency, total=total, paid=inv.paid,
            credited=inv.credited, open_balance=open_,
            status=_derive_status(doc, total, applied, open_),
        )

    # requested currencies are returned even when nothing is left in them: a document
    # that moved to another currency (or was deleted) must zero the old balance
    wanted = set(accs) if currencies is None else set(currencies)
    customers: dict[str, CustomerBalance] = {}
    for currency in sorted(wanted):
        a = accs.get(currency, _CurrencyAcc())
        b = aging.get(currency, {})
        customers[currency] = CustomerBalance(
            tenant_id=tenant_id, customer_id=customer_id, currency=currency,
            invoiced=a.invoiced, paid=a.paid, credited=a.credited, refunded=a.refunded,
            outstanding=a.invoiced - a.paid - a.credited + a.refunded,
            unapplied_credit=a.pool,
            aging=AgingBuckets(
                current=b.get("current", ZERO), d1_30=b.get("d1_30", ZERO),
                d31_60=b.get("d31_60", ZERO), d61_90=b.get("d61_90", ZERO),
                d90_plus=b.get("d90_plus", ZERO),
            ),
            as_of=as_of, last_event_id=last_event_id,
        )
    return Balances(out_invoices, customers)
