"""Parked events: waiting for a customer or tax rate that has not arrived yet.

Why park instead of dead-lettering at once: the outbox relay publishes customers and
documents on different topics, so an invoice can overtake its customer by a few
milliseconds. Why not wait forever: a typo'd customer id must surface, so after a
grace period the event goes to ``ledger.dlq`` with its reason.

Order matters (a payment after the invoice it pays), so once a customer key has a
parked event, every later event of that key parks behind it and the queue drains in
order. Each parked event keeps its raw bytes and coordinates, so the dead letter is
replayable exactly as the CRM sent it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

INDEX_PREFIX = "\x00index:"


@dataclass(frozen=True)
class ParkedEvent:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    event_id: str
    parked_at: float
    """Wall-clock seconds when first parked: the grace period is operational time."""
    reason: str
    error_class: str

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.topic, "p": self.partition, "o": self.offset,
            "k": base64.b64encode(self.key).decode(),
            "v": base64.b64encode(self.value).decode(),
            "e": self.event_id, "at": self.parked_at, "r": self.reason, "c": self.error_class,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ParkedEvent:
        return cls(d["t"], d["p"], d["o"], base64.b64decode(d["k"]), base64.b64decode(d["v"]),
                   d["e"], d["at"], d["r"], d["c"])

    def expired(self, now: float, grace_seconds: float) -> bool:
        return now - self.parked_at >= grace_seconds


def dump_queue(queue: list[ParkedEvent]) -> bytes:
    return json.dumps([p.to_json() for p in queue]).encode()


def load_queue(raw: bytes | None) -> list[ParkedEvent]:
    return [ParkedEvent.from_json(d) for d in json.loads(raw)] if raw else []


def index_key(partition: int) -> bytes:
    """The pending-table row listing the customer keys with parked events in a
    partition (so a tick for that partition finds them without a table scan)."""
    return f"{INDEX_PREFIX}{partition}".encode()


def dump_index(keys: set[str]) -> bytes:
    return json.dumps(sorted(keys)).encode()


def load_index(raw: bytes | None) -> set[str]:
    return set(json.loads(raw)) if raw else set()
