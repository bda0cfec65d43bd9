"""Unit tests of the pure-Python BACKWARD checker: reader = new, writer = old."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from schemas import avsc
from schemas.compatibility import (
    check_backward,
    check_backward_transitive,
    check_history,
    is_backward_compatible,
)


def rec(*fields: dict[str, Any], name: str = "R", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields), **extra}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def dec(precision: int, scale: int, base: str = "bytes") -> dict[str, Any]:
    return {"type": base, "logicalType": "decimal", "precision": precision, "scale": scale}


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "E", "symbols": list(symbols), **extra}


COMPATIBLE = [
    ("identical", rec(f("a", "string")), rec(f("a", "string"))),
    (
        "field added with default",
        rec(f("a", "string"), f("b", ["null", "string"], default=None)),
        rec(f("a", "string")),
    ),
    ("field removed", rec(f("a", "string")), rec(f("a", "string"), f("b", "long"))),
    ("int promoted to long", rec(f("a", "long")), rec(f("a", "int"))),
    ("long promoted to double", rec(f("a", "double")), rec(f("a", "long"))),
    ("string read as bytes", rec(f("a", "bytes")), rec(f("a", "string"))),
    ("enum symbol added", rec(f("e", enum("A", "B", "C"))), rec(f("e", enum("A", "B")))),
    (
        "enum symbol removed but reader has default",
        rec(f("e", enum("A", "OTHER", default="OTHER"))),
        rec(f("e", enum("A", "B", "OTHER"))),
    ),
    (
        "union branch added",
        rec(f("u", ["null", "string", "long"])),
        rec(f("u", ["null", "string"])),
    ),
    (
        "non-union becomes nullable",
        rec(f("u", ["null", "string"], default=None)),
        rec(f("u", "string")),
    ),
    ("decimal precision widened", rec(f("m", dec(20, 4))), rec(f("m", dec(18, 4)))),
    ("field renamed with alias", rec(f("amount", "long", aliases=["amt"])), rec(f("amt", "long"))),
    (
        "record renamed with alias",
        rec(f("a", "int"), name="New", aliases=["Old"]),
        rec(f("a", "int"), name="Old"),
    ),
    (
        "array items promoted",
        rec(f("xs", {"type": "array", "items": "long"})),
        rec(f("xs", {"type": "array", "items": "int"})),
    ),
    (
        "map values gain a nullable",
        rec(f("m", {"type": "map", "values": ["null", "string"]})),
        rec(f("m", {"type": "map", "values": "string"})),
    ),
    (
        "named reference resolved",
        rec(f("a", rec(f("x", "int"), name="Inner")), f("b", "t.Inner")),
        rec(f("a", rec(f("x", "int"), name="Inner")), f("b", "Inner")),
    ),
    (
        "recursive type",
        rec(f("next", ["null", "t.R"], default=None), f("v", "long")),
        rec(f("next", ["null", "t.R"], default=None), f("v", "int")),
    ),
]

INCOMPATIBLE = [
    (
        "field added without default",
        rec(f("a", "string"), f("b", "string")),
        rec(f("a", "string")),
        "R.b: field added without a default",
    ),
    (
        "default does not fit",
        rec(f("a", "string"), f("b", ["string", "null"], default=None)),
        rec(f("a", "string")),
        "does not fit string",
    ),
    (
        "type changed",
        rec(f("a", "long")),
        rec(f("a", "string")),
        "R.a: reader long cannot read writer string",
    ),
    (
        "long narrowed to int",
        rec(f("a", "int")),
        rec(f("a", "long")),
        "reader int cannot read writer long",
    ),
    (
        "enum symbol removed",
        rec(f("e", enum("A"))),
        rec(f("e", enum("A", "B"))),
        "lost symbols ['B']",
    ),
    (
        "union branch removed",
        rec(f("u", ["null", "string"])),
        rec(f("u", ["null", "string", "long"])),
        "R.u<long>: writer type long matches no branch",
    ),
    (
        "nullable becomes required",
        rec(f("u", "string")),
        rec(f("u", ["null", "string"], default=None)),
        "R.u<null>: reader string cannot read writer null",
    ),
    (
        "decimal scale changed",
        rec(f("m", dec(18, 2))),
        rec(f("m", dec(18, 4))),
        "decimal scale changed 4 -> 2",
    ),
    (
        "decimal precision narrowed",
        rec(f("m", dec(12, 4))),
        rec(f("m", dec(18, 4))),
        "precision narrowed 18 -> 12",
    ),
    (
        "decimal becomes plain bytes",
        rec(f("m", "bytes")),
        rec(f("m", dec(18, 4))),
        "logical type changed",
    ),
    (
        "millis become micros",
        rec(f("t", {"type": "long", "logicalType": "timestamp-micros"})),
        rec(f("t", {"type": "long", "logicalType": "timestamp-millis"})),
        "logical type changed",
    ),
    (
        "record renamed without alias",
        rec(f("a", "int"), name="New"),
        rec(f("a", "int"), name="Old"),
        "name changed from Old to New",
    ),
    (
        "nested record gains required field",
        rec(f("inner", rec(f("x", "int"), f("y", "int"), name="I"))),
        rec(f("inner", rec(f("x", "int"), name="I"))),
        "R.inner.y: field added without a default",
    ),
    (
        "fixed size changed",
        rec(f("h", {"type": "fixed", "name": "H", "size": 16})),
        rec(f("h", {"type": "fixed", "name": "H", "size": 8})),
        "fixed size changed 8 -> 16",
    ),
    (
        "array becomes map",
        rec(f("xs", {"type": "map", "values": "int"})),
        rec(f("xs", {"type": "array", "items": "int"})),
        "type changed from array to map",
    ),
]


@pytest.mark.parametrize(("case", "new", "old"), COMPATIBLE, ids=[c[0] for c in COMPATIBLE])
def test_compatible(case: str, new: Any, old: Any) -> None:
    assert check_backward(new, old) == []
    assert is_backward_compatible(new, old)


@pytest.mark.parametrize(
    ("case", "new", "old", "message"), INCOMPATIBLE, ids=[c[0] for c in INCOMPATIBLE]
)
def test_incompatible(case: str, new: Any, old: Any, message: str) -> None:
    problems = [str(p) for p in check_backward(new, old)]
    assert problems, case
    assert any(message in p for p in problems), problems


def test_accepts_json_text() -> None:
    import json

    assert is_backward_compatible(json.dumps(rec(f("a", "long"))), json.dumps(rec(f("a", "int"))))


def test_transitive_and_history() -> None:
    v1 = rec(f("a", "string"))
    v2 = rec(f("a", "string"), f("b", "string", default=""))
    v3 = rec(f("b", "string", default=""))
    v4 = rec(f("b", "string"))  # drops the default: cannot read v1 (no b)
    assert check_history([v1, v2, v3]) == []
    assert check_backward(v4, v3) == []
    assert check_backward_transitive(v4, [v1, v2, v3])
    assert [p.path for p in check_history([v1, v4])] == ["v2:R.b"]


def test_real_envelope_change_is_caught_deep_in_the_payload_union() -> None:
    new = avsc.compose("FinancialEvent")
    old = copy.deepcopy(new)
    # the v-next Invoice drops the VOID status: old data may hold VOID
    invoice = next(
        b for b in new["fields"][-1]["type"] if isinstance(b, dict) and b.get("name") == "Invoice"
    )
    status = invoice["fields"][2]["type"]
    status["symbols"].remove("VOID")
    problems = [str(p) for p in check_backward(new, old)]
    assert problems == [
        "FinancialEvent.payload<Invoice>.status: enum InvoiceStatus lost "
        "symbols ['VOID'] and has no default symbol"
    ]
