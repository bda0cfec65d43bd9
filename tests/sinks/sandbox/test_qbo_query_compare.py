"""The sandbox's query comparisons: the per-literal compiled form against the rules
written out plainly (numbers as numbers when both sides are numbers, else
case-insensitive text; booleans; ``like``; references by value)."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest

from sinks.sandbox import qbo_query


def plain(left: Any, op: str, right: str) -> bool:
    if left is None:
        return op == "!="
    if isinstance(left, bool):
        left_s = "true" if left else "false"
        return (left_s == right.lower()) == (op == "=") if op in ("=", "!=") else False
    if op == "like":
        pattern = "^" + ".*".join(re.escape(p) for p in right.split("%")) + "$"
        return re.match(pattern, str(left), re.IGNORECASE) is not None
    try:
        lhs: Any = Decimal(str(left))
        rhs: Any = Decimal(right)
    except InvalidOperation:
        lhs, rhs = str(left).lower(), right.lower()
    return {"=": lhs == rhs, "!=": lhs != rhs, "<": lhs < rhs, ">": lhs > rhs,
            "<=": lhs <= rhs, ">=": lhs >= rhs}[op]


LEFTS = [None, True, False, 0, 7, "7", "7.00", 12.5, "12.50", "INV-B1", "inv-b1", "INV-B10",
         "abc", "", "2025-03-14", Decimal("3.1")]
RIGHTS = ["7", "7.0", "12.5", "INV-B1", "inv-b%", "%B1", "true", "false", "", "abc",
          "2025-03-14", "3.10"]


@pytest.mark.parametrize("op", ["=", "!=", "<", ">", "<=", ">=", "like"])
def test_compiled_comparison_agrees_with_the_plain_rules(op: str) -> None:
    for left, right in itertools.product(LEFTS, RIGHTS):
        assert qbo_query._compare(left, op, right) == plain(left, op, right), (left, right)


def test_queries_find_by_field_whatever_its_case_and_references_by_value() -> None:
    records = [{"Id": "1", "DocNumber": "INV-1", "CustomerRef": {"value": "9"}},
               {"Id": "2", "DocNumber": "INV-2", "CustomerRef": {"value": "8"}}]
    for text in ("select * from Invoice where DocNumber = 'inv-2'",
                 "select * from Invoice where docnumber = 'INV-2'",
                 "select * from Invoice where CustomerRef = '8'",
                 "select * from Invoice where DocNumber in ('INV-3', 'INV-2')"):
        page, total = qbo_query.run(qbo_query.parse(text), records)
        assert [r["Id"] for r in page] == ["2"] and total == 1, text


def test_several_conditions_and_dotted_fields() -> None:
    records = [{"Id": str(n), "Active": n % 2 == 0, "Balance": n * 10,
                "MetaData": {"LastUpdatedTime": f"2025-03-{n:02d}T00:00:00Z"}}
               for n in range(1, 9)]
    text = ("select * from Customer where Active = true and Balance >= '30' "
            "and MetaData.LastUpdatedTime < '2025-03-07' orderby Id desc")
    page, total = qbo_query.run(qbo_query.parse(text), records)
    assert [r["Id"] for r in page] == ["6", "4"] and total == 2
    for record in records:
        assert qbo_query.matches(record, qbo_query.Condition("Balance", ">", ("35",))) == (
            record["Balance"] > 35)
