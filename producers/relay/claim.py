"""The relay's SQL: claim buckets, read pending rows, finish a batch.

Concurrency model: every outbox row carries ``bucket = hash(message_key) & 63``. A relay
batch runs in one transaction that first takes ``pg_try_advisory_xact_lock`` on up to
``buckets_per_claim`` buckets that have pending rows (in random order, skipping buckets
other relays hold), then reads those buckets' oldest rows in ``sequence`` order,
publishes them, waits for every delivery report, and deletes (or marks) the rows before
COMMIT releases the locks. So at any moment one relay at most publishes a given key, and
the next batch for a bucket (by whichever relay) starts only after the previous batch's
records were acknowledged: per-key order holds across relays and restarts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from producers.relay.rows import OutboxRow

BUCKETS = 64
LOCK_CLASS = 0x4C53  # "LS": the advisory-lock class id of outbox buckets

_CLAIM = """
SELECT b FROM (
    SELECT b FROM generate_series(0, %(buckets)s - 1) AS b
    WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.bucket = b AND o.published_at IS NULL)
    ORDER BY random()
) AS candidates
WHERE pg_try_advisory_xact_lock(%(cls)s, b)
LIMIT %(limit)s
"""

_ROWS = """
SELECT {columns} FROM outbox
WHERE bucket = ANY(%s) AND published_at IS NULL
ORDER BY sequence LIMIT %s
"""
ROWS = _ROWS.format(columns=OutboxRow.COLUMNS)
LEGACY_ROWS = _ROWS.format(columns=OutboxRow.LEGACY_COLUMNS)


def has_avro_column(conn: psycopg.Connection[Any]) -> bool:
    """Whether the outbox has ``payload_avro`` (crm.sql adds it; an outbox created by an
    older crm.sql has JSON rows only, and the relay still works against it)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'outbox' "
            "AND column_name = 'payload_avro' AND table_schema = ANY(current_schemas(false))"
        ).fetchone()
    return bool(row and row[0])


def claim_buckets(conn: psycopg.Connection[Any], limit: int) -> list[int]:
    """Lock up to ``limit`` buckets with pending rows for this transaction."""
    rows = conn.execute(_CLAIM, {"buckets": BUCKETS, "cls": LOCK_CLASS, "limit": limit})
    return [r[0] for r in rows.fetchall()]


def read_rows(conn: psycopg.Connection[Any], buckets: Sequence[int],
              limit: int, *, avro: bool = True) -> list[OutboxRow]:
    """The oldest pending rows of the claimed buckets; per bucket, a prefix in order.

    Binary results: ``payload_avro`` arrives as its bytes instead of hex text that both
    PostgreSQL and the client would have to convert, and the timestamp needs no parsing."""
    with conn.cursor(binary=True) as cur:
        cur.execute(ROWS if avro else LEGACY_ROWS, (list(buckets), limit))
        return [OutboxRow(*r) for r in cur.fetchall()]


def finish(conn: psycopg.Connection[Any], published: Sequence[str], *, mark: bool) -> None:
    """Delete (Debezium-style, the table stays small) or mark the delivered rows."""
    if not published:
        return
    if mark:
        conn.execute("UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY(%s)",
                     (list(published),))
    else:
        conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", (list(published),))


_DEAD = """
WITH gone AS (DELETE FROM outbox WHERE id = ANY(%s::uuid[]) RETURNING *)
INSERT INTO outbox_dead_letter (id, aggregatetype, aggregateid, type, payload,
    "timestamp", tenant_id, message_key, destination, sequence, error_class, reason{extra})
SELECT g.id, g.aggregatetype, g.aggregateid, g.type, g.payload, g."timestamp",
       g.tenant_id, g.message_key, g.destination, g.sequence, r.error_class, r.reason{g_extra}
FROM gone g JOIN unnest(%s::uuid[], %s::text[], %s::text[]) AS r(id, error_class, reason)
  ON r.id = g.id
ON CONFLICT (id) DO NOTHING
"""


def move_to_dead_letter(conn: psycopg.Connection[Any],
                        dead: Sequence[tuple[str, str, str]], *, avro: bool = True) -> None:
    """Move rows (id, error_class, reason) out of the outbox, keeping the reason (and the
    writer's Avro bytes, when the outbox has them)."""
    if not dead:
        return
    conn.execute(
        _DEAD.format(extra=", payload_avro" if avro else "",
                     g_extra=", g.payload_avro" if avro else ""),
        ([d[0] for d in dead], [d[0] for d in dead], [d[1] for d in dead],
         [d[2] for d in dead]),
    )


def oldest_pending(conn: psycopg.Connection[Any]) -> datetime | None:
    row = conn.execute('SELECT "timestamp" FROM outbox WHERE published_at IS NULL '
                       "ORDER BY sequence LIMIT 1").fetchone()
    return row[0] if row else None
