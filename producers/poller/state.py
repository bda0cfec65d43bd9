"""The poller's durable state in PostgreSQL: one watermark per (source, stream) and one
snapshot (version + content hash + status) per aggregate. Both are written in the same
transaction, after the broker acknowledged the events they account for: a crash re-reads
and re-emits (same derived event ids), it never skips."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from producers.poller.source import Position
from schemas.models import AggregateType

EPOCH = Position(datetime(1970, 1, 1, tzinfo=UTC), "")


@dataclass(frozen=True)
class Snapshot:
    tenant_id: str
    aggregate_type: AggregateType
    aggregate_id: str
    version: int
    content_hash: str
    status: str | None
    customer_id: str | None
    deleted: bool
    updated_at: datetime


class PollerState:
    def __init__(self, dsn: str, source: str) -> None:
        self.source = source
        self.conn: psycopg.Connection[Any] = psycopg.connect(dsn, autocommit=True)

    def watermark(self, stream: AggregateType) -> Position:
        row = self.conn.execute(
            "SELECT updated_at, row_id FROM poller_watermarks WHERE source=%s AND stream=%s",
            (self.source, stream.value)).fetchone()
        return Position(row[0], row[1]) if row else EPOCH

    def snapshots(self, keys: Iterable[tuple[str, AggregateType, str]]
                  ) -> dict[tuple[str, AggregateType, str], Snapshot]:
        keys = list(keys)
        if not keys:
            return {}
        rows = self.conn.execute(
            "SELECT tenant_id, aggregate_type, aggregate_id, version, content_hash, status, "
            "customer_id, deleted, updated_at FROM poller_snapshots WHERE source=%s AND "
            "(tenant_id, aggregate_type, aggregate_id) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
            (self.source, [k[0] for k in keys], [k[1].value for k in keys],
             [k[2] for k in keys])).fetchall()
        out = {}
        for r in rows:
            snap = Snapshot(r[0], AggregateType(r[1]), *r[2:])
            out[(snap.tenant_id, snap.aggregate_type, snap.aggregate_id)] = snap
        return out

    def save(self, snapshots: Sequence[Snapshot],
             watermarks: dict[AggregateType, Position]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                """
                    INSERT INTO poller_snapshots (source, tenant_id, aggregate_type,
                        aggregate_id, version, content_hash, status, customer_id, deleted,
                        updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)
                    ON CONFLICT (source, tenant_id, aggregate_type, aggregate_id) DO UPDATE
                    SET version=EXCLUDED.version, content_hash=EXCLUDED.content_hash,
                        status=EXCLUDED.status, customer_id=EXCLUDED.customer_id,
                        deleted=EXCLUDED.deleted, updated_at=EXCLUDED.updated_at
                    """,
                [(self.source, s.tenant_id, s.aggregate_type.value, s.aggregate_id,
                  s.version, s.content_hash, s.status, s.customer_id, s.deleted,
                  s.updated_at) for s in snapshots])
            cur.executemany(
                """
                    INSERT INTO poller_watermarks (source, stream, updated_at, row_id)
                    VALUES (%s,%s,%s,%s) ON CONFLICT (source, stream) DO UPDATE
                    SET updated_at=EXCLUDED.updated_at, row_id=EXCLUDED.row_id,
                        saved_at=now()
                    WHERE (poller_watermarks.updated_at, poller_watermarks.row_id)
                        < (EXCLUDED.updated_at, EXCLUDED.row_id)
                    """,
                [(self.source, stream.value, pos.updated_at, pos.row_id)
                 for stream, pos in watermarks.items()])

    def close(self) -> None:
        self.conn.close()
