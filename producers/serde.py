"""Confluent-framed Avro for the crm.* topics (``schemas.serde`` does not exist yet, so the
producers wire the Confluent serializers to the contract here).

One ``AvroSerializer`` per topic: the serializer caches one schema id, and a registry may
give the same schema a different id under each subject (Apicurio does), so sharing one
serializer across subjects could frame a record with another subject's id.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas.avsc import schema_str
from schemas.models import DeadLetter, FinancialEvent
from schemas.serde import wire_header
from schemas.topics import DEAD_LETTER, FINANCIAL_EVENT


class Serde:
    """Serializes envelopes and dead letters for any topic, registering the schema on
    first use (subject = TopicNameStrategy, ``<topic>-value``)."""

    def __init__(self, registry: SchemaRegistryClient | str) -> None:
        self.registry = (
            registry if isinstance(registry, SchemaRegistryClient)
            else SchemaRegistryClient({"url": registry})
        )
        self._serializers: dict[tuple[str, str], AvroSerializer] = {}
        self._contexts: dict[str, SerializationContext] = {}
        self._framing: dict[tuple[str, str], bytes] = {}

    def framing(self, topic: str, record: str = FINANCIAL_EVENT) -> bytes:
        """Magic byte + schema id of ``record`` under ``<topic>-value``, registered as the
        serializer registers it (same subject, same schema string, hence the same id), for
        encoders that write the Avro body themselves without building a model first."""
        prefix = self._framing.get((record, topic))
        if prefix is None:
            schema_id = self.registry.register_schema(f"{topic}-value",
                                                      Schema(schema_str(record), "AVRO"))
            prefix = self._framing[(record, topic)] = wire_header(schema_id)
        return prefix

    def _serializer(self, record: str, topic: str) -> AvroSerializer:
        found = self._serializers.get((record, topic))
        if found is None:
            found = AvroSerializer(self.registry, schema_str(record),
                                   conf={"auto.register.schemas": True})
            self._serializers[(record, topic)] = found
        return found

    def _ctx(self, topic: str) -> SerializationContext:
        ctx = self._contexts.get(topic)
        if ctx is None:
            ctx = self._contexts[topic] = SerializationContext(topic, MessageField.VALUE)
        return ctx

    def avro_dict(self, topic: str, record: str, data: dict[str, Any]) -> bytes:
        """Frame an already-converted Avro dict (the relay's fast path uses this)."""
        out = self._serializer(record, topic)(data, self._ctx(topic))
        assert out is not None
        return out

    def event(self, topic: str, event: FinancialEvent) -> bytes:
        return self.avro_dict(topic, FINANCIAL_EVENT, event.to_avro())

    def dead_letter(self, topic: str, letter: DeadLetter) -> bytes:
        return self.avro_dict(topic, DEAD_LETTER, letter.to_avro())
