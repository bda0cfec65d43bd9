"""Confluent-framed Avro as a faust codec, built on the ``schemas`` contract.

Wire format: ``0x00`` + 4-byte big-endian schema id + Avro binary, the format every
Confluent-compatible client reads. Why a codec of our own instead of confluent-kafka's
``AvroSerializer`` inside faust: a faust codec is bytes-in/bytes-out and does not know
the topic, while TopicNameStrategy needs it — so each instance is bound to one
subject (one per output topic). Decoding needs no subject (the id names the writer
schema), so one :class:`AvroDecoder` serves every input topic.

The schemas come from :mod:`schemas.avsc` (the ``.avsc`` files composed into one
self-contained document), values go through the pydantic models' ``to_avro`` /
``from_avro``, so the processor writes exactly what the contract says. The registry is
the confluent-kafka client (HTTP, cached): it is only called on a cache miss.
"""

from __future__ import annotations

import io
import json
import struct
from functools import cached_property
from typing import Any, Generic, TypeVar

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from faust.serializers.codecs import Codec

from schemas.avsc import parsed, schema_str
from schemas.models import AvroRecord

R = TypeVar("R", bound=AvroRecord)
MAGIC = 0
_HEADER = struct.Struct(">bI")


class AvroDecodeError(ValueError):
    """The bytes are not a Confluent-framed Avro record of the expected type."""


class AvroEncoder(Codec, Generic[R]):
    """Encode one record type into one subject; registers the schema on first use."""

    def __init__(self, registry: SchemaRegistryClient, subject: str, record: type[R]) -> None:
        super().__init__()
        self.registry = registry
        self.subject = subject
        self.record = record
        self._schema = parsed(record.avro_name)

    @cached_property
    def schema_id(self) -> int:
        """The registry id of our schema under our subject (registered if new)."""
        return int(self.registry.register_schema(
            self.subject, Schema(schema_str(self.record.avro_name), "AVRO")
        ))

    def encode(self, value: R) -> bytes:
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC, self.schema_id))
        fastavro.schemaless_writer(buf, self._schema, value.to_avro())
        return buf.getvalue()

    def _dumps(self, s: Any) -> bytes:
        return self.encode(s)

    def _loads(self, s: bytes) -> Any:
        raise NotImplementedError("AvroEncoder only encodes; decode with AvroDecoder")


class AvroDecoder(Codec, Generic[R]):
    """Decode any registered writer schema into the current model of ``record``.

    Avro schema resolution maps an older (or newer, compatible) writer schema onto our
    reader schema, so a producer one schema version ahead or behind still decodes.
    """

    def __init__(self, registry: SchemaRegistryClient, record: type[R]) -> None:
        super().__init__()
        self.registry = registry
        self.record = record
        self._reader = parsed(record.avro_name)
        self._reader_canonical = json.dumps(json.loads(schema_str(record.avro_name)),
                                            sort_keys=True)
        self._writers: dict[int, tuple[Any, bool]] = {}

    def _writer(self, schema_id: int) -> tuple[Any, bool]:
        found = self._writers.get(schema_id)
        if found is None:
            text = self.registry.get_schema(schema_id).schema_str or ""
            same = json.dumps(json.loads(text), sort_keys=True) == self._reader_canonical
            found = (self._reader if same else fastavro.parse_schema(json.loads(text)), same)
            self._writers[schema_id] = found
        return found

    def decode(self, data: bytes | None) -> R:
        if data is None or len(data) < _HEADER.size:
            raise AvroDecodeError("empty or truncated value (no Confluent header)")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise AvroDecodeError(f"unknown magic byte {magic}")
        try:
            writer, same = self._writer(schema_id)
        except Exception as exc:
            raise AvroDecodeError(f"schema id {schema_id}: {exc}") from exc
        buf = io.BytesIO(data)
        buf.seek(_HEADER.size)
        try:
            body = fastavro.schemaless_reader(
                buf, writer, None if same else self._reader, return_record_name=True
            )
        except Exception as exc:
            raise AvroDecodeError(f"Avro body does not match schema {schema_id}: {exc}") from exc
        if not isinstance(body, dict):
            raise AvroDecodeError(f"schema {schema_id} is not a record schema")
        return self.record.from_avro(body)

    def _loads(self, s: bytes) -> Any:
        return self.decode(s)

    def _dumps(self, s: Any) -> bytes:
        raise NotImplementedError("AvroDecoder only decodes; encode with AvroEncoder")
