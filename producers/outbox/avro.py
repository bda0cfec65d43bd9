"""Opt-in: the outbox row carries its event already encoded as Confluent-framed Avro.

Why: turning the ``payload`` JSON into Avro costs the relay ~35 µs of CPU per event (JSON
parse, schema checks, Avro write), which alone caps a 2-core machine well below 30,000
events/s. The writer already holds the validated pydantic model and is about to dump it
for the jsonb column; encoding it there adds a small fraction to a business transaction
that costs milliseconds anyway, and the relay is left with a framing check and a produce.
Validation also moves to where the bad data is born: an event that does not fit the
contract fails the CRM's own transaction instead of becoming a dead letter later.

The schema ids are resolved once, when the encoder is built (one registry registration
per destination subject, the same ``Serde.framing`` the relay uses), so writing needs no
registry round trip. ``payload`` (jsonb) is still written, so the Debezium configuration,
trigger-written rows and JSON readers are unaffected.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import psycopg
from pydantic import ValidationError

from producers.avro_json import AvroJsonError, compile_schema
from producers.routing import topic_for
from producers.serde import Serde
from schemas.avsc import compose
from schemas.models import AggregateType, FinancialEvent
from schemas.topics import FINANCIAL_EVENT, Topics


class InvalidEventError(ValueError):
    """The event does not satisfy the contract; raised inside the business transaction,
    which then rolls back (nothing of the change is stored)."""


class AvroEncoder:
    """Encodes envelopes for the outbox's ``payload_avro`` column.

    ``topics`` must name the topics the relay publishes to (same prefix/suffix): a
    registry may give one schema a different id under each subject (Apicurio does), and
    the relay refuses ids not registered under the subject it publishes to.

    ``revalidate`` (default on) validates the event's JSON form against the pydantic
    contract again: a model built with ``model_copy(update=...)`` or ``model_construct``
    skipped validation, and the relay will not look at the body again. The Avro write
    itself checks every value against the schema (types, enum symbols, decimal scale and
    precision). ``encoded`` and ``seconds`` count the work so benchmarks can report its
    cost per event.
    """

    def __init__(self, serde: Serde | str, topics: Topics | None = None, *,
                 revalidate: bool = True) -> None:
        self.serde = serde if isinstance(serde, Serde) else Serde(serde)
        self.topics = topics or Topics()
        self.revalidate = revalidate
        self._compiled = compile_schema(compose(FINANCIAL_EVENT))
        self._framing = {agg: self.serde.framing(topic_for(agg, self.topics))
                         for agg in AggregateType}
        self.encoded = 0
        self.seconds = 0.0

    def encode(self, event: FinancialEvent, data: dict[str, Any] | None = None) -> bytes:
        """Magic byte + schema id + Avro body of ``event``; ``data`` is its
        ``model_dump(mode="json")`` when the caller already has it (the jsonb column)."""
        started = time.perf_counter()
        try:
            if data is None:
                data = event.model_dump(mode="json")
            if self.revalidate:
                try:
                    FinancialEvent.model_validate(data)
                except ValidationError as exc:
                    raise InvalidEventError(
                        f"event {event.event_id} does not match FinancialEvent: "
                        f"{exc.errors(include_url=False)[:3]}") from None
            try:
                body = self._compiled(data)
            except AvroJsonError as exc:
                raise InvalidEventError(f"event {event.event_id} does not fit the Avro "
                                        f"schema: {exc}") from None
            return self._framing[event.aggregate_type] + body
        finally:
            self.encoded += 1
            self.seconds += time.perf_counter() - started


_ATTACHED: weakref.WeakKeyDictionary[psycopg.Connection[Any], AvroEncoder] = (
    weakref.WeakKeyDictionary())


def use_avro_encoder(conn: psycopg.Connection[Any], encoder: AvroEncoder | None) -> None:
    """Every outbox row written through ``conn`` carries ``payload_avro`` (None: stop).

    Per connection rather than an argument of every library function, so a CRM opts in
    once where it opens its connection and grouped changes need no extra plumbing."""
    if encoder is None:
        _ATTACHED.pop(conn, None)
    else:
        _ATTACHED[conn] = encoder


def avro_encoder_of(conn: psycopg.Connection[Any]) -> AvroEncoder | None:
    return _ATTACHED.get(conn)
