"""Registering the contract in a schema registry with BACKWARD compatibility.

Run at deploy time (``ledgerstream up``) before any producer starts: each value
subject is set to BACKWARD *before* its first registration, so the registry checks
every later version, and the history of a record is registered oldest first so the
subject's versions mirror ``schemas/avro/history``.

BACKWARD means consumers (processor, sinks) upgrade before producers: a new reader
reads old data. Apicurio Registry's Confluent-compatible API honours
``PUT /config/{subject}`` (see ``tests/schemas/test_registry_integration.py``).
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from schemas import avsc
from schemas.topics import Topics

BACKWARD = "BACKWARD"


def avro_schema(schema: Any) -> Schema:
    """A registry ``Schema`` from parsed JSON or JSON text."""
    text = schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))
    return Schema(text, schema_type="AVRO")


def set_backward(client: SchemaRegistryClient, subject: str) -> str:
    """Set ``subject``'s compatibility to BACKWARD (works before the subject exists)."""
    return client.set_compatibility(subject_name=subject, level=BACKWARD)


def register(client: SchemaRegistryClient, subject: str, schema: Any) -> int:
    """Register one schema version; returns its id. Raises SchemaRegistryError (409)
    when the registry finds it incompatible."""
    return client.register_schema(subject, avro_schema(schema))


def is_compatible(client: SchemaRegistryClient, subject: str, schema: Any) -> bool:
    """Ask the registry whether ``schema`` would be accepted as the next version."""
    return bool(client.test_compatibility(subject, avro_schema(schema)))


def register_record(client: SchemaRegistryClient, subject: str, record: str) -> list[int]:
    """BACKWARD, then every history version and the current schema, oldest first."""
    set_backward(client, subject)
    return [register(client, subject, version) for version in avsc.versions(record)]


def register_all(
    client: SchemaRegistryClient, topics: Topics | None = None, platforms: tuple[str, ...] = ()
) -> dict[str, int]:
    """Register the current schema of every topic's value subject; subject -> id."""
    topics = topics or Topics()
    ids: dict[str, int] = {}
    for spec in topics.specs(platforms):
        ids[spec.subject] = register_record(client, spec.subject, spec.value_record)[-1]
    return ids
