"""An independent, deliberately naive computation of the expected balances.

It shares no code with ``stream_processors.balances``: it works on the pydantic
payloads directly, keeps the newest version of every aggregate (a DELETE with a
higher version removes it), and adds things up. The tests compare the processor's
output (in memory, or read back from ``ledger.balances``) with it to the cent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from schemas.models import (
    AggregateType,
    CreditDisposition,
    CreditNote,
    FinancialEvent,
    Invoice,
    InvoiceStatus,
    Op,
    Payment,
    PaymentKind,
)

Z = Decimal(0)


@dataclass
class Expected:
    invoiced: Decimal = Z
    paid: Decimal = Z
    credited: Decimal = Z
    refunded: Decimal = Z
    open_by_invoice: dict[str, Decimal] = field(default_factory=dict)

    @property
    def outstanding(self) -> Decimal:
        return self.invoiced - self.paid - self.credited + self.refunded

    @property
    def unapplied(self) -> Decimal:
        return sum(self.open_by_invoice.values(), start=Z) - self.outstanding


def latest_documents(events: Iterable[FinancialEvent]) -> dict[tuple[str, str, str], object]:
    """(tenant, aggregate type, id) -> newest payload (None when deleted)."""
    best: dict[tuple[str, str, str], tuple[int, object]] = {}
    for ev in events:
        if ev.aggregate_type in (AggregateType.CUSTOMER, AggregateType.TAX_RATE):
            continue
        k = (ev.tenant_id, ev.aggregate_type.value, ev.aggregate_id)
        if k not in best or ev.aggregate_version > best[k][0]:
            best[k] = (ev.aggregate_version, None if ev.op is Op.DELETE else ev.payload)
    return {k: v for k, (_, v) in best.items()}


def expected_balances(events: Iterable[FinancialEvent]) -> dict[tuple[str, str, str], Expected]:
    """(tenant, customer, currency) -> Expected, from the newest document versions."""
    docs = latest_documents(events)
    out: dict[tuple[str, str, str], Expected] = {}
    live_invoices: dict[tuple[str, str, str], Invoice] = {}
    for (tenant, _, _), p in docs.items():
        if isinstance(p, Invoice) and p.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
            live_invoices[(tenant, p.customer_id, p.id)] = p
    applied: dict[tuple[str, str, str], Decimal] = {k: Z for k in live_invoices}

    def bucket(tenant: str, customer: str, currency: str) -> Expected:
        return out.setdefault((tenant, customer, currency), Expected())

    for (tenant, _, _), p in docs.items():
        if isinstance(p, Invoice):
            e = bucket(tenant, p.customer_id, p.currency)
            if (tenant, p.customer_id, p.id) in live_invoices:
                e.invoiced += p.total
        elif isinstance(p, Payment):
            e = bucket(tenant, p.customer_id, p.currency)
            net = p.amount - p.tip
            sign = 1 if p.kind is PaymentKind.PAYMENT else -1
            if sign > 0:
                e.paid += net
            else:
                e.refunded += net
            for a in p.allocations:
                ref = (tenant, p.customer_id, a.invoice_id)
                inv = live_invoices.get(ref)
                if inv is not None and inv.currency == p.currency:
                    applied[ref] += sign * a.amount
        elif isinstance(p, CreditNote):
            e = bucket(tenant, p.customer_id, p.currency)
            e.credited += p.total
            if p.disposition is CreditDisposition.REFUNDED:
                e.refunded += p.total
                continue
            for a in p.allocations:
                ref = (tenant, p.customer_id, a.invoice_id)
                inv = live_invoices.get(ref)
                if inv is not None and inv.currency == p.currency:
                    applied[ref] += a.amount
    for (tenant, _, inv_id), inv in live_invoices.items():
        open_ = max(Z, inv.total - applied[(tenant, inv.customer_id, inv_id)])
        bucket(tenant, inv.customer_id, inv.currency).open_by_invoice[inv_id] = open_
    return out
