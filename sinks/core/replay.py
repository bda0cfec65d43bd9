"""`ledgerstream replay`: move a sink's stored offsets back so it reads records again.

Replaying is harmless by construction: events the sync log holds as applied are
skipped, and with ``resend`` (their sync-log rows removed first) every write goes out
again with the same idempotency key, or is found by reference first, so the platform
still ends with one document per event. Use ``resend`` after restoring a platform
company from a backup, or to re-check a tenant against its books.

Run it while the platform's sink is stopped; a running sink notices that its stored
offsets moved (the offset fence) and stops instead of committing over them.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from confluent_kafka import Consumer, TopicPartition

OFFSET_BEGINNING_MS = 0


@dataclass(frozen=True)
class ReplayPlan:
    partitions: dict[int, int]
    resent_events: int


def replay(
    *,
    bootstrap: str,
    database_url: str,
    topic: str,
    group: str,
    platform: str,
    since_ms: int = OFFSET_BEGINNING_MS,
    tenant_id: str | None = None,
    resend: bool = False,
) -> ReplayPlan:
    """Set ``group``'s stored offsets on ``topic`` to the first record at/after ``since_ms``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}.replay"})
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise RuntimeError(f"topic {topic} not found on {bootstrap}")
        partitions = list(metadata.topics[topic].partitions)
        wanted = [TopicPartition(topic, p, since_ms) for p in partitions]
        found = consumer.offsets_for_times(wanted, timeout=15)
        targets: dict[int, int] = {}
        for tp in found:
            if tp.offset < 0:  # no record at/after the time: start at the end
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition),
                                                         timeout=15)
                targets[tp.partition] = high
            else:
                targets[tp.partition] = tp.offset
    finally:
        consumer.close()
    resent = 0
    with psycopg.connect(database_url) as conn, conn.transaction():
        for partition, offset in targets.items():
            conn.execute(
                "INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (consumer_group, topic, partition) "
                "DO UPDATE SET next_offset = LEAST(sink_offsets.next_offset, "
                "EXCLUDED.next_offset), updated_at = now()",
                (group, topic, partition, offset),
            )
        if resend:
            for partition, offset in targets.items():
                cur = conn.execute(
                    "DELETE FROM sink_sync_log WHERE platform = %s AND topic = %s "
                    "AND partition = %s AND \"offset\" >= %s "
                    "AND (%s::text IS NULL OR tenant_id = %s) "
                    "AND status IN ('applied', 'already_applied')",
                    (platform, topic, partition, offset, tenant_id, tenant_id),
                )
                resent += cur.rowcount
    return ReplayPlan(targets, resent)
