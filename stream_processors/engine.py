"""One event in, the processor's decision out: the whole business step, sans-I/O.

Why sans-I/O: the faust layer (:mod:`.app`) only fetches the rows this module asks
for and writes back what it returns, so every rule here is unit-testable without a
broker, and a different runtime (a plain confluent-kafka loop, a batch replay) could
drive the same code.

Reference rows kept beside the per-customer :class:`~.balances.CustomerLedger`:

* :class:`CustomerRow` — the newest customer snapshot (``crm.customers``), versioned
  like the documents, ``customer=None`` once deleted;
* :class:`TaxBook` — every version of a tax code seen on ``crm.tax-rates`` (the topic
  is compacted per code, so the history of effective periods lives in our table).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from schemas.models import (
    AggregateType,
    ComputedTax,
    CreditNote,
    Customer,
    CustomerBalance,
    Discrepancy,
    FinancialEvent,
    Invoice,
    LedgerEntry,
    Op,
    Payment,
    TaxRate,
)
from stream_processors.balances import (
    CustomerLedger,
    DocKind,
    Verdict,
    apply_doc,
    compute_balances,
    doc_from_payload,
    tombstone,
)
from stream_processors.checks import review_document
from stream_processors.tax import TaxPolicy, UnknownTaxCode, effective_rate, rate_in_force

DOC_KINDS = {
    AggregateType.INVOICE: DocKind.INVOICE,
    AggregateType.PAYMENT: DocKind.PAYMENT,
    AggregateType.CREDIT_NOTE: DocKind.CREDIT,
}


class Unprocessable(Exception):
    """The event can never be processed as it is: dead-letter it now."""

    error_class = "Unprocessable"


@dataclass(frozen=True)
class CustomerRow:
    version: int
    event_id: str
    customer: Customer | None

    def to_bytes(self) -> bytes:
        body = self.customer.model_dump(mode="json") if self.customer else None
        return json.dumps({"v": self.version, "e": self.event_id, "c": body}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> CustomerRow | None:
        if not raw:
            return None
        data = json.loads(raw)
        body = data["c"]
        return cls(data["v"], data["e"], Customer.model_validate(body) if body else None)


def apply_customer_event(
    row: CustomerRow | None, event: FinancialEvent
) -> tuple[CustomerRow | None, Verdict]:
    """Newest version wins; a DELETE leaves a versioned tombstone."""
    if row is not None and row.event_id == event.event_id:
        return row, Verdict.DUPLICATE
    if row is not None and event.aggregate_version < row.version:
        return row, Verdict.STALE
    if row is not None and event.aggregate_version == row.version:
        return row, Verdict.CONFLICT
    customer = event.payload if isinstance(event.payload, Customer) else None
    if event.op is not Op.DELETE and customer is None:
        raise Unprocessable(f"{event.event_type} has no Customer payload")
    return CustomerRow(event.aggregate_version, event.event_id, customer), Verdict.APPLIED


@dataclass(frozen=True)
class TaxBook:
    """Versions of one tax code, by effective_from (a re-sent period replaces itself)."""

    versions: tuple[tuple[int, TaxRate], ...] = ()

    def to_bytes(self) -> bytes:
        return json.dumps(
            [[v, r.model_dump(mode="json")] for v, r in self.versions]
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> TaxBook:
        if not raw:
            return cls()
        return cls(tuple((v, TaxRate.model_validate(r)) for v, r in json.loads(raw)))

    def apply(self, event: FinancialEvent) -> tuple[TaxBook, Verdict]:
        """Add a version; an older aggregate_version for the same period is ignored, a
        DELETE deactivates every period of the code (the rate no longer exists)."""
        if event.op is Op.DELETE or not isinstance(event.payload, TaxRate):
            return TaxBook(tuple(
                (max(v, event.aggregate_version), r.model_copy(update={"active": False}))
                for v, r in self.versions
            )), Verdict.APPLIED
        rate = event.payload
        kept = []
        for version, old in self.versions:
            if old.effective_from == rate.effective_from:
                if version >= event.aggregate_version:
                    return self, Verdict.STALE if version > event.aggregate_version \
                        else Verdict.DUPLICATE
                continue
            kept.append((version, old))
        kept.append((event.aggregate_version, rate))
        kept.sort(key=lambda vr: vr[1].effective_from)
        return TaxBook(tuple(kept)), Verdict.APPLIED

    def rate_on(self, on: date) -> Decimal | None:
        found = rate_in_force((r for _, r in self.versions), on)
        return None if found is None else effective_rate(found.components)


@dataclass(frozen=True)
class Park:
    """Cannot be processed yet (a reference row is missing); retry, then dead-letter."""

    reason: str
    error_class: str


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    ledger: CustomerLedger
    entry: LedgerEntry | None
    balances: tuple[CustomerBalance, ...]

    @property
    def discrepancies(self) -> tuple[Discrepancy, ...]:
        return self.entry.discrepancies if self.entry else ()


def _document_date(payload: Invoice | CreditNote) -> date:
    return payload.issue_date


def process_financial_event(
    event: FinancialEvent,
    *,
    customer_id: str,
    customer: CustomerRow | None,
    ledger: CustomerLedger,
    tax_book: Callable[[str], TaxBook | None],
    policy: TaxPolicy,
    processed_at: datetime,
) -> Park | Result:
    """Decide what an invoice / payment / credit-note event does.

    ``customer_id`` is the one from the message key (the ledger row it belongs to);
    ``tax_book(code)`` looks a code up for this event's tenant.
    """
    kind = DOC_KINDS.get(event.aggregate_type)
    if kind is None:
        raise Unprocessable(
            f"{event.aggregate_type} events do not belong on the financial-events topic"
        )
    payload = event.payload
    if payload is not None and event.customer_id != customer_id:
        raise Unprocessable(
            f"payload customer {event.customer_id!r} != message key customer {customer_id!r}"
        )
    if ledger.seen(event.event_id):
        return Result(Verdict.DUPLICATE, ledger, None, ())
    if payload is not None and (customer is None or customer.customer is None):
        state = "deleted" if customer is not None else "unknown"
        return Park(f"{state} customer {event.tenant_id}:{customer_id}", "UnknownCustomer")

    snapshot = customer.customer if customer else None
    computed: tuple[ComputedTax, ...] = ()
    discrepancies: tuple[Discrepancy, ...] = ()
    if isinstance(payload, Invoice | CreditNote):
        on = _document_date(payload)

        def rate_for(code: str) -> Decimal:
            book = tax_book(code)
            rate = book.rate_on(on) if book else None
            if rate is None:
                raise UnknownTaxCode(code, on)
            return rate

        try:
            review = review_document(
                payload, rate_for=rate_for,
                tax_exempt=bool(snapshot and snapshot.tax_exempt), policy=policy,
            )
        except UnknownTaxCode as exc:
            return Park(str(exc), "UnknownTaxCode")
        computed, discrepancies = review.computed_tax, review.discrepancies

    if isinstance(payload, Invoice | Payment | CreditNote):
        doc = doc_from_payload(payload, event.aggregate_version, event.event_id)
    else:
        previous = ledger.get(kind, event.aggregate_id)
        doc = tombstone(kind, event.aggregate_id, event.aggregate_version, event.event_id,
                        previous)
    applied = apply_doc(ledger, doc, event.occurred_at)
    if applied.verdict is not Verdict.APPLIED:
        return Result(applied.verdict, applied.ledger, None, ())

    balances = compute_balances(applied.ledger, event.tenant_id, customer_id, event.event_id,
                                applied.currencies, applied.invoice_ids)
    invoice_balances = tuple(
        balances.invoices[i] for i in applied.invoice_ids if i in balances.invoices
    )
    primary = doc.currency or (snapshot.default_currency if snapshot else "")
    entry = LedgerEntry(
        event=event,
        customer=snapshot,
        computed_tax=computed,
        discrepancies=discrepancies,
        invoice_balances=invoice_balances,
        customer_balance=balances.customers.get(primary),
        processed_at=processed_at,
    )
    return Result(Verdict.APPLIED, applied.ledger, entry,
                  tuple(balances.customers.values()))


def customer_entry(
    event: FinancialEvent,
    *,
    customer_id: str,
    row: CustomerRow | None,
    ledger: CustomerLedger,
    processed_at: datetime,
) -> LedgerEntry:
    """The LedgerEntry of an applied customer change (sinks sync customers too), with
    the customer's balance in its default currency. The ledger is not touched: a
    customer edit moves no money and must not move the aging clock either."""
    snapshot = row.customer if row else None
    balance: CustomerBalance | None = None
    if snapshot is not None and ledger.docs:
        currency = snapshot.default_currency
        balance = compute_balances(
            ledger, event.tenant_id, customer_id, ledger.recent_event_ids[-1], [currency], ()
        ).customers.get(currency)
    return LedgerEntry(event=event, customer=snapshot, customer_balance=balance,
                       processed_at=processed_at)
