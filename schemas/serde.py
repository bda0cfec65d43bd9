"""Confluent Avro serializers/deserializers for the contract records.

Serializers are *configured, not subclassed* (as confluent-kafka intends): each factory
builds an ``AvroSerializer``/``AvroDeserializer`` from ``confluent_kafka.schema_registry.avro``
with the composed schema of the record and ``to_dict``/``from_dict`` hooks that convert
to and from the pydantic models. The bytes are the Confluent wire format: magic byte
0, the 4-byte big-endian schema id, then the fastavro binary body.

The deserializer uses the *current* schema as reader schema, so data written with any
older registered version resolves into today's model (fields added since get their
defaults), and ``return_record_name=True`` so the envelope's payload union comes back
as ``(name, dict)`` and maps onto the right model without guessing.

Keys are plain UTF-8 strings (see :mod:`schemas.topics`).
"""

from __future__ import annotations

import json
import struct
from typing import Any, TypeVar

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import SerializationContext, StringDeserializer, StringSerializer

from schemas import avsc
from schemas.models import (
    AvroRecord,
    CustomerBalance,
    DeadLetter,
    FinancialEvent,
    LedgerEntry,
    from_avro,
    to_avro,
)

R = TypeVar("R", bound=AvroRecord)

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
#: Bytes of the Confluent frame before the Avro body (magic byte + 4-byte schema id).
HEADER_SIZE = _HEADER.size


def wire_header(schema_id: int) -> bytes:
    """The Confluent frame (magic byte + big-endian schema id) that precedes the body."""
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def registry_client(url: str, **conf: Any) -> SchemaRegistryClient:
    """A client for ``url`` (``mock://<scope>`` gives confluent's in-memory mock)."""
    return SchemaRegistryClient.new_client({"url": url, **conf})


def avro_serializer(
    model: type[AvroRecord],
    client: SchemaRegistryClient,
    *,
    auto_register: bool = True,
    conf: dict[str, Any] | None = None,
) -> AvroSerializer:
    """Serializer of ``model`` instances under the topic's ``<topic>-value`` subject.

    In production, register schemas at deploy time (:mod:`schemas.registry`) and pass
    ``auto_register=False`` so a producer cannot sneak in an unreviewed schema.
    """

    def to_dict(obj: object, ctx: SerializationContext) -> dict[str, Any]:
        if not isinstance(obj, model):
            raise TypeError(f"expected {model.__name__}, got {type(obj).__name__}")
        return to_avro(obj)

    return AvroSerializer(
        client,
        avsc.schema_str(model.avro_name),
        to_dict=to_dict,
        conf={"auto.register.schemas": auto_register, **(conf or {})},
    )


def avro_deserializer(
    model: type[R], client: SchemaRegistryClient, *, conf: dict[str, Any] | None = None
) -> AvroDeserializer:
    """Deserializer returning ``model`` instances; any registered writer schema works."""

    def from_dict(data: dict[str, Any], ctx: SerializationContext) -> R:
        return from_avro(model, data)

    return AvroDeserializer(
        client,
        avsc.schema_str(model.avro_name),
        from_dict=from_dict,
        return_record_name=True,
        conf=conf,
    )


def financial_event_serializer(client: SchemaRegistryClient, **kw: Any) -> AvroSerializer:
    """For crm.financial-events, crm.customers and crm.tax-rates."""
    return avro_serializer(FinancialEvent, client, **kw)


def financial_event_deserializer(client: SchemaRegistryClient, **kw: Any) -> AvroDeserializer:
    return avro_deserializer(FinancialEvent, client, **kw)


def ledger_entry_serializer(client: SchemaRegistryClient, **kw: Any) -> AvroSerializer:
    return avro_serializer(LedgerEntry, client, **kw)


def ledger_entry_deserializer(client: SchemaRegistryClient, **kw: Any) -> AvroDeserializer:
    return avro_deserializer(LedgerEntry, client, **kw)


def customer_balance_serializer(client: SchemaRegistryClient, **kw: Any) -> AvroSerializer:
    return avro_serializer(CustomerBalance, client, **kw)


def customer_balance_deserializer(client: SchemaRegistryClient, **kw: Any) -> AvroDeserializer:
    return avro_deserializer(CustomerBalance, client, **kw)


def dead_letter_serializer(client: SchemaRegistryClient, **kw: Any) -> AvroSerializer:
    """For crm.dlq, ledger.dlq and every ledgerstream.sink.<platform>.dlq."""
    return avro_serializer(DeadLetter, client, **kw)


def dead_letter_deserializer(client: SchemaRegistryClient, **kw: Any) -> AvroDeserializer:
    return avro_deserializer(DeadLetter, client, **kw)


def key_serializer() -> StringSerializer:
    """Keys are UTF-8 ``tenant:customer`` strings, not Avro."""
    return StringSerializer("utf_8")


def key_deserializer() -> StringDeserializer:
    return StringDeserializer("utf_8")


def wire_schema_id(data: bytes) -> int:
    """The registry schema id in a Confluent-framed message; ValueError if not framed.

    Dead-letter code uses it to say *which* schema a poison message claimed.
    """
    if len(data) < _HEADER.size:
        raise ValueError(f"{len(data)} bytes is too short for the Confluent wire format")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise ValueError(f"magic byte {magic} != {MAGIC_BYTE}: not Confluent wire format")
    return int(schema_id)


def canonical_schema(text: str) -> str:
    """A schema's JSON with keys sorted and no spaces: equal texts mean equal schemas."""
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


class WriterSchemas:
    """Writer schemas by registry id, parsed once, for readers that decode with fastavro
    directly (the processor's codec, the sink's entry reader: confluent-kafka's
    deserializer walks the whole schema on every record).

    ``resolve(id)`` gives ``(writer, same)``: ``same`` when the writer is today's schema
    of ``avro_name``, so the caller can skip schema resolution; otherwise the parsed
    writer, to be read with today's schema (``reader``) as the reader schema.
    """

    def __init__(self, client: SchemaRegistryClient, avro_name: str) -> None:
        self.client = client
        self.reader = avsc.parsed(avro_name)
        self._canonical = canonical_schema(avsc.schema_str(avro_name))
        self._known: dict[int, tuple[Any, bool]] = {}

    def resolve(self, schema_id: int) -> tuple[Any, bool]:
        found = self._known.get(schema_id)
        if found is None:
            text = self.client.get_schema(schema_id).schema_str or ""
            same = canonical_schema(text) == self._canonical
            found = (self.reader if same else fastavro.parse_schema(json.loads(text)), same)
            self._known[schema_id] = found
        return found
