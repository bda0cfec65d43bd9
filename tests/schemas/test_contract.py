"""The .avsc files and the pydantic models agree, and the comparison can fail."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, ClassVar

import fastavro
import pytest

from schemas import avsc
from schemas.contract import compare
from schemas.models import RECORDS, AvroDecimal, AvroRecord, InvoiceStatus
from schemas.models._types import Amount


@pytest.mark.parametrize("model", RECORDS, ids=lambda m: m.__name__)
def test_model_matches_its_avro_record(model: type[AvroRecord]) -> None:
    assert compare(model) == []


def test_every_avro_record_has_a_model() -> None:
    records = {name for name, node in avsc.definitions().items() if node["type"] == "record"}
    assert records == {m.avro_name for m in RECORDS}


@pytest.mark.parametrize("path", sorted(avsc.AVRO_DIR.rglob("*.avsc")), ids=lambda p: p.name)
def test_every_file_is_valid_json_with_a_known_namespace(path) -> None:
    schema = json.loads(path.read_text())
    assert schema["namespace"] in (avsc.CRM_NAMESPACE, avsc.LEDGER_NAMESPACE)


@pytest.mark.parametrize(
    "record",
    ["FinancialEvent", "LedgerEntry", "CustomerBalance", "DeadLetter", "Customer", "TaxRate"],
)
def test_composed_schemas_are_self_contained(record: str) -> None:
    fastavro.parse_schema(json.loads(avsc.schema_str(record)), _write_hint=False)


def test_money_is_decimal_bytes_never_float() -> None:
    text = json.dumps(avsc.compose("LedgerEntry"))
    assert '"float"' not in text and '"double"' not in text


class _Wrong(AvroRecord):
    """Deliberately disagrees with a schema in every way the comparison checks."""

    avro_name: ClassVar[str] = "io.ledgerstream.crm.Wrong"

    amount: Annotated[Decimal, AvroDecimal(18, 2)]  # scale differs
    status: InvoiceStatus  # schema drops a symbol
    note: str  # schema says nullable
    count: int  # schema says int, model long
    when: date  # schema says timestamp
    extra: str | None = None  # schema has no such field


_WRONG_SCHEMA = {
    "type": "record",
    "name": "Wrong",
    "namespace": "io.ledgerstream.crm",
    "fields": [
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4},
        },
        {
            "name": "status",
            "type": {
                "type": "enum",
                "name": "InvoiceStatus",
                "symbols": ["DRAFT", "SENT", "PAID", "VOID"],
            },
        },
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "count", "type": "int"},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


def test_a_mismatched_pair_fails_on_every_difference() -> None:
    problems = "\n".join(compare(_Wrong, _WRONG_SCHEMA))
    assert "fields differ" in problems
    assert "Wrong.amount: schema bytes/decimal(18,4) != model bytes/decimal(18,2)" in problems
    assert "Wrong.status: enum symbols" in problems
    assert "Wrong.note: schema is a union" in problems
    assert "schema default None but model requires it" in problems
    assert "Wrong.count: schema int != model long" in problems
    assert "Wrong.when: schema long/timestamp-micros != model int/date" in problems


def test_mismatch_in_a_nested_record_is_found() -> None:
    from schemas.models import Invoice

    schema = avsc.compose("Invoice")
    line = schema["fields"][9]["type"]["items"]
    assert line["name"] == "DocumentLine"
    line["fields"][4]["type"]["scale"] = 2  # quantity
    assert compare(Invoice, schema) == [
        "Invoice.lines[].quantity: schema bytes/decimal(18,2) != model bytes/decimal(18,4)"
    ]


def test_model_with_wrong_nullability_and_timestamp_is_caught() -> None:
    class Nullable(AvroRecord):
        avro_name: ClassVar[str] = "io.ledgerstream.crm.Nullable"
        at: datetime | None = None
        amount: Amount

    schema = {
        "type": "record",
        "name": "Nullable",
        "namespace": "io.ledgerstream.crm",
        "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "amount",
                "type": [
                    "null",
                    {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 4},
                ],
            },
        ],
    }
    problems = compare(Nullable, schema)
    assert any("Nullable.at: model is a union/nullable" in p for p in problems)
    assert any("Nullable.amount: schema is a union" in p for p in problems)
