"""Confluent-framed Avro as a faust codec, built on :mod:`schemas.serde`.

Why a codec per topic: a faust codec is bytes-in/bytes-out and never learns the
topic, but the Confluent serializers need it (TopicNameStrategy: subject
``<topic>-value``). So each :class:`ConfluentAvroCodec` is bound to one topic and one
record model, and holds ``schemas.serde``'s configured serializer and deserializer
(the contract's composed schema, the pydantic ``to_avro``/``from_avro`` hooks, the
current schema as reader so older writers resolve). The app calls
:meth:`~ConfluentAvroCodec.encode` / :meth:`~ConfluentAvroCodec.decode` directly so
that a poison message becomes a dead letter with its raw bytes rather than a faust
decode error; the codec interface is there for anything that wants faust's
``value_serializer=`` hook.
"""

from __future__ import annotations

import io
from typing import Any, Generic, TypeVar

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from faust.serializers.codecs import Codec

from schemas import avsc, serde
from schemas.models import AvroRecord
from schemas.topics import value_subject
from stream_processors.avro_writer import record_writer

R = TypeVar("R", bound=AvroRecord)


class AvroDecodeError(ValueError):
    """The bytes are not a Confluent-framed Avro record of the expected type."""


class ConfluentAvroCodec(Codec, Generic[R]):
    """Avro values of one ``topic`` as instances of ``model``.

    Encoding frames the bytes of :mod:`.avro_writer` (the contract's schema compiled
    to write straight from the model); decoding reads with fastavro and the parsed
    schema (``schemas.avsc``) and builds the model with ``from_avro`` — byte-for-byte
    what ``schemas.serde``'s serializers write and read, which the tests check. Why
    not call those serializers per message: confluent-kafka 2.16's
    ``AvroSerializer``/``AvroDeserializer`` walk the whole schema for data-contract
    rules on every call (``get_inline_tags``), about 1 ms per record here, more than
    everything else the processor does. ``schemas.serde`` still
    provides the registry client, schema registration and the wire constants.
    """

    def __init__(
        self,
        topic: str,
        model: type[R],
        client: SchemaRegistryClient,
        *,
        auto_register: bool = True,
    ) -> None:
        super().__init__()
        self.topic = topic
        self.model = model
        self.client = client
        self.auto_register = auto_register
        self.subject = value_subject(topic)
        self._schema_text = avsc.schema_str(model.avro_name)
        self._write = record_writer(model)
        self._schema_id: int | None = None
        self._schemas = serde.WriterSchemas(client, model.avro_name)

    @property
    def schema_id(self) -> int:
        """Our schema's id under our subject: registered on first use, or looked up."""
        if self._schema_id is None:
            schema = Schema(self._schema_text, "AVRO")
            if self.auto_register:
                self._schema_id = int(self.client.register_schema(self.subject, schema))
            else:
                found = self.client.lookup_schema(self.subject, schema).schema_id
                if found is None:
                    raise AvroDecodeError(f"{self.subject} has no id for our schema")
                self._schema_id = int(found)
        return self._schema_id

    def encode(self, value: R) -> bytes:
        if not isinstance(value, self.model):  # the compiled writer trusts its input's shape
            raise TypeError(f"{self.topic} holds {self.model.__name__}, not "
                            f"{type(value).__name__}")
        buf = bytearray(serde.wire_header(self.schema_id))
        self._write(value, buf)
        return bytes(buf)


    def decode(self, data: bytes | None) -> R:
        """Decode or raise :class:`AvroDecodeError` naming what was wrong."""
        if not data:
            raise AvroDecodeError("empty value")
        try:
            schema_id = serde.wire_schema_id(data)
            writer, same = self._schemas.resolve(schema_id)
            body = fastavro.schemaless_reader(
                io.BytesIO(data[serde.HEADER_SIZE:]), writer,
                None if same else self._schemas.reader, return_record_name=True,
            )
            if not isinstance(body, dict):
                raise TypeError(f"schema {schema_id} is not a record")
            return self.model.from_avro(body)
        except Exception as exc:
            raise AvroDecodeError(f"{type(exc).__name__}: {exc}") from exc

    def _dumps(self, s: Any) -> bytes:
        return self.encode(s)

    def _loads(self, s: bytes) -> Any:
        return self.decode(s)

