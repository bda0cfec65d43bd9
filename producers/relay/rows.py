"""What the relay reads from the outbox and how one row becomes one Kafka record.

A row that cannot become a valid record raises :class:`BadRowError` with a reason a person
can act on; the relay dead-letters it and goes on with the rows behind it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ValidationError

from producers.avro_json import AvroJsonError, compile_schema
from producers.events import UnknownEventTypeError, check_event_type, op_for
from producers.routing import topic_for
from producers.serde import Serde
from schemas.avsc import compose
from schemas.models import PAYLOAD_TYPES, AggregateType, FinancialEvent, Op
from schemas.serde import wire_header
from schemas.topics import FINANCIAL_EVENT, Topics, parse_message_key

_loads: Callable[[str], Any]
try:  # the same values as json.loads for what jsonb holds, in about half the CPU time
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a dependency; json still works
    _loads = json.loads


@dataclass(slots=True)
class OutboxRow:
    """One outbox row. Slotted, not frozen: the relay builds ~30,000 a second and a frozen
    dataclass's ``__init__`` (``object.__setattr__`` per field) costs several times more."""


    id: str
    aggregatetype: str
    aggregateid: str
    type: str
    payload: str | None
    timestamp: datetime
    tenant_id: str
    message_key: str
    sequence: int
    bucket: int
    #: the event as the writer encoded it (Confluent-framed Avro), or None: JSON row
    payload_avro: bytes | None = None

    COLUMNS: ClassVar[str] = (
        "id::text, aggregatetype, aggregateid, type, "
        "CASE WHEN payload_avro IS NULL THEN payload::text END, "
        '"timestamp", tenant_id, message_key, sequence, bucket, payload_avro')
    """For an Avro row the jsonb payload is not read at all: jsonb -> text was most of
    PostgreSQL's CPU per row."""
    LEGACY_COLUMNS: ClassVar[str] = (
        'id::text, aggregatetype, aggregateid, type, payload::text, "timestamp", '
        "tenant_id, message_key, sequence, bucket")
    """An outbox created before ``payload_avro`` existed (a relay upgraded before the
    schema): JSON rows only."""


@dataclass(slots=True)
class Encoded:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


class BadRowError(ValueError):
    """The row cannot be published as it is; ``error_class`` names the kind of fault."""

    def __init__(self, error_class: str, reason: str) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Route:
    """What a (aggregatetype, type) pair implies, worked out once instead of per row."""

    agg: AggregateType
    op: str
    fields: frozenset[str]
    id_field: str
    record: str
    topic: str
    type_header: bytes


_RECORD = {AggregateType.CUSTOMER: "Customer", AggregateType.INVOICE: "Invoice",
           AggregateType.PAYMENT: "Payment", AggregateType.CREDIT_NOTE: "CreditNote",
           AggregateType.TAX_RATE: "TaxRate"}
"""The Avro record of each aggregate type's payload (a branch of the envelope's union)."""


def _payload_union(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    field = next(f for f in envelope["fields"] if f["name"] == "payload")
    return [b for b in field["type"] if isinstance(b, dict) and b.get("type") == "record"]


def _short(exc: ValidationError, prefix: str = "") -> str:
    parts = [
        f"{'.'.join(str(p) for p in (prefix, *err['loc']) if p) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False)[:5]
    ]
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class RowEncoder:
    """Validates a row and serializes it as Confluent-framed Avro for its topic.

    ``validation="contract"``: the pydantic models (the Avro schema plus every invariant
    of the contract: currencies, discount signs, allocation sums...), then
    ``AvroSerializer``. ``validation="schema"`` (the default, ~10x faster): the envelope
    invariants the relay relies on (ids, types, routing, payload record = aggregate type)
    plus the full Avro schema, checked by a schema-compiled encoder whose bytes equal the
    serializer's; the schema id comes from the same registry registration. Rows written
    by the outbox library were model-validated when written; pick "contract" when other
    writers (triggers, foreign code) feed the outbox and you want their invariants
    enforced at the relay.
    """

    def __init__(self, serde: Serde, topics: Topics,
                 validation: Literal["schema", "contract"] = "schema") -> None:
        self.serde = serde
        self.topics = topics
        self.validation = validation
        self._compiled = compile_schema(compose(FINANCIAL_EVENT))
        # the payload record of each aggregate type and its fields, from the Avro schema
        # (not the pydantic models: the default path never builds a model)
        branches = {branch["name"]: frozenset(f["name"] for f in branch["fields"])
                    for branch in _payload_union(compose(FINANCIAL_EVENT))}
        self._records = {agg: _RECORD.get(agg) or PAYLOAD_TYPES[agg].__name__
                         for agg in AggregateType}
        self._fields = {agg: branches[name] for agg, name in self._records.items()}
        self._routes: dict[tuple[str, str], _Route] = {}
        self._prefixes: dict[str, frozenset[bytes]] = {}

    def _route(self, row: OutboxRow) -> _Route:
        route = self._routes.get((row.aggregatetype, row.type))
        if route is None:
            try:
                agg = check_event_type(row.aggregatetype, row.type)
            except UnknownEventTypeError as exc:
                raise BadRowError("UnknownEventType", str(exc)) from None
            route = self._routes[(row.aggregatetype, row.type)] = _Route(
                agg=agg, op=op_for(row.type).value, fields=self._fields[agg],
                id_field="code" if agg is AggregateType.TAX_RATE else "id",
                record=self._records[agg], topic=topic_for(agg, self.topics),
                type_header=row.type.encode())
        return route

    def event(self, row: OutboxRow) -> tuple[AggregateType, FinancialEvent]:
        try:
            agg = check_event_type(row.aggregatetype, row.type)
        except UnknownEventTypeError as exc:
            raise BadRowError("UnknownEventType", str(exc)) from None
        if row.payload is None:
            raise BadRowError("SchemaMismatch", "payload is NULL; expected a FinancialEvent")
        data: Any = json.loads(row.payload)
        if not isinstance(data, dict):
            raise BadRowError("SchemaMismatch", "payload is not a JSON object")
        body = data.get("payload")
        if isinstance(body, dict):
            # validate against the one record this aggregate type carries: a precise error
            # ("payload.total: ...") instead of one per union branch, and faster
            record = PAYLOAD_TYPES[agg]
            try:
                data = {**data, "payload": record.model_validate(body)}
            except ValidationError as exc:
                raise BadRowError("SchemaMismatch", f"payload does not match "
                                  f"{record.__name__}: {_short(exc, 'payload')}") from None
        try:
            event = FinancialEvent.model_validate(data)
        except ValidationError as exc:
            raise BadRowError("SchemaMismatch",
                              f"payload does not match FinancialEvent: {_short(exc)}") from None
        mismatches = [
            f"{name} {ours!r} != column {theirs!r}"
            for name, ours, theirs in (
                ("event_id", event.event_id, row.id),
                ("event_type", event.event_type, row.type),
                ("aggregate_type", event.aggregate_type.value, row.aggregatetype),
                ("aggregate_id", event.aggregate_id, row.aggregateid),
                ("tenant_id", event.tenant_id, row.tenant_id),
            )
            if ours != theirs
        ]
        if mismatches:
            raise BadRowError("EnvelopeMismatch", "payload disagrees with the outbox row: "
                              + "; ".join(mismatches))
        return agg, event

    def key(self, row: OutboxRow) -> bytes:
        key, tenant = row.message_key, row.tenant_id
        # the common case in one comparison; anything else gets parse_message_key's verdict
        if not (key.startswith(tenant) and key[len(tenant):len(tenant) + 1] == ":"
                and len(key) > len(tenant) + 1 and ":" not in tenant and tenant):
            try:
                tenant, _ = parse_message_key(key)
            except ValueError as exc:
                raise BadRowError("BadKey", str(exc)) from None
            if tenant != row.tenant_id:
                raise BadRowError("BadKey", f"message_key {key!r} is not of tenant "
                                  f"{row.tenant_id!r}")
        return key.encode()

    def _framing(self, topic: str) -> bytes:
        """Magic byte + schema id of ``topic``'s subject, registered through the serde."""
        return self.serde.framing(topic)

    def fast_value(self, row: OutboxRow) -> tuple[AggregateType, bytes]:
        """Envelope checks + schema-compiled Avro (see the class docstring)."""
        return self._fast(row, self._route(row))

    def _fast(self, row: OutboxRow, route: _Route) -> tuple[AggregateType, bytes]:
        if row.payload is None:
            raise BadRowError("SchemaMismatch", "payload is NULL; expected a FinancialEvent")
        try:
            data: Any = _loads(row.payload)
        except ValueError as exc:  # jsonb is always JSON, but a text column may not be
            raise BadRowError("SchemaMismatch", f"payload is not JSON: {exc}") from None
        if type(data) is not dict:
            raise BadRowError("SchemaMismatch", "payload is not a JSON object")
        get = data.get
        if (get("event_id") != row.id or get("event_type") != row.type
                or get("aggregate_type") != row.aggregatetype
                or get("aggregate_id") != row.aggregateid or get("tenant_id") != row.tenant_id):
            mismatches = [
                f"{name} {get(name)!r} != column {theirs!r}"
                for name, theirs in (("event_id", row.id), ("event_type", row.type),
                                     ("aggregate_type", row.aggregatetype),
                                     ("aggregate_id", row.aggregateid),
                                     ("tenant_id", row.tenant_id))
                if get(name) != theirs
            ]
            raise BadRowError("EnvelopeMismatch", "payload disagrees with the outbox row: "
                              + "; ".join(mismatches))
        if get("op") != route.op:
            raise BadRowError("EnvelopeMismatch", f"op {get('op')!r} != {route.op!r} "
                              f"implied by {row.type}")
        body = get("payload")
        if body is None:
            if route.op != Op.DELETE.value:
                raise BadRowError("SchemaMismatch", f"{route.op} event needs a payload")
        else:
            if type(body) is not dict or body.keys() != route.fields:
                raise BadRowError("SchemaMismatch", f"payload is not a {route.record} "
                                  "(fields differ)")
            body_id = body.get(route.id_field)
            if body_id != row.aggregateid:
                raise BadRowError("EnvelopeMismatch", f"payload id {body_id!r} != "
                                  f"aggregate_id {row.aggregateid!r}")
        try:
            return route.agg, self._compiled(data)
        except AvroJsonError as exc:
            raise BadRowError("SchemaMismatch",
                              f"payload does not match the FinancialEvent schema: {exc}"
                              ) from None

    def _allowed(self, topic: str, *, refresh: bool = False) -> frozenset[bytes]:
        """The framing prefixes (magic byte + id) of every schema version registered
        under ``topic``'s subject: a writer on an older, compatible version is fine."""
        found = self._prefixes.get(topic)
        if found is None or refresh:
            own = self._framing(topic)  # registers the subject if it is new
            subject = f"{topic}-value"
            registry = self.serde.registry
            ids = {registry.get_version(subject, v).schema_id
                   for v in registry.get_versions(subject)}
            found = frozenset({own} | {wire_header(i) for i in ids if i is not None})
            self._prefixes[topic] = found
        return found

    def framed(self, row: OutboxRow) -> Encoded:
        """An Avro row: the writer validated and encoded the event, so only the framing
        is checked (magic byte, a schema id of the subject published to) and the bytes
        go out as they are. No JSON, no model, no Avro work per row."""
        route = self._route(row)
        value = row.payload_avro
        assert value is not None
        topic = route.topic
        prefixes = self._prefixes.get(topic) or self._allowed(topic)
        if value[:5] not in prefixes:
            self._check_framing(topic, value)
        return Encoded(topic, self.key(row), value, [("event_id", row.id.encode()),
                                                     ("event_type", route.type_header)])

    def _check_framing(self, topic: str, value: bytes) -> None:
        """Refuse bad framing; an id not seen yet is looked up again (a writer may have
        registered a newer version after this relay started). Bad rows are rare, so the
        registry round trip per unknown id costs nothing in steady state."""
        if len(value) < 6 or value[0] != 0:
            raise BadRowError("BadFraming", "payload_avro is not Confluent-framed Avro "
                              f"(magic byte {value[:1].hex() or 'missing'}, "
                              f"{len(value)} bytes)")
        if value[:5] in self._allowed(topic, refresh=True):
            return
        raise BadRowError("UnknownSchemaId",
                          f"payload_avro schema id {int.from_bytes(value[1:5], 'big')} is "
                          f"not registered under subject {topic}-value")

    def encode(self, row: OutboxRow) -> Encoded:
        if row.payload_avro is not None:
            return self.framed(row)
        if self.validation == "schema":
            route = self._route(row)
            _, body = self._fast(row, route)
            key = self.key(row)
            topic = route.topic
            value = self._framing(topic) + body
            type_header = route.type_header
        else:
            agg, event = self.event(row)
            key = self.key(row)
            topic = topic_for(agg, self.topics)
            try:
                value = self.serde.event(topic, event)
            except (TypeError, ValueError) as exc:  # fastavro refuses what models accepted
                raise BadRowError("AvroSerialization", str(exc)) from None
            type_header = row.type.encode()
        return Encoded(topic, key, value, [("event_id", row.id.encode()),
                                           ("event_type", type_header)])
