"""The schema-compiled JSON -> Avro encoder writes exactly fastavro's bytes, and refuses
what the schema refuses, naming the field."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import fastavro
import psycopg
import pytest

from producers.avro_json import AvroJsonError, compile_schema
from producers.relay.rows import OutboxRow, RowEncoder
from producers.serde import Serde
from producers.simulator import SimulationConfig, simulate_day
from schemas import examples
from schemas.avsc import compose, parsed
from schemas.models import FinancialEvent, Op
from schemas.topics import FINANCIAL_EVENT, Topics

ENCODE = compile_schema(compose(FINANCIAL_EVENT))


def fastavro_bytes(event: FinancialEvent) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed(FINANCIAL_EVENT), event.to_avro())
    return out.getvalue()


def as_json(event: FinancialEvent) -> Any:
    return json.loads(event.model_dump_json())


SAMPLES = [
    examples.sample_invoice_event(),
    examples.sample_invoice_event(op=Op.DELETE),
    examples.sample_payment_event(amount=Decimal("1234567.89")),
    examples.sample_refund_event(),
    examples.sample_credit_note_event(),
    examples.sample_customer_event(),
    examples.sample_tax_rate_event(),
    examples.sample_invoice_event(invoice=examples.sample_invoice(
        amount_paid=Decimal("-0.0001"), notes="ünïcödé ✓ 李")),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.event_type)
def test_bytes_equal_fastavro(event: FinancialEvent) -> None:
    assert ENCODE(as_json(event)) == fastavro_bytes(event)


def test_decimal_spelling_does_not_matter_when_the_value_fits() -> None:
    event = examples.sample_invoice_event()
    total = event.payload.total.normalize()  # type: ignore[union-attr]
    data = as_json(event)
    data["payload"]["total"] = f"{total}000000"  # trailing zeros past the scale
    same = as_json(event)
    same["payload"]["total"] = str(total)
    assert ENCODE(data) == ENCODE(same) == fastavro_bytes(event)


@pytest.mark.parametrize("path, value, message", [
    (("payload", "total"), "lots", "payload.total: 'lots' is not a decimal"),
    (("payload", "total"), 1.5, "payload.total: a decimal must be a string"),
    (("payload", "total"), "1.00001", "more than 4 decimal places"),
    (("payload", "lines", 1, "kind"), "ROBOT", "payload.lines.1.kind: 'ROBOT' is not one of"),
    (("payload", "issue_date"), "14/03/2025", "payload.issue_date: expected an ISO-8601 date"),
    (("occurred_at",), "2025-03-14T10:00:00", "occurred_at: expected an ISO-8601 timestamp"),
    (("aggregate_version",), "3", "aggregate_version: expected an integer"),
    (("payload", "prices_include_tax"), "no", "expected true/false"),
])
def test_schema_violations_name_the_field(path: tuple[Any, ...], value: Any,
                                          message: str) -> None:
    data = as_json(examples.sample_invoice_event())
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(AvroJsonError, match=message.replace(".", r"\.").replace("(", r"\(")):
        ENCODE(data)


def test_missing_and_unknown_fields_are_refused() -> None:
    data = as_json(examples.sample_invoice_event())
    del data["payload"]["currency"]
    with pytest.raises(AvroJsonError, match="union"):  # no Invoice has these fields
        ENCODE(data)
    data = as_json(examples.sample_customer_event())
    data["surprise"] = 1
    with pytest.raises(AvroJsonError, match="surprise: unknown field"):
        ENCODE(data)
    data = as_json(examples.sample_customer_event())
    del data["event_type"]
    with pytest.raises(AvroJsonError, match="event_type: field required"):
        ENCODE(data)


@pytest.mark.integration
def test_fast_path_equals_the_serializer_for_a_simulated_day(
    crm_db: str, schema_registry_url: str
) -> None:
    simulate_day(crm_db, SimulationConfig(tenants=1, customers_per_tenant=8,
                                          jobs_per_tenant=30, seed=3))
    serde = Serde(schema_registry_url)
    topics = Topics(suffix="fast" + crm_db[-6:])
    fast, full = RowEncoder(serde, topics, "schema"), RowEncoder(serde, topics, "contract")
    with psycopg.connect(crm_db) as conn:
        rows = [OutboxRow(*r) for r in conn.execute(f"SELECT {OutboxRow.COLUMNS} FROM outbox")]
    assert len(rows) > 100
    for row in rows:
        a, b = fast.encode(row), full.encode(row)
        assert (a.topic, a.key, a.value) == (b.topic, b.key, b.value), row.type
