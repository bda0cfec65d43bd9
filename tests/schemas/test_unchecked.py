"""``from_avro_unchecked`` builds exactly what ``from_avro`` builds from the same read,
for every record kind, and skips only the models' own rules (which is its point)."""

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
    Customer,
    CustomerBalance,
    DeadLetter,
    FinancialEvent,
    LedgerEntry,
    Op,
    from_avro,
    to_avro,
)
from schemas.models.unchecked import from_avro_unchecked
from tests.schemas import strategies as s
from tests.schemas.test_roundtrip import SAMPLES as ROUND_TRIP_SAMPLES

#: One of each record kind (the round-trip samples), plus a ledger entry per event kind.
SAMPLES: list[AvroRecord] = [*ROUND_TRIP_SAMPLES, *(
    ex.sample_ledger_entry(event) for event in (
        ex.sample_refund_event(), ex.sample_credit_note_event(), ex.sample_customer_event(),
        ex.sample_tax_rate_event()))]


def _read(model: AvroRecord) -> Any:
    """A fresh fastavro read of ``model`` (the builder takes the dict over)."""
    schema = avsc.parsed(model.avro_name)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, to_avro(model))
    return fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), schema, None,
                                      return_record_name=True)


def _same(a: AvroRecord, b: AvroRecord) -> None:
    assert a == b
    assert type(a) is type(b)
    assert a.to_avro() == b.to_avro()
    assert a.model_dump() == b.model_dump()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda m: type(m).__name__)
def test_builds_what_from_avro_builds(sample: AvroRecord) -> None:
    cls = type(sample)
    unchecked = from_avro_unchecked(cls, _read(sample))
    _same(unchecked, from_avro(cls, _read(sample)))
    _same(unchecked, sample)


def test_nested_values_are_models_enums_and_tuples_not_dicts() -> None:
    entry = from_avro_unchecked(LedgerEntry, _read(ex.sample_ledger_entry()))
    assert isinstance(entry.event, FinancialEvent)
    assert isinstance(entry.customer, Customer)
    assert type(entry.event.op) is Op
    assert isinstance(entry.event.payload.lines, tuple)  # type: ignore[union-attr]
    assert isinstance(entry.customer_balance, CustomerBalance)
    assert entry.customer_balance.outstanding.as_tuple().exponent == -4


def test_fields_missing_from_the_dict_take_their_defaults() -> None:
    body = ex.sample_dead_letter().to_avro()
    for optional in ("partition", "offset", "key", "value", "event_id", "tenant_id"):
        body.pop(optional, None)
    body["added_later"] = 1  # a newer writer's field: ignored, as from_avro ignores it
    _same(from_avro_unchecked(DeadLetter, dict(body)), from_avro(DeadLetter, dict(body)))


def test_unknown_union_record_name_is_an_error() -> None:
    body = _read(ex.sample_invoice_event())
    body["payload"] = ("io.ledgerstream.crm.Nope", body["payload"][1])
    with pytest.raises(ValueError, match="not allowed here"):
        from_avro_unchecked(FinancialEvent, body)


def test_a_multi_record_union_needs_the_record_name() -> None:
    body = _read(ex.sample_invoice_event())
    body["payload"] = body["payload"][1]  # what return_record_name=False would give
    with pytest.raises(ValueError, match="return_record_name=True"):
        from_avro_unchecked(FinancialEvent, body)


def test_the_models_own_rules_are_not_run_again() -> None:
    """The trade: a value the model would refuse passes through; ``from_avro`` (the
    sink's ``check_ledger_entries``) still refuses it."""
    body = _read(ex.sample_customer_balance())
    body["currency"] = "dollars"
    body["outstanding"] = Decimal("1.00001")
    assert from_avro_unchecked(CustomerBalance, dict(body)).currency == "dollars"
    with pytest.raises(ValueError, match="ISO 4217"):
        from_avro(CustomerBalance, dict(body))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s.financial_events(), s.customers)
def test_property_ledger_entries(event: FinancialEvent, customer: Any) -> None:
    entry = ex.sample_ledger_entry(event).model_copy(update={"customer": customer})
    entry = LedgerEntry.model_validate(entry.model_dump())
    _same(from_avro_unchecked(LedgerEntry, _read(entry)), entry)
