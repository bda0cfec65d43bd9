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

from typing import Any, Generic, TypeVar

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext
from faust.serializers.codecs import Codec

from schemas import serde
from schemas.models import AvroRecord

R = TypeVar("R", bound=AvroRecord)


class AvroDecodeError(ValueError):
    """The bytes are not a Confluent-framed Avro record of the expected type."""


class ConfluentAvroCodec(Codec, Generic[R]):
    """Avro values of one ``topic`` as instances of ``model``."""

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
        self._ctx = SerializationContext(topic, MessageField.VALUE)
        self._serializer = serde.avro_serializer(model, client, auto_register=auto_register)
        self._deserializer = serde.avro_deserializer(model, client)

    def encode(self, value: R) -> bytes:
        data = self._serializer(value, self._ctx)
        assert data is not None
        return data

    def decode(self, data: bytes | None) -> R:
        """Decode or raise :class:`AvroDecodeError` naming what was wrong."""
        if not data:
            raise AvroDecodeError("empty value")
        try:
            value = self._deserializer(data, self._ctx)
        except Exception as exc:
            raise AvroDecodeError(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(value, self.model):
            raise AvroDecodeError(f"decoded {type(value).__name__}, not {self.model.__name__}")
        return value

    def _dumps(self, s: Any) -> bytes:
        return self.encode(s)

    def _loads(self, s: bytes) -> Any:
        return self.decode(s)
