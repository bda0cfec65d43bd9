"""Where the status poller reads CRM documents from: the :class:`PollSource` protocol, an
SQL implementation (the reference CRM schema) and an HTTP-listing one (a SaaS CRM's REST
API paginated by ``updated_since``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
import psycopg
from pydantic import ValidationError

from producers.outbox.store import Stored, load
from schemas.models import PAYLOAD_TYPES, AggregateType, Payload

STREAMS: tuple[AggregateType, ...] = (
    AggregateType.TAX_RATE, AggregateType.CUSTOMER, AggregateType.INVOICE,
    AggregateType.PAYMENT, AggregateType.CREDIT_NOTE,
)


@dataclass(frozen=True, order=True)
class Position:
    """A keyset position: ``updated_at`` with ``row_id`` as the tie-breaker."""

    updated_at: datetime
    row_id: str


@dataclass(frozen=True)
class Invalid:
    """A listed item the contract refuses; the poller dead-letters it (once per content)."""

    tenant_id: str
    aggregate_type: AggregateType
    aggregate_id: str
    updated_at: datetime
    reason: str
    raw: bytes


Item = Stored | Invalid


def position(item: Item) -> Position:
    return Position(item.updated_at, f"{item.tenant_id}:{item.aggregate_id}")


class PollSource(Protocol):
    """Lists documents changed after a position, oldest first, at most ``limit``."""

    name: str

    def fetch(self, stream: AggregateType, after: Position, limit: int) -> Sequence[Item]:
        ...


_TABLES = {
    AggregateType.CUSTOMER: ("customers", "id"),
    AggregateType.TAX_RATE: ("tax_rates", "code"),
    AggregateType.INVOICE: ("invoices", "id"),
    AggregateType.PAYMENT: ("payments", "id"),
    AggregateType.CREDIT_NOTE: ("credit_notes", "id"),
}


class SqlPollSource:
    """Reads the reference CRM tables (``deploy/sql/crm.sql``) directly. Soft deletes
    (``deleted_at``) are seen; hard deletes cannot be seen by polling at all."""

    def __init__(self, dsn: str, name: str = "sql") -> None:
        self.name = name
        self.conn = psycopg.connect(dsn, autocommit=True)

    def fetch(self, stream: AggregateType, after: Position, limit: int) -> Sequence[Item]:
        table, col = _TABLES[stream]
        tenant, _, agg_id = after.row_id.partition(":")
        keys = [(t, i) for t, i in self.conn.execute(
            f"SELECT tenant_id, {col} FROM {table} "
            f"WHERE (updated_at, tenant_id, {col}) > (%s, %s, %s) "
            f"ORDER BY updated_at, tenant_id, {col} LIMIT %s",
            (after.updated_at, tenant, agg_id, limit))]
        found = load(self.conn, stream, keys)
        return [found[k] for k in keys if k in found]

    def close(self) -> None:
        self.conn.close()


_META = ("updated_at", "version", "deleted", "tenant_id")

Mapper = Callable[[AggregateType, dict[str, Any]], Payload]


def contract_mapper(stream: AggregateType, item: dict[str, Any]) -> Payload:
    """Items shaped like the contract models (our reference API); a real SaaS CRM plugs a
    mapper of its own JSON here."""
    body = {k: v for k, v in item.items() if k not in _META}
    return PAYLOAD_TYPES[stream].model_validate(body)  # type: ignore[return-value]


class HttpPollSource:
    """``GET {base_url}/{resource}?updated_since=<ISO-8601>&page=<n>&per_page=<limit>``
    answering ``{"data": [...], "next_page": n | null}``; each item carries ``id`` (or
    ``code``), ``updated_at``, optional ``version`` and ``deleted``, and the document.

    ``updated_since`` is inclusive at the API, so the same-timestamp tie-breaker is applied
    here, client-side. One source serves one tenant (one API account)."""

    RESOURCES = {
        AggregateType.CUSTOMER: "customers", AggregateType.TAX_RATE: "tax_rates",
        AggregateType.INVOICE: "invoices", AggregateType.PAYMENT: "payments",
        AggregateType.CREDIT_NOTE: "credit_notes",
    }

    def __init__(self, client: httpx.Client, tenant_id: str, *, name: str = "http",
                 mapper: Mapper = contract_mapper) -> None:
        self.client = client
        self.tenant_id = tenant_id
        self.name = name
        self.mapper = mapper

    def fetch(self, stream: AggregateType, after: Position, limit: int) -> Sequence[Item]:
        items: list[Item] = []
        page: int | None = 1
        while page is not None:
            resp = self.client.get(f"/{self.RESOURCES[stream]}", params={
                "updated_since": after.updated_at.isoformat(), "page": page,
                "per_page": limit})
            resp.raise_for_status()
            body = resp.json()
            for raw in body["data"]:
                item = self._item(stream, raw)
                if position(item) > after:
                    items.append(item)
            page = body.get("next_page")
        items.sort(key=position)
        return items[:limit]

    def _item(self, stream: AggregateType, raw: dict[str, Any]) -> Item:
        import json
        agg_id = str(raw.get("code") if stream is AggregateType.TAX_RATE else raw.get("id"))
        updated = datetime.fromisoformat(raw["updated_at"])
        deleted = bool(raw.get("deleted", False))
        customer = agg_id if stream is AggregateType.CUSTOMER else raw.get("customer_id")
        if deleted:
            return Stored(self.tenant_id, stream, agg_id, customer, int(raw.get("version", 0)),
                          updated, True, None)
        try:
            payload = self.mapper(stream, raw)
        except (ValidationError, ValueError, KeyError) as exc:
            return Invalid(self.tenant_id, stream, agg_id, updated,
                           f"{stream.value} {agg_id} does not match the contract: {exc}",
                           json.dumps(raw, default=str).encode())
        status = getattr(payload, "status", None)
        return Stored(self.tenant_id, stream, agg_id, customer, int(raw.get("version", 0)),
                      updated, False, payload, status.value if status is not None else None)
