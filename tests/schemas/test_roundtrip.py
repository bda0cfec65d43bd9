"""fastavro round trips: model -> Avro binary -> model is exact, Decimals included."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings

from schemas import avsc
from schemas import examples as ex
from schemas.models import (
    AvroRecord,
    CustomerBalance,
    DeadLetter,
    FinancialEvent,
    LedgerEntry,
    Op,
    from_avro,
    to_avro,
)
from tests.schemas import strategies as s

SAMPLES: list[AvroRecord] = [
    ex.sample_invoice_event(),
    ex.sample_invoice_event(op=Op.DELETE),
    ex.sample_payment_event(),
    ex.sample_refund_event(),
    ex.sample_credit_note_event(),
    ex.sample_customer_event(),
    ex.sample_tax_rate_event(),
    ex.sample_ledger_entry(),
    ex.sample_ledger_entry(ex.sample_payment_event()),
    ex.sample_customer_balance(),
    ex.sample_dead_letter(),
    ex.sample_customer(),
    ex.sample_tax_rate(),
]


def _write(model: AvroRecord) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, avsc.parsed(model.avro_name), to_avro(model))
    return buf.getvalue()


def _read(cls: type[AvroRecord], data: bytes, *, return_record_name: bool) -> Any:
    schema = avsc.parsed(cls.avro_name)
    raw = fastavro.schemaless_reader(
        io.BytesIO(data), schema, schema, return_record_name=return_record_name
    )
    assert isinstance(raw, dict)
    return from_avro(cls, raw)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("return_record_name", [True, False])
def test_sample_round_trip(sample: AvroRecord, return_record_name: bool) -> None:
    back = _read(type(sample), _write(sample), return_record_name=return_record_name)
    assert back == sample
    assert back.to_avro() == sample.to_avro()


def test_decimal_round_trip_is_exact() -> None:
    tricky = [
        "0.0001",
        "-0.0001",
        "99999999999999.9999",
        "-99999999999999.9999",
        "0.1",
        "1.0050",
        "0",
        "-0",
    ]
    for value in tricky:
        ev = ex.sample_customer_balance(outstanding=Decimal(value))
        back = _read(CustomerBalance, _write(ev), return_record_name=True)
        assert back.outstanding == Decimal(value)
        assert back.outstanding.as_tuple().exponent == -4
        assert str(back.outstanding) == str(ev.outstanding)


def test_payload_union_uses_tuple_notation() -> None:
    body = ex.sample_invoice_event().to_avro()
    assert body["payload"][0] == "io.ledgerstream.crm.Invoice"
    assert isinstance(ex.sample_ledger_entry().to_avro()["customer"], dict)


def test_from_avro_ignores_unknown_writer_fields() -> None:
    body = ex.sample_dead_letter().to_avro()
    assert from_avro(DeadLetter, {**body, "added_later": 1}) == ex.sample_dead_letter()


def test_unknown_union_record_name_is_an_error() -> None:
    body = ex.sample_invoice_event().to_avro()
    body["payload"] = ("io.ledgerstream.crm.Nope", body["payload"][1])
    with pytest.raises(ValueError, match="not allowed here"):
        from_avro(FinancialEvent, body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s.financial_events())
def test_property_financial_event_round_trip(event: FinancialEvent) -> None:
    data = _write(event)
    assert _read(FinancialEvent, data, return_record_name=True) == event
    assert _read(FinancialEvent, data, return_record_name=False) == event


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s.financial_events(), s.customers)
def test_property_ledger_entry_round_trip(event: FinancialEvent, customer: Any) -> None:
    entry = ex.sample_ledger_entry(event).model_copy(update={"customer": customer})
    entry = LedgerEntry.model_validate(entry.model_dump())
    assert _read(LedgerEntry, _write(entry), return_record_name=True) == entry
