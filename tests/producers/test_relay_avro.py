"""Outbox rows encoded by the writer (``payload_avro``) through the real relay, registry,
PostgreSQL and Kafka: same bytes as the JSON path, order kept across both kinds, bad
framing dead-lettered, invalid events refused in the business transaction."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from producers import outbox
from producers.relay import RelaySettings, run_relay
from producers.relay.rows import OutboxRow, RowEncoder
from producers.serde import Serde
from producers.simulator import SimulationConfig, simulate_day
from schemas import examples
from schemas.models import AggregateType, DeadLetter, FinancialEvent
from schemas.topics import Topics
from tests.producers.conftest import Record, TopicReader, outbox_count

pytestmark = pytest.mark.integration


@pytest.fixture
def encoder(schema_registry_url: str, topics: Topics) -> outbox.AvroEncoder:
    return outbox.AvroEncoder(Serde(schema_registry_url), topics)


def outbox_rows(dsn: str) -> list[OutboxRow]:
    """Every row with BOTH its JSON payload and its Avro bytes (the relay reads one)."""
    with psycopg.connect(dsn) as conn:
        return [OutboxRow(*r) for r in conn.execute(
            f"SELECT {OutboxRow.LEGACY_COLUMNS}, payload_avro FROM outbox ORDER BY sequence")]


def read_all(reader: TopicReader, topics: Topics, expect: int) -> list[Record]:
    out: list[Record] = []
    for topic in (topics.crm_customers, topics.crm_tax_rates):
        out += reader.read(topic, quiet_s=1.0)
    out += reader.read(topics.crm_financial_events, expect=expect - len(out))
    return out


def test_avro_rows_are_published_byte_identical_to_the_json_path(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str,
    encoder: outbox.AvroEncoder, schema_registry_url: str
) -> None:
    sim = simulate_day(crm_db, SimulationConfig(tenants=2, customers_per_tenant=6,
                                                jobs_per_tenant=20, seed=3),
                       avro_encoder=encoder)
    rows = outbox_rows(crm_db)
    assert len(rows) == len(sim.events) == encoder.encoded
    json_path = RowEncoder(Serde(schema_registry_url), topics)
    avro_of: dict[str, bytes] = {}
    for row in rows:
        assert row.payload_avro is not None
        # what the relay would have made of the JSON payload, byte for byte
        assert json_path.encode(replace(row, payload_avro=None)).value == row.payload_avro
        avro_of[row.id] = row.payload_avro

    run_relay(relay_settings)

    records = read_all(reader, topics, len(sim.events))
    assert outbox_count(crm_db) == 0
    assert len(records) == len(sim.events)
    by_id = {r.event.event_id: r for r in records}
    for event in sim.events:
        rec = by_id[event.event_id]
        assert rec.raw == avro_of[event.event_id]
        assert rec.event == event
        assert rec.headers == {"event_id": event.event_id.encode(),
                               "event_type": event.event_type.encode()}


def test_a_mixed_outbox_keeps_per_key_order(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str,
    encoder: outbox.AvroEncoder
) -> None:
    written: list[FinancialEvent] = []
    kinds: list[bool] = []
    with psycopg.connect(crm_db, autocommit=True) as conn:
        outbox.ensure_tenant(conn, "t1", "Shop")
        outbox.save_customer(conn, "t1", examples.sample_customer())
        invoice = examples.sample_invoice("inv1", "c1")
        for n in range(24):
            avro = n % 3 != 1  # runs of Avro rows broken by JSON rows, same key
            outbox.use_avro_encoder(conn, encoder if avro else None)
            written.append(outbox.save_invoice(
                conn, "t1", invoice.model_copy(update={"notes": f"edit {n}"})))
            kinds.append(avro)
    rows = {r.id: r for r in outbox_rows(crm_db)}
    assert [rows[e.event_id].payload_avro is not None for e in written] == kinds

    run_relay(relay_settings.model_copy(update={"batch_size": 5}))

    published = reader.read(topics.crm_financial_events, expect=len(written))
    assert [r.event.event_id for r in published] == [e.event_id for e in written]
    assert [r.event.aggregate_version for r in published] == list(range(1, 25))
    assert {r.key for r in published} == {"t1:c1"}
    assert outbox_count(crm_db) == 0


def _write(conn: psycopg.Connection[Any], encoder: outbox.AvroEncoder,
           event: FinancialEvent) -> tuple[str, bytes]:
    outbox.insert_outbox_row(conn, event, "t1:c1", avro_encoder=encoder)
    row = conn.execute("SELECT payload_avro FROM outbox WHERE id = %s",
                       (event.event_id,)).fetchone()
    assert row is not None
    return event.event_id, bytes(row[0])


def test_bad_framing_or_unknown_schema_id_is_dead_lettered_and_blocks_nothing(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str,
    encoder: outbox.AvroEncoder
) -> None:
    events = [examples.sample_invoice_event(event_id=str(uuid.uuid4()), version=v)
              for v in range(1, 6)]
    with psycopg.connect(crm_db, autocommit=True) as conn:
        written = [_write(conn, encoder, e) for e in events]
        good1, bad_magic, unknown_id, truncated, good2 = written
        bad = {bad_magic[0]: b"\x01" + bad_magic[1][1:],
               unknown_id[0]: b"\x00" + (2**31 - 7).to_bytes(4, "big") + unknown_id[1][5:],
               truncated[0]: b"\x00\x00"}
        for event_id, value in bad.items():
            conn.execute("UPDATE outbox SET payload_avro = %s WHERE id = %s", (value, event_id))

    run_relay(relay_settings)

    published = reader.read(topics.crm_financial_events, expect=2)
    assert [r.event.event_id for r in published] == [good1[0], good2[0]]
    assert [r.raw for r in published] == [good1[1], good2[1]]
    assert outbox_count(crm_db) == 0
    with psycopg.connect(crm_db) as conn:
        dead = {str(i): (cls, reason, bytes(value)) for i, cls, reason, value in conn.execute(
            "SELECT id, error_class, reason, payload_avro FROM outbox_dead_letter")}
    assert set(dead) == set(bad)
    assert dead[bad_magic[0]][0] == "BadFraming" and "magic byte 01" in dead[bad_magic[0]][1]
    assert dead[truncated[0]][0] == "BadFraming"
    assert dead[unknown_id[0]][0] == "UnknownSchemaId"
    assert f"schema id {2**31 - 7}" in dead[unknown_id[0]][1]
    assert f"{topics.crm_financial_events}-value" in dead[unknown_id[0]][1]
    for event_id, value in bad.items():
        assert dead[event_id][2] == value  # the bytes are kept for a replay
    letters = reader.read(topics.crm_dlq, expect=3)
    assert len(letters) == 3
    for rec in letters:
        letter = rec.value
        assert isinstance(letter, DeadLetter)
        assert letter.event_id is not None
        assert (letter.error_class, letter.reason) == dead[letter.event_id][:2]
        assert letter.value == bad[letter.event_id]


def test_the_writer_refuses_an_invalid_event_inside_the_business_transaction(
    crm_db: str, encoder: outbox.AvroEncoder
) -> None:
    event = examples.sample_invoice_event()
    invoice = event.payload
    assert invoice is not None
    # model_copy skips validation: an invoice in a currency that does not exist
    broken = event.model_copy(update={
        "payload": invoice.model_copy(update={"currency": "dollars"})})
    with psycopg.connect(crm_db, autocommit=True) as conn:
        outbox.ensure_tenant(conn, "t1", "Shop")
        with (pytest.raises(outbox.InvalidEventError, match="FinancialEvent"),
              conn.transaction()):
            outbox.save_customer(conn, "t1", examples.sample_customer())
            outbox.insert_outbox_row(conn, broken, "t1:c1", avro_encoder=encoder)
        # the whole business transaction rolled back: no customer, no outbox row
        row = conn.execute("SELECT (SELECT count(*) FROM customers), "
                           "(SELECT count(*) FROM outbox)").fetchone()
        assert row == (0, 0)
        # the same event, valid, goes through
        outbox.insert_outbox_row(conn, event, "t1:c1", avro_encoder=encoder)
    assert outbox_count(crm_db) == 1


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_the_avro_write_refuses_what_the_schema_cannot_hold(
    crm_db: str, schema_registry_url: str, topics: Topics
) -> None:
    """Without the pydantic re-validation, the Avro write still checks the schema."""
    fast = outbox.AvroEncoder(Serde(schema_registry_url), topics, revalidate=False)
    event = examples.sample_invoice_event()
    broken = event.model_copy(update={"aggregate_version": "two"})
    with (psycopg.connect(crm_db, autocommit=True) as conn,
          pytest.raises(outbox.InvalidEventError, match="aggregate_version")):
        outbox.insert_outbox_row(conn, broken, "t1:c1", avro_encoder=fast)
    assert outbox_count(crm_db) == 0


def test_relay_works_on_an_outbox_without_the_avro_column(
    relay_settings: RelaySettings, topics: Topics, reader: TopicReader, crm_db: str
) -> None:
    """A relay upgraded before the schema migration: JSON rows, as before."""
    with psycopg.connect(crm_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE outbox DROP COLUMN payload_avro")
        conn.execute("ALTER TABLE outbox_dead_letter DROP COLUMN payload_avro")
    sim = simulate_day(crm_db, SimulationConfig(tenants=1, customers_per_tenant=3,
                                                jobs_per_tenant=5, seed=9))
    with psycopg.connect(crm_db, autocommit=True) as conn:  # and one bad row
        conn.execute("UPDATE outbox SET type = 'invoice.teleported' WHERE id = %s",
                     (next(e.event_id for e in sim.events
                           if e.aggregate_type is AggregateType.INVOICE),))
    run_relay(relay_settings)
    records = read_all(reader, topics, len(sim.events) - 1)
    assert len(records) == len(sim.events) - 1
    assert outbox_count(crm_db) == 0
    assert outbox_count(crm_db, "outbox_dead_letter") == 1
