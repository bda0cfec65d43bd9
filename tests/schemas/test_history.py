"""Schema history: every registered version is BACKWARD compatible with the next,
and data written with v1 reads into today's models."""

from __future__ import annotations

import io
import itertools

import fastavro
import pytest

from schemas import avsc
from schemas import examples as ex
from schemas.compatibility import check_backward, check_backward_transitive, check_history
from schemas.contract import compare
from schemas.models import FinancialEvent, Invoice, LineKind, from_avro

RECORDS_WITH_HISTORY = [p.name for p in sorted(avsc.HISTORY_DIR.iterdir()) if p.is_dir()]


def test_there_is_real_history() -> None:
    assert "FinancialEvent" in RECORDS_WITH_HISTORY
    assert len(avsc.versions("FinancialEvent")) >= 2


@pytest.mark.parametrize("record", RECORDS_WITH_HISTORY)
def test_each_version_reads_the_previous_one(record: str) -> None:
    assert check_history(avsc.versions(record)) == []


@pytest.mark.parametrize("record", RECORDS_WITH_HISTORY)
def test_current_reads_every_past_version(record: str) -> None:
    assert check_backward_transitive(avsc.compose(record), avsc.history(record)) == []


@pytest.mark.parametrize("record", RECORDS_WITH_HISTORY)
def test_history_is_not_a_copy_of_current(record: str) -> None:
    versions = avsc.versions(record)
    assert all(a != b for a, b in itertools.pairwise(versions))


def test_v1_differs_from_v2_as_documented() -> None:
    v1 = avsc.history("FinancialEvent")[0]
    problems = compare(FinancialEvent, v1)
    assert any("causation_id" in p for p in problems)
    assert any("po_number" in p for p in problems)
    assert any("DIAGNOSTIC_FEE" in p for p in problems)


def test_going_back_would_be_incompatible() -> None:
    """v1 cannot read v2's new enum symbol without the enum default: proof the checker
    looks at the symbols, not only the fields."""
    v1 = avsc.history("FinancialEvent")[0]
    no_default = avsc.compose("FinancialEvent")
    for branch in no_default["fields"][-1]["type"]:
        if isinstance(branch, dict) and branch.get("name") == "Invoice":
            branch["fields"][9]["type"]["items"]["fields"][1]["type"].pop("default")
    v1_no_default = _strip_enum_default(v1)
    assert check_backward(v1_no_default, no_default)


def _strip_enum_default(schema: dict) -> dict:
    import json

    text = json.dumps(schema).replace(', "default": "OTHER"', "")
    return json.loads(text)


def test_v1_data_reads_into_the_current_model() -> None:
    v1 = fastavro.parse_schema(avsc.history("FinancialEvent")[0])
    event = ex.sample_invoice_event()
    body = event.to_avro()
    del body["causation_id"]
    del body["payload"][1]["po_number"]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v1, body)
    buf.seek(0)
    raw = fastavro.schemaless_reader(
        buf, v1, avsc.parsed("FinancialEvent"), return_record_name=True
    )
    assert isinstance(raw, dict)
    back = from_avro(FinancialEvent, raw)
    assert back == event  # po_number and causation_id defaulted to None
    assert isinstance(back.payload, Invoice)
    assert all(line.kind is not LineKind.DIAGNOSTIC_FEE for line in back.payload.lines)
