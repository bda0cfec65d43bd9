"""Receivable balances computed straight from the reference CRM's tables, in SQL.

Why a second computation: the stream processor derives balances from *events*; this
one reads the CRM's *current rows* (``deploy/sql/crm.sql``) and shares no code with it,
so comparing the two proves that nothing was lost, doubled or misapplied on the way
(the issue's "equal to the cent for every customer and invoice"). The rules are the
ones in ARCHITECTURE's balance section:

* an invoice counts once it is issued: not deleted, status neither DRAFT nor VOID;
* a payment counts for its amount less the technician's tip; a refund the other way;
* a credit note credits its total; a REFUNDED one also pays that total back (cash
  out), so it leaves the outstanding balance unchanged;
* an invoice's open balance = total - payments allocated + refund allocations -
  credit-note allocations of CREDITED notes, never below zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

__all__ = ["CrmCustomerBalance", "crm_balances"]

ZERO = Decimal("0")

_CUSTOMERS = """
WITH inv AS (
  SELECT tenant_id, customer_id, currency, sum(total) AS invoiced
  FROM invoices WHERE deleted_at IS NULL AND status NOT IN ('DRAFT', 'VOID')
  GROUP BY 1, 2, 3
), pay AS (
  SELECT tenant_id, customer_id, currency,
         sum(CASE WHEN kind = 'PAYMENT' THEN amount - tip ELSE 0 END) AS paid,
         sum(CASE WHEN kind = 'REFUND' THEN amount - tip ELSE 0 END) AS refunded
  FROM payments WHERE deleted_at IS NULL GROUP BY 1, 2, 3
), cn AS (
  SELECT tenant_id, customer_id, currency, sum(total) AS credited,
         sum(CASE WHEN disposition = 'REFUNDED' THEN total ELSE 0 END) AS refunded
  FROM credit_notes WHERE deleted_at IS NULL GROUP BY 1, 2, 3
), keys AS (
  SELECT tenant_id, customer_id, currency FROM inv
  UNION SELECT tenant_id, customer_id, currency FROM pay
  UNION SELECT tenant_id, customer_id, currency FROM cn
)
SELECT k.tenant_id, k.customer_id, k.currency,
       coalesce(inv.invoiced, 0), coalesce(pay.paid, 0), coalesce(cn.credited, 0),
       coalesce(pay.refunded, 0) + coalesce(cn.refunded, 0)
FROM keys k
LEFT JOIN inv USING (tenant_id, customer_id, currency)
LEFT JOIN pay USING (tenant_id, customer_id, currency)
LEFT JOIN cn USING (tenant_id, customer_id, currency)
"""

_INVOICES = """
SELECT i.tenant_id, i.customer_id, i.currency, i.id, i.total,
       greatest(0, i.total
         - coalesce((SELECT sum(a.amount) FROM payment_allocations a JOIN payments p
                     ON p.tenant_id = a.tenant_id AND p.id = a.payment_id
                     WHERE a.tenant_id = i.tenant_id AND a.invoice_id = i.id
                       AND p.deleted_at IS NULL AND p.kind = 'PAYMENT'
                       AND p.currency = i.currency), 0)
         + coalesce((SELECT sum(a.amount) FROM payment_allocations a JOIN payments p
                     ON p.tenant_id = a.tenant_id AND p.id = a.payment_id
                     WHERE a.tenant_id = i.tenant_id AND a.invoice_id = i.id
                       AND p.deleted_at IS NULL AND p.kind = 'REFUND'
                       AND p.currency = i.currency), 0)
         - coalesce((SELECT sum(a.amount) FROM credit_note_allocations a JOIN credit_notes c
                     ON c.tenant_id = a.tenant_id AND c.id = a.credit_note_id
                     WHERE a.tenant_id = i.tenant_id AND a.invoice_id = i.id
                       AND c.deleted_at IS NULL AND c.disposition = 'CREDITED'
                       AND c.currency = i.currency), 0))
FROM invoices i
WHERE i.deleted_at IS NULL AND i.status NOT IN ('DRAFT', 'VOID')
"""


@dataclass
class CrmCustomerBalance:
    """One customer's receivable in one currency, as the CRM's tables say."""

    invoiced: Decimal = ZERO
    paid: Decimal = ZERO
    credited: Decimal = ZERO
    refunded: Decimal = ZERO
    #: invoice id -> open balance
    open_invoices: dict[str, Decimal] = field(default_factory=dict)

    @property
    def outstanding(self) -> Decimal:
        return self.invoiced - self.paid - self.credited + self.refunded


def crm_balances(conn: psycopg.Connection[Any], tenant_id: str | None = None
                 ) -> dict[tuple[str, str, str], CrmCustomerBalance]:
    """``(tenant, customer, currency) -> CrmCustomerBalance`` for every customer with a
    financial document (of ``tenant_id`` only, when given)."""
    out: dict[tuple[str, str, str], CrmCustomerBalance] = {}
    for tenant, customer, currency, invoiced, paid, credited, refunded in conn.execute(
            _CUSTOMERS).fetchall():
        if tenant_id is not None and tenant != tenant_id:
            continue
        out[(str(tenant), str(customer), str(currency).strip())] = CrmCustomerBalance(
            Decimal(invoiced), Decimal(paid), Decimal(credited), Decimal(refunded))
    for tenant, customer, currency, invoice_id, _total, open_ in conn.execute(
            _INVOICES).fetchall():
        if tenant_id is not None and tenant != tenant_id:
            continue
        key = (str(tenant), str(customer), str(currency).strip())
        out.setdefault(key, CrmCustomerBalance()).open_invoices[str(invoice_id)] = Decimal(open_)
    return out
