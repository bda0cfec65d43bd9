"""Ledger entries read straight with fastavro, for the sink's hot loop.

confluent-kafka 2.16's ``AvroDeserializer`` walks the whole schema for data-contract
rules on every call (``get_inline_tags``): about 1 ms of CPU per ledger entry here,
the largest single cost of a sink once its API calls overlap. This reader does what
that deserializer does for our records — Confluent framing, the writer schema fetched
from the registry by id (cached), today's schema as reader so older writers resolve,
``return_record_name=True``, then ``schemas``' ``from_avro`` — without the walk. It
has the deserializer's call signature, so :func:`sinks.core.decoding.ledger_entry_decoder`
still tells an unreachable registry (retry) from a bad record (dead letter).

By default the entry is built without re-running the models' validators
(:func:`schemas.models.unchecked.from_avro_unchecked`): the processor wrote it from a
validated model, and validating it again was about half of the decode.
``checked=True`` (``LEDGERSTREAM_SINK_CHECK_LEDGER_ENTRIES``) validates every entry,
for a ``ledger.entries`` topic that something other than our processor writes to.
"""

from __future__ import annotations

import io

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import SerializationContext

from schemas import serde
from schemas.models import LedgerEntry, from_avro
from schemas.models.unchecked import from_avro_unchecked

__all__ = ["LedgerEntryReader"]


class LedgerEntryReader:
    def __init__(self, client: SchemaRegistryClient, *, checked: bool = False) -> None:
        self.client = client
        self._build = from_avro if checked else from_avro_unchecked
        self._schemas = serde.WriterSchemas(client, LedgerEntry.avro_name)

    def __call__(self, data: bytes, ctx: SerializationContext | None = None) -> LedgerEntry:
        writer, same = self._schemas.resolve(serde.wire_schema_id(data))
        body = fastavro.schemaless_reader(io.BytesIO(data[serde.HEADER_SIZE:]), writer,
                                          None if same else self._schemas.reader,
                                          return_record_name=True)
        if not isinstance(body, dict):
            raise TypeError("a ledger entry must be an Avro record")
        return self._build(LedgerEntry, body)
