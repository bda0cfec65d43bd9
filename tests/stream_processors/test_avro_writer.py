"""The compiled output encoder writes exactly fastavro's bytes (it replaced fastavro on
the processor's write path for speed, so any difference would be a contract break)."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings

from schemas import avsc
from schemas import examples as ex
from schemas.models import AvroRecord, FinancialEvent, LedgerEntry, Op, to_avro
from stream_processors.avro_writer import encode
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


def fastavro_bytes(model: AvroRecord) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, avsc.parsed(model.avro_name), to_avro(model))
    return buf.getvalue()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda m: type(m).__name__)
def test_samples_are_written_as_fastavro_writes_them(sample: AvroRecord) -> None:
    assert encode(sample) == fastavro_bytes(sample)


@pytest.mark.parametrize("amount", [
    "0", "-0", "0.0001", "-0.0001", "1.5", "-1.5", "127", "128", "-128", "-129",
    "99999999999999.9999", "-99999999999999.9999", "255.0000", "32768",
])
def test_decimals_match_fastavro_at_every_byte_length(amount: str) -> None:
    balance = ex.sample_customer_balance(outstanding=Decimal(amount))
    assert encode(balance) == fastavro_bytes(balance)


def test_a_decimal_the_schema_cannot_hold_is_refused() -> None:
    balance = ex.sample_customer_balance()
    too_fine = balance.model_construct(**{**balance.__dict__, "paid": Decimal("0.00001")})
    with pytest.raises(ValueError, match="decimal places"):
        encode(too_fine)
    too_big = balance.model_construct(**{**balance.__dict__, "paid": Decimal("1E+14")})
    with pytest.raises(ValueError, match="does not fit"):
        encode(too_big)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s.financial_events())
def test_property_financial_events_match_fastavro(event: FinancialEvent) -> None:
    assert encode(event) == fastavro_bytes(event)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s.financial_events(), s.customers)
def test_property_ledger_entries_match_fastavro(event: FinancialEvent, customer: Any) -> None:
    entry = ex.sample_ledger_entry(event).model_copy(update={"customer": customer})
    entry = LedgerEntry.model_validate(entry.model_dump())
    assert encode(entry) == fastavro_bytes(entry)
