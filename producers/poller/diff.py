"""What changed since the last emitted state: pure, so the watermark/snapshot logic is
unit-tested without a database.

A listed item becomes an event only if its content differs from the aggregate's snapshot
(or it is new, or newly deleted). Re-reading the same rows, as the overlap window does on
every poll, therefore emits nothing twice; and event ids are derived from
(source, tenant, aggregate, version, type), so even a lost snapshot re-emits the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from producers.events import build_event, derived_event_id, event_type_for
from producers.outbox.store import Stored
from producers.poller.source import Invalid, Item
from producers.poller.state import Snapshot
from producers.publisher import Outgoing
from schemas.models import AggregateType, EventSource

SnapshotKey = tuple[str, AggregateType, str]
INVALID_STATUS = "!invalid"
DELETED_HASH = "deleted"


def content_hash(item: Stored) -> str:
    if item.payload is None:
        return DELETED_HASH
    return hashlib.sha256(item.payload.model_dump_json().encode()).hexdigest()


def snapshot_key(item: Item) -> SnapshotKey:
    return (item.tenant_id, item.aggregate_type, item.aggregate_id)


@dataclass
class Plan:
    outgoing: list[Outgoing] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)


def plan(items: Sequence[Item], known: dict[SnapshotKey, Snapshot], source: str) -> Plan:
    """Events and new snapshots for ``items`` (oldest first) given the stored snapshots.
    ``known`` is updated as items are planned, so one aggregate listed twice is fine."""
    out = Plan()
    for item in items:
        key = snapshot_key(item)
        snap = known.get(key)
        if isinstance(item, Invalid):
            digest = hashlib.sha256(item.raw).hexdigest()
            if snap is not None and snap.content_hash == digest:
                continue  # this exact bad content was dead-lettered already
            out.invalid.append(item)
            new = Snapshot(*key, snap.version if snap else 0, digest, INVALID_STATUS,
                           snap.customer_id if snap else None, False, item.updated_at)
            known[key] = new
            out.snapshots.append(new)
            continue
        digest = content_hash(item)
        if snap is not None and snap.content_hash == digest:
            continue  # re-read (overlap window) or touched without a change
        if snap is None and item.deleted:
            continue  # created and deleted before we ever saw it: nothing to tell
        existed = snap is not None and not snap.deleted and snap.status != INVALID_STATUS
        version = item.version
        if snap is not None and version <= snap.version:
            version = snap.version + 1  # sources without versions (or with stale ones)
        event_type = event_type_for(item.aggregate_type, item.payload, existed=existed,
                                    before_status=snap.status if snap else None)
        customer = item.customer_id or (snap.customer_id if snap else None)
        event = build_event(
            tenant_id=item.tenant_id, aggregate_type=item.aggregate_type,
            aggregate_id=item.aggregate_id, event_type=event_type, version=version,
            occurred_at=item.updated_at, source=EventSource.POLLER, payload=item.payload,
            event_id=derived_event_id(source, item.tenant_id, item.aggregate_type,
                                      item.aggregate_id, version, event_type))
        out.outgoing.append(Outgoing(event, customer))
        new = Snapshot(*key, version, digest, item.status, customer, item.deleted,
                       item.updated_at)
        known[key] = new
        out.snapshots.append(new)
    return out
