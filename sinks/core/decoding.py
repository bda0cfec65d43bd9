"""Decoding ledger entries, telling a bad record from an unavailable registry.

A record whose bytes are not a ledger entry is dead-lettered; a record that cannot
be decoded *right now* because the schema registry is down must not be: the
runner rewinds and tries again. This module draws that line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from sinks.core.errors import TransientError


def _registry_unavailable(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.TransportError | ConnectionError | TimeoutError):
            return True
        if isinstance(current, SchemaRegistryError):
            status = current.http_status_code
            return status == -1 or status >= 500 or status == 429
        current = current.__cause__ or current.__context__
    return False


def ledger_entry_decoder(deserialize: Callable[[bytes, SerializationContext], Any]
                         ) -> Callable[[Any], Any]:
    def decode(msg: Any) -> Any:
        """``msg`` is a :class:`sinks.core.runner.Record`."""
        value = msg.value
        if value is None:
            raise ValueError("empty record value (tombstone) on a ledger entries topic")
        try:
            entry = deserialize(value, SerializationContext(msg.topic, MessageField.VALUE))
        except Exception as exc:
            if _registry_unavailable(exc):
                raise TransientError(f"schema registry unavailable: {exc}",
                                     platform="registry") from exc
            raise
        if entry is None:
            raise ValueError("record decoded to nothing")
        return entry

    return decode
