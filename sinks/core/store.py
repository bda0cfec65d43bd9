"""PostgreSQL bookkeeping of a sink: offsets, external-id map, sync log, paused tenants.

The exactly-once argument rests on one rule: a batch's external ids, sync-log rows and
the partition offsets that cover them are committed in ONE transaction. After a crash
the consumer seeks to the stored offsets, so every record after them is replayed, and
every replayed write reaches the platform with the same idempotency key (or is found
by reference first), which the platform answers without creating a second document.

Offsets are fenced optimistically: an update only succeeds if the stored offset is the
one this worker loaded when it was assigned the partition. A zombie that lost its
partitions in a rebalance therefore cannot commit over its successor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources

import psycopg
from psycopg.rows import tuple_row

SCHEMA_SQL = "sink_bookkeeping.sql"


class OffsetFencedError(RuntimeError):
    """Another worker moved a partition's stored offset: this worker lost it."""


@dataclass(frozen=True)
class ExternalIdUpdate:
    kind: str
    crm_id: str
    external_id: str
    version: str | None = None
    document_number: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one record; becomes a sync-log row (and map updates)."""

    tenant_id: str
    event_id: str
    status: str
    topic: str
    partition: int
    offset: int
    aggregate_type: str | None = None
    aggregate_id: str | None = None
    aggregate_version: int | None = None
    external_id: str | None = None
    error: str | None = None
    request_digest: str | None = None
    response_digest: str | None = None
    updates: tuple[ExternalIdUpdate, ...] = ()
    #: When the platform answered (None for records that sent nothing).
    written_at: datetime | None = None


@dataclass(frozen=True)
class ParkedRecord:
    seq: int
    tenant_id: str
    event_id: str | None
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class OffsetClaim:
    """The offset this worker expects to find stored, per (topic, partition)."""

    expected: dict[tuple[str, int], int | None] = field(default_factory=dict)


def digest(data: bytes | str | None) -> str | None:
    if data is None:
        return None
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:32]


class SinkStore:
    def __init__(self, dsn: str, platform: str, consumer_group: str) -> None:
        self.dsn = dsn
        self.platform = platform
        self.group = consumer_group
        self._conn: psycopg.Connection | None = None

    # -- connection ------------------------------------------------------
    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, connect_timeout=10, row_factory=tuple_row)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        with self.conn.transaction():
            yield self.conn

    def ensure_schema(self) -> None:
        sql = resources.files("sinks.core").joinpath("sql", SCHEMA_SQL).read_text()
        with self.transaction() as conn:
            # Serialise concurrent first starts of several replicas.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('ledgerstream.sink.schema'))")
            conn.execute(sql.encode())

    # -- offsets ---------------------------------------------------------
    def stored_offsets(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        parts = list(partitions)
        rows = self.conn.execute(
            "SELECT partition, next_offset FROM sink_offsets "
            "WHERE consumer_group = %s AND topic = %s AND partition = ANY(%s)",
            (self.group, topic, parts),
        ).fetchall()
        self.conn.commit()
        return {int(p): int(o) for p, o in rows}

    # -- reads used while planning -----------------------------------------
    def terminal_events(self, tenant_event_ids: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Events already applied/dead-lettered: a replay skips them."""
        pairs = list(tenant_event_ids)
        if not pairs:
            return set()
        tenants = [t for t, _ in pairs]
        events = [e for _, e in pairs]
        rows = self.conn.execute(
            "SELECT tenant_id, event_id FROM sink_sync_log "
            "WHERE platform = %s AND (tenant_id, event_id) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[])) "
            "AND status IN ('applied', 'already_applied', 'dead_lettered')",
            (self.platform, tenants, events),
        ).fetchall()
        self.conn.commit()
        return {(str(t), str(e)) for t, e in rows}

    def external_ids(
        self, tenant_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[str, ExternalIdUpdate]:
        """Known platform ids of one tenant, keyed ``"<kind>:<crm_id>"``."""
        return self.external_ids_for_tenants({tenant_id: keys}).get(tenant_id, {})

    def external_ids_for_tenants(
        self, wanted: Mapping[str, Iterable[tuple[str, str]]]
    ) -> dict[str, dict[str, ExternalIdUpdate]]:
        """Known platform ids of several tenants in one query (a whole batch's needs):
        ``{tenant: {"<kind>:<crm_id>": update}}``. One round-trip per batch instead of
        one per record."""
        tenants: list[str] = []
        kinds: list[str] = []
        crm_ids: list[str] = []
        for tenant_id, keys in wanted.items():
            for kind, crm_id in dict.fromkeys(keys):
                tenants.append(tenant_id)
                kinds.append(kind)
                crm_ids.append(crm_id)
        if not tenants:
            return {}
        rows = self.conn.execute(
            "SELECT tenant_id, kind, crm_id, external_id, version, document_number "
            "FROM sink_external_ids WHERE platform = %s AND (tenant_id, kind, crm_id) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
            (self.platform, tenants, kinds, crm_ids),
        ).fetchall()
        self.conn.commit()
        out: dict[str, dict[str, ExternalIdUpdate]] = {}
        for tenant_id, kind, crm_id, ext, version, number in rows:
            out.setdefault(str(tenant_id), {})[f"{kind}:{crm_id}"] = ExternalIdUpdate(
                kind, crm_id, ext, version, number)
        return out

    # -- the one transaction -------------------------------------------------
    def commit_batch(
        self,
        outcomes: Iterable[Outcome],
        offsets: Mapping[tuple[str, int], int],
        claim: OffsetClaim,
        parked: Iterable[tuple[str, str | None, str, int, int, bytes | None, bytes | None]] = (),
    ) -> None:
        """Write outcomes, map updates, parked records and offsets atomically.

        ``offsets`` maps (topic, partition) to the next offset to read. Raises
        :class:`OffsetFencedError` (and commits nothing) if a stored offset is not the
        one ``claim`` expects.
        """
        with self.transaction() as conn:
            for (topic, partition), next_offset in offsets.items():
                expected = claim.expected.get((topic, partition))
                if expected is None:
                    cur = conn.execute(
                        "INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (self.group, topic, partition, next_offset),
                    )
                else:
                    cur = conn.execute(
                        "UPDATE sink_offsets SET next_offset = %s, updated_at = now() "
                        "WHERE consumer_group = %s AND topic = %s AND partition = %s "
                        "AND next_offset = %s",
                        (next_offset, self.group, topic, partition, expected),
                    )
                if cur.rowcount != 1:
                    raise OffsetFencedError(
                        f"{self.group} {topic}[{partition}]: stored offset is no longer "
                        f"{expected}; another worker owns this partition now"
                    )
            # executemany pipelines the rows: one round-trip per statement, not per row.
            rows = list(outcomes)
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO sink_sync_log (platform, tenant_id, event_id, aggregate_type, "
                    "aggregate_id, aggregate_version, status, last_error, external_id, "
                    "request_digest, response_digest, topic, partition, \"offset\", "
                    "written_at) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (platform, tenant_id, event_id) DO UPDATE SET "
                    "status = EXCLUDED.status, last_error = EXCLUDED.last_error, "
                    "external_id = COALESCE(EXCLUDED.external_id, sink_sync_log.external_id), "
                    "attempts = sink_sync_log.attempts + 1, updated_at = now(), "
                    "request_digest = EXCLUDED.request_digest, "
                    "response_digest = EXCLUDED.response_digest, "
                    "written_at = EXCLUDED.written_at",
                    [(self.platform, o.tenant_id, o.event_id, o.aggregate_type, o.aggregate_id,
                      o.aggregate_version, o.status, o.error, o.external_id, o.request_digest,
                      o.response_digest, o.topic, o.partition, o.offset, o.written_at)
                     for o in rows],
                )
                # In record order, so a later write of the same key wins, as before.
                cur.executemany(
                    "INSERT INTO sink_external_ids (platform, tenant_id, kind, crm_id, "
                    "external_id, version, document_number, last_event_id) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (platform, tenant_id, kind, crm_id) DO UPDATE SET "
                    "external_id = EXCLUDED.external_id, "
                    "version = COALESCE(EXCLUDED.version, sink_external_ids.version), "
                    "document_number = COALESCE(EXCLUDED.document_number, "
                    "sink_external_ids.document_number), "
                    "last_event_id = EXCLUDED.last_event_id, updated_at = now()",
                    [(self.platform, o.tenant_id, u.kind, u.crm_id, u.external_id,
                      u.version, u.document_number, o.event_id)
                     for o in rows for u in o.updates],
                )
            for tenant_id, event_id, topic, partition, offset, key, value in parked:
                conn.execute(
                    "INSERT INTO sink_parked (platform, tenant_id, event_id, topic, partition, "
                    "\"offset\", key, value) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT DO NOTHING",
                    (self.platform, tenant_id, event_id, topic, partition, offset, key, value),
                )
        for (topic, partition), next_offset in offsets.items():
            claim.expected[(topic, partition)] = next_offset

    # -- paused tenants ----------------------------------------------------
    def paused_tenants(self) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT tenant_id, reason FROM sink_tenant_state WHERE platform = %s AND paused",
            (self.platform,),
        ).fetchall()
        self.conn.commit()
        return {str(t): str(r) for t, r in rows}

    def blocked_tenants(self) -> dict[str, str]:
        """Tenants whose new records must be parked, with why: the paused ones, and
        those with parked records not yet replayed — a ``resume`` (possibly in another
        process) is draining them, and a record written before them would break the
        tenant's order."""
        blocked = self.paused_tenants()
        rows = self.conn.execute(
            "SELECT DISTINCT tenant_id FROM sink_parked WHERE platform = %s",
            (self.platform,),
        ).fetchall()
        self.conn.commit()
        for (tenant_id,) in rows:
            blocked.setdefault(str(tenant_id), "parked records are waiting to be replayed "
                                               "(ledgerstream resume)")
        return blocked

    def set_paused(self, tenant_id: str, paused: bool, reason: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO sink_tenant_state (platform, tenant_id, paused, reason) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (platform, tenant_id) DO UPDATE SET "
                "paused = EXCLUDED.paused, reason = EXCLUDED.reason, changed_at = now()",
                (self.platform, tenant_id, paused, reason),
            )

    def parked(self, tenant_id: str) -> list[ParkedRecord]:
        rows = self.conn.execute(
            "SELECT seq, tenant_id, event_id, topic, partition, \"offset\", key, value "
            "FROM sink_parked WHERE platform = %s AND tenant_id = %s ORDER BY seq",
            (self.platform, tenant_id),
        ).fetchall()
        self.conn.commit()
        return [ParkedRecord(*row) for row in rows]

    def release_parked(self, seqs: Iterable[int]) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM sink_parked WHERE seq = ANY(%s)", (list(seqs),))

    def sync_log_counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT status, count(*) FROM sink_sync_log WHERE platform = %s GROUP BY status",
            (self.platform,),
        ).fetchall()
        self.conn.commit()
        return {str(s): int(n) for s, n in rows}
