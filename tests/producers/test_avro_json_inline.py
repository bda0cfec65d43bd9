"""The record code of the schema-compiled encoder writes common values inline; every
inlined kind must still write fastavro's bytes for the values it takes and fall back to
the full check (with the field named) for the values it does not."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from producers.avro_json import AvroJsonError, compile_schema
from schemas import examples
from schemas.avsc import compose, parsed
from schemas.topics import FINANCIAL_EVENT

ENCODE = compile_schema(compose(FINANCIAL_EVENT))


def fastavro_bytes(avro: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed(FINANCIAL_EVENT), avro)
    return out.getvalue()


def body(avro: dict[str, Any]) -> dict[str, Any]:
    """The payload record of fastavro's dict (``to_avro`` names the union branch)."""
    payload = avro["payload"]
    return payload[1] if isinstance(payload, tuple) else payload


def customer() -> tuple[dict[str, Any], dict[str, Any]]:
    """The same customer event as JSON (what the outbox holds) and as fastavro's dict."""
    event = examples.sample_customer_event()
    return json.loads(event.model_dump_json()), event.to_avro()


@pytest.mark.parametrize("version", [0, 1, 63, 64, 127, 128, 2**31, 2**62, -1, -64, -65])
def test_longs_inside_and_outside_the_one_byte_fast_path(version: int) -> None:
    data, avro = customer()
    data["aggregate_version"] = avro["aggregate_version"] = version
    assert ENCODE(data) == fastavro_bytes(avro)


def test_booleans_enums_and_nullable_strings_match_fastavro() -> None:
    data, avro = customer()
    for flag in (True, False):
        data["payload"]["active"] = body(avro)["active"] = flag
        data["payload"]["email"] = body(avro)["email"] = None if flag else "a@b.c"
        data["correlation_id"] = avro["correlation_id"] = "x" * 200  # 2-byte length
        assert ENCODE(data) == fastavro_bytes(avro)


def test_a_missing_field_with_a_default_takes_the_default() -> None:
    data, avro = customer()
    del data["payload"]["billing_address"]["line2"]
    body(avro)["billing_address"]["line2"] = None
    assert ENCODE(data) == fastavro_bytes(avro)


def test_a_missing_defaulted_field_does_not_hide_an_unknown_one() -> None:
    data, _ = customer()
    del data["payload"]["billing_address"]["line2"]
    data["payload"]["billing_address"]["line3"] = "extra"
    with pytest.raises(AvroJsonError, match="line3: unknown field"):
        ENCODE(data)


@pytest.mark.parametrize("path, value, message", [
    (("aggregate_version",), True, "aggregate_version: expected an integer"),
    (("aggregate_version",), 1.0, "aggregate_version: expected an integer"),
    (("aggregate_version",), None, "aggregate_version: expected an integer"),
    (("event_id",), 7, "event_id: expected a string"),
    (("event_id",), None, "event_id: expected a string"),
    (("correlation_id",), ["x"], "correlation_id: expected a string"),
    (("payload", "active"), 1, "payload.active: expected true/false"),
    (("payload", "active"), "true", "payload.active: expected true/false"),
    (("op",), ["CREATE"], "op: \\['CREATE'\\] is not one of"),
    (("op",), None, "op: None is not one of"),
    (("op",), "create", "op: 'create' is not one of"),
    (("payload", "email"), 5, "payload.email: expected a string"),
])
def test_values_the_fast_path_does_not_take_are_refused_with_the_field(
        path: tuple[str, ...], value: Any, message: str) -> None:
    data, _ = customer()
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(AvroJsonError, match=message):
        ENCODE(data)


def test_cached_decimals_stay_exact_and_bad_ones_are_refused_after_good_ones() -> None:
    event = examples.sample_invoice_event()
    data = json.loads(event.model_dump_json())
    first = ENCODE(data)
    assert ENCODE(json.loads(event.model_dump_json())) == first  # now from the cache
    assert first == fastavro_bytes(event.to_avro())
    data["payload"]["total"] = {"amount": "1.00"}  # unhashable: no cache lookup
    with pytest.raises(AvroJsonError, match=r"payload\.total: a decimal must be a string"):
        ENCODE(data)
    data["payload"]["total"] = "1.000001"
    with pytest.raises(AvroJsonError, match=r"payload\.total: .*more than 4 decimal places"):
        ENCODE(data)
