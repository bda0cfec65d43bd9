"""Rows of the reference CRM schema <-> contract models.

Both directions live together so that what the outbox writer stores and what the status
poller reads back are the same model by construction: the writer emits the model it reads
back after writing, which is exactly what the poller would see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from schemas.models import (
    Address,
    AggregateType,
    Allocation,
    CreditNote,
    Customer,
    DocumentLine,
    ExternalRef,
    Invoice,
    Payload,
    Payment,
    RepairJob,
    TaxComponent,
    TaxLine,
    TaxRate,
)

Key = tuple[str, str]
"""(tenant_id, aggregate id / tax code)."""


@dataclass(frozen=True)
class Stored:
    """One aggregate as stored: its model (None once soft-deleted) and bookkeeping."""

    tenant_id: str
    aggregate_type: AggregateType
    aggregate_id: str
    customer_id: str | None
    version: int
    updated_at: datetime
    deleted: bool
    payload: Payload | None
    status: str | None = None


def _json(model: Any) -> Any:
    return None if model is None else Jsonb(model.model_dump(mode="json"))


def _jsonlist(models: Iterable[Any]) -> Jsonb:
    return Jsonb([m.model_dump(mode="json") for m in models])


# ---- writes -------------------------------------------------------------------------


def put_customer(conn: psycopg.Connection[Any], tenant_id: str, c: Customer) -> None:
    conn.execute(
        """
        INSERT INTO customers (tenant_id, id, display_name, company_name, email, phone,
            billing_address, service_address, tax_exempt, tax_exemption_number,
            default_currency, external_refs, active, deleted_at)
        VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,NULL)
        ON CONFLICT (tenant_id, id) DO UPDATE SET display_name=EXCLUDED.display_name,
            company_name=EXCLUDED.company_name, email=EXCLUDED.email, phone=EXCLUDED.phone,
            billing_address=EXCLUDED.billing_address, service_address=EXCLUDED.service_address,
            tax_exempt=EXCLUDED.tax_exempt, tax_exemption_number=EXCLUDED.tax_exemption_number,
            default_currency=EXCLUDED.default_currency, external_refs=EXCLUDED.external_refs,
            active=EXCLUDED.active, deleted_at=NULL
        """,
        (tenant_id, c.id, c.display_name, c.company_name, c.email, c.phone,
         _json(c.billing_address), _json(c.service_address), c.tax_exempt,
         c.tax_exemption_number, c.default_currency, _jsonlist(c.external_refs), c.active),
    )


def put_tax_rate(conn: psycopg.Connection[Any], tenant_id: str, r: TaxRate) -> None:
    conn.execute(
        """
        INSERT INTO tax_rates (tenant_id, code, name, jurisdiction, effective_from,
            effective_to, active, deleted_at) VALUES (%s,%s,%s,%s,%s,%s,%s,NULL)
        ON CONFLICT (tenant_id, code) DO UPDATE SET name=EXCLUDED.name,
            jurisdiction=EXCLUDED.jurisdiction, effective_from=EXCLUDED.effective_from,
            effective_to=EXCLUDED.effective_to, active=EXCLUDED.active, deleted_at=NULL
        """,
        (tenant_id, r.code, r.name, r.jurisdiction, r.effective_from, r.effective_to, r.active),
    )
    conn.execute("DELETE FROM tax_rate_components WHERE tenant_id=%s AND tax_code=%s",
                 (tenant_id, r.code))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tax_rate_components (tenant_id, tax_code, position, name, rate, compound)"
            " VALUES (%s,%s,%s,%s,%s,%s)",
            [(tenant_id, r.code, i, comp.name, comp.rate, comp.compound)
             for i, comp in enumerate(r.components)],
        )


def put_job(conn: psycopg.Connection[Any], tenant_id: str, customer_id: str,
            job: RepairJob) -> None:
    conn.execute(
        """
        INSERT INTO jobs (tenant_id, id, customer_id, appliance_type, brand, model,
            serial_number, technician, service_address, status, completed_at)
        VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)
        ON CONFLICT (tenant_id, id) DO UPDATE SET appliance_type=EXCLUDED.appliance_type,
            brand=EXCLUDED.brand, model=EXCLUDED.model, serial_number=EXCLUDED.serial_number,
            technician=EXCLUDED.technician, service_address=EXCLUDED.service_address,
            status=EXCLUDED.status, completed_at=EXCLUDED.completed_at
        """,
        (tenant_id, job.job_id, customer_id, job.appliance_type, job.brand, job.model,
         job.serial_number, job.technician, _json(job.service_address),
         "COMPLETED" if job.completed_at else "OPEN", job.completed_at),
    )


def _put_lines(conn: psycopg.Connection[Any], table: str, parent_col: str, tenant_id: str,
               parent_id: str, lines: Sequence[DocumentLine]) -> None:
    conn.execute(f"DELETE FROM {table} WHERE tenant_id=%s AND {parent_col}=%s",
                 (tenant_id, parent_id))
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {table} (tenant_id, {parent_col}, line_id, position, kind, description,"
            " sku, quantity, unit_price, tax_code, amount)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [(tenant_id, parent_id, ln.line_id, i, ln.kind.value, ln.description, ln.sku,
              ln.quantity, ln.unit_price, ln.tax_code, ln.amount) for i, ln in enumerate(lines)],
        )


def put_invoice(conn: psycopg.Connection[Any], tenant_id: str, inv: Invoice) -> None:
    if inv.job is not None:
        put_job(conn, tenant_id, inv.customer_id, inv.job)
    conn.execute(
        """
        INSERT INTO invoices (tenant_id, id, number, status, issue_date, due_date, currency,
            customer_id, po_number, job_id, prices_include_tax, subtotal, tax_lines, total_tax,
            total, amount_paid, amount_due, notes, deleted_at)
        VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,NULL)
        ON CONFLICT (tenant_id, id) DO UPDATE SET number=EXCLUDED.number,
            status=EXCLUDED.status, issue_date=EXCLUDED.issue_date, due_date=EXCLUDED.due_date,
            currency=EXCLUDED.currency, customer_id=EXCLUDED.customer_id,
            po_number=EXCLUDED.po_number, job_id=EXCLUDED.job_id,
            prices_include_tax=EXCLUDED.prices_include_tax, subtotal=EXCLUDED.subtotal,
            tax_lines=EXCLUDED.tax_lines, total_tax=EXCLUDED.total_tax, total=EXCLUDED.total,
            amount_paid=EXCLUDED.amount_paid, amount_due=EXCLUDED.amount_due,
            notes=EXCLUDED.notes, deleted_at=NULL
        """,
        (tenant_id, inv.id, inv.number, inv.status.value, inv.issue_date, inv.due_date,
         inv.currency, inv.customer_id, inv.po_number, inv.job.job_id if inv.job else None,
         inv.prices_include_tax, inv.subtotal, _jsonlist(inv.tax_lines), inv.total_tax,
         inv.total, inv.amount_paid, inv.amount_due, inv.notes),
    )
    _put_lines(conn, "invoice_lines", "invoice_id", tenant_id, inv.id, inv.lines)


def put_payment(conn: psycopg.Connection[Any], tenant_id: str, p: Payment) -> None:
    conn.execute(
        """
        INSERT INTO payments (tenant_id, id, number, kind, customer_id, received_date, method,
            currency, amount, processor_fee, tip, check_number, card_last4, refund_of, deleted_at)
        VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,NULL)
        ON CONFLICT (tenant_id, id) DO UPDATE SET number=EXCLUDED.number, kind=EXCLUDED.kind,
            customer_id=EXCLUDED.customer_id, received_date=EXCLUDED.received_date,
            method=EXCLUDED.method, currency=EXCLUDED.currency, amount=EXCLUDED.amount,
            processor_fee=EXCLUDED.processor_fee, tip=EXCLUDED.tip,
            check_number=EXCLUDED.check_number, card_last4=EXCLUDED.card_last4,
            refund_of=EXCLUDED.refund_of, deleted_at=NULL
        """,
        (tenant_id, p.id, p.number, p.kind.value, p.customer_id, p.received_date,
         p.method.value, p.currency, p.amount, p.processor_fee, p.tip, p.check_number,
         p.card_last4, p.refund_of),
    )
    conn.execute("DELETE FROM payment_allocations WHERE tenant_id=%s AND payment_id=%s",
                 (tenant_id, p.id))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO payment_allocations (tenant_id, payment_id, invoice_id, amount)"
            " VALUES (%s,%s,%s,%s)",
            [(tenant_id, p.id, a.invoice_id, a.amount) for a in p.allocations],
        )


def put_credit_note(conn: psycopg.Connection[Any], tenant_id: str, cn: CreditNote) -> None:
    conn.execute(
        """
        INSERT INTO credit_notes (tenant_id, id, number, customer_id, issue_date, currency,
            invoice_id, reason, prices_include_tax, subtotal, tax_lines, total_tax, total,
            disposition, deleted_at)
        VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,NULL)
        ON CONFLICT (tenant_id, id) DO UPDATE SET number=EXCLUDED.number,
            customer_id=EXCLUDED.customer_id, issue_date=EXCLUDED.issue_date,
            currency=EXCLUDED.currency, invoice_id=EXCLUDED.invoice_id, reason=EXCLUDED.reason,
            prices_include_tax=EXCLUDED.prices_include_tax, subtotal=EXCLUDED.subtotal,
            tax_lines=EXCLUDED.tax_lines, total_tax=EXCLUDED.total_tax, total=EXCLUDED.total,
            disposition=EXCLUDED.disposition, deleted_at=NULL
        """,
        (tenant_id, cn.id, cn.number, cn.customer_id, cn.issue_date, cn.currency,
         cn.invoice_id, cn.reason, cn.prices_include_tax, cn.subtotal,
         _jsonlist(cn.tax_lines), cn.total_tax, cn.total, cn.disposition.value),
    )
    _put_lines(conn, "credit_note_lines", "credit_note_id", tenant_id, cn.id, cn.lines)
    conn.execute("DELETE FROM credit_note_allocations WHERE tenant_id=%s AND credit_note_id=%s",
                 (tenant_id, cn.id))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO credit_note_allocations (tenant_id, credit_note_id, invoice_id, amount)"
            " VALUES (%s,%s,%s,%s)",
            [(tenant_id, cn.id, a.invoice_id, a.amount) for a in cn.allocations],
        )


SOFT_DELETE_TABLE = {
    AggregateType.CUSTOMER: ("customers", "id"),
    AggregateType.TAX_RATE: ("tax_rates", "code"),
    AggregateType.INVOICE: ("invoices", "id"),
    AggregateType.PAYMENT: ("payments", "id"),
    AggregateType.CREDIT_NOTE: ("credit_notes", "id"),
}


def soft_delete(conn: psycopg.Connection[Any], tenant_id: str, agg: AggregateType,
                aggregate_id: str) -> bool:
    """Mark deleted (soft, so pollers can see it); False if absent or already deleted."""
    table, col = SOFT_DELETE_TABLE[agg]
    cur = conn.execute(
        f"UPDATE {table} SET deleted_at = clock_timestamp() "
        f"WHERE tenant_id=%s AND {col}=%s AND deleted_at IS NULL",
        (tenant_id, aggregate_id),
    )
    return cur.rowcount == 1


# ---- reads --------------------------------------------------------------------------


def _group(rows: Iterable[dict[str, Any]], parent: str) -> dict[Key, list[dict[str, Any]]]:
    out: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[(row["tenant_id"], row[parent])].append(row)
    return out


def _where_keys(col: str) -> str:
    return f"(tenant_id, {col}) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"


def _key_args(keys: Sequence[Key]) -> tuple[list[str], list[str]]:
    return [k[0] for k in keys], [k[1] for k in keys]


def _line(r: dict[str, Any]) -> DocumentLine:
    return DocumentLine(line_id=r["line_id"], kind=r["kind"], description=r["description"],
                        sku=r["sku"], quantity=r["quantity"], unit_price=r["unit_price"],
                        tax_code=r["tax_code"], amount=r["amount"])


def _stored(agg: AggregateType, row: dict[str, Any], agg_id: str, customer: str | None,
            payload: Payload | None, status: str | None = None) -> Stored:
    deleted = row["deleted_at"] is not None
    return Stored(row["tenant_id"], agg, agg_id, customer, row["version"], row["updated_at"],
                  deleted, None if deleted else payload, status)


def load(conn: psycopg.Connection[Any], agg: AggregateType,
         keys: Sequence[Key]) -> dict[Key, Stored]:
    """The stored aggregates of ``keys`` (missing keys are absent from the result)."""
    if not keys:
        return {}
    loader = _LOADERS[agg]
    with conn.cursor(row_factory=dict_row) as cur:
        return loader(cur, keys)


def _load_customers(cur: psycopg.Cursor[dict[str, Any]], keys: Sequence[Key]
                    ) -> dict[Key, Stored]:
    cur.execute(f"SELECT * FROM customers WHERE {_where_keys('id')}", _key_args(keys))
    out = {}
    for r in cur.fetchall():
        c = Customer(
            id=r["id"], display_name=r["display_name"], company_name=r["company_name"],
            email=r["email"], phone=r["phone"],
            billing_address=Address.model_validate(r["billing_address"]),
            service_address=(Address.model_validate(r["service_address"])
                             if r["service_address"] else None),
            tax_exempt=r["tax_exempt"], tax_exemption_number=r["tax_exemption_number"],
            default_currency=r["default_currency"],
            external_refs=tuple(ExternalRef.model_validate(x) for x in r["external_refs"]),
            active=r["active"],
        )
        out[(r["tenant_id"], r["id"])] = _stored(AggregateType.CUSTOMER, r, r["id"], r["id"], c)
    return out


def _load_tax_rates(cur: psycopg.Cursor[dict[str, Any]], keys: Sequence[Key]
                    ) -> dict[Key, Stored]:
    cur.execute(f"SELECT * FROM tax_rate_components WHERE {_where_keys('tax_code')} "
                "ORDER BY position", _key_args(keys))
    comps = _group(cur.fetchall(), "tax_code")
    cur.execute(f"SELECT * FROM tax_rates WHERE {_where_keys('code')}", _key_args(keys))
    out = {}
    for r in cur.fetchall():
        key = (r["tenant_id"], r["code"])
        rate = TaxRate(
            code=r["code"], name=r["name"], jurisdiction=r["jurisdiction"],
            components=tuple(TaxComponent(name=c["name"], rate=c["rate"], compound=c["compound"])
                             for c in comps.get(key, [])),
            effective_from=r["effective_from"], effective_to=r["effective_to"],
            active=r["active"],
        ) if r["deleted_at"] is None else None
        out[key] = _stored(AggregateType.TAX_RATE, r, r["code"], None, rate)
    return out


def _load_invoices(cur: psycopg.Cursor[dict[str, Any]], keys: Sequence[Key]
                   ) -> dict[Key, Stored]:
    args = _key_args(keys)
    cur.execute(f"SELECT * FROM invoice_lines WHERE {_where_keys('invoice_id')} "
                "ORDER BY position", args)
    lines = _group(cur.fetchall(), "invoice_id")
    cur.execute(
        "SELECT i.*, row_to_json(j) AS job FROM invoices i LEFT JOIN jobs j "
        "ON j.tenant_id = i.tenant_id AND j.id = i.job_id "
        "WHERE (i.tenant_id, i.id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))", args)
    out = {}
    for r in cur.fetchall():
        key = (r["tenant_id"], r["id"])
        j = r["job"]
        job = RepairJob(
            job_id=j["id"], appliance_type=j["appliance_type"], brand=j["brand"],
            model=j["model"], serial_number=j["serial_number"], technician=j["technician"],
            service_address=Address.model_validate(j["service_address"])
            if j["service_address"] else None,
            completed_at=j["completed_at"],
        ) if j else None
        inv = Invoice(
            id=r["id"], number=r["number"], status=r["status"], issue_date=r["issue_date"],
            due_date=r["due_date"], currency=r["currency"], customer_id=r["customer_id"],
            po_number=r["po_number"], job=job,
            lines=tuple(_line(x) for x in lines.get(key, [])),
            prices_include_tax=r["prices_include_tax"], subtotal=r["subtotal"],
            tax_lines=tuple(TaxLine.model_validate(t) for t in r["tax_lines"]),
            total_tax=r["total_tax"], total=r["total"], amount_paid=r["amount_paid"],
            amount_due=r["amount_due"], notes=r["notes"],
        )
        out[key] = _stored(AggregateType.INVOICE, r, r["id"], r["customer_id"], inv,
                           r["status"])
    return out


def _load_payments(cur: psycopg.Cursor[dict[str, Any]], keys: Sequence[Key]
                   ) -> dict[Key, Stored]:
    args = _key_args(keys)
    cur.execute(f"SELECT * FROM payment_allocations WHERE {_where_keys('payment_id')} "
                "ORDER BY invoice_id", args)
    allocs = _group(cur.fetchall(), "payment_id")
    cur.execute(f"SELECT * FROM payments WHERE {_where_keys('id')}", args)
    out = {}
    for r in cur.fetchall():
        key = (r["tenant_id"], r["id"])
        p = Payment(
            id=r["id"], number=r["number"], kind=r["kind"], customer_id=r["customer_id"],
            received_date=r["received_date"], method=r["method"], currency=r["currency"],
            amount=r["amount"], processor_fee=r["processor_fee"], tip=r["tip"],
            allocations=tuple(Allocation(invoice_id=a["invoice_id"], amount=a["amount"])
                              for a in allocs.get(key, [])),
            check_number=r["check_number"], card_last4=r["card_last4"],
            refund_of=r["refund_of"],
        )
        out[key] = _stored(AggregateType.PAYMENT, r, r["id"], r["customer_id"], p)
    return out


def _load_credit_notes(cur: psycopg.Cursor[dict[str, Any]], keys: Sequence[Key]
                       ) -> dict[Key, Stored]:
    args = _key_args(keys)
    cur.execute(f"SELECT * FROM credit_note_lines WHERE {_where_keys('credit_note_id')} "
                "ORDER BY position", args)
    lines = _group(cur.fetchall(), "credit_note_id")
    cur.execute(f"SELECT * FROM credit_note_allocations WHERE {_where_keys('credit_note_id')} "
                "ORDER BY invoice_id", args)
    allocs = _group(cur.fetchall(), "credit_note_id")
    cur.execute(f"SELECT * FROM credit_notes WHERE {_where_keys('id')}", args)
    out = {}
    for r in cur.fetchall():
        key = (r["tenant_id"], r["id"])
        cn = CreditNote(
            id=r["id"], number=r["number"], customer_id=r["customer_id"],
            issue_date=r["issue_date"], currency=r["currency"], invoice_id=r["invoice_id"],
            reason=r["reason"], lines=tuple(_line(x) for x in lines.get(key, [])),
            prices_include_tax=r["prices_include_tax"], subtotal=r["subtotal"],
            tax_lines=tuple(TaxLine.model_validate(t) for t in r["tax_lines"]),
            total_tax=r["total_tax"], total=r["total"], disposition=r["disposition"],
            allocations=tuple(Allocation(invoice_id=a["invoice_id"], amount=a["amount"])
                              for a in allocs.get(key, [])),
        )
        out[key] = _stored(AggregateType.CREDIT_NOTE, r, r["id"], r["customer_id"], cn)
    return out


_LOADERS = {
    AggregateType.CUSTOMER: _load_customers,
    AggregateType.TAX_RATE: _load_tax_rates,
    AggregateType.INVOICE: _load_invoices,
    AggregateType.PAYMENT: _load_payments,
    AggregateType.CREDIT_NOTE: _load_credit_notes,
}
