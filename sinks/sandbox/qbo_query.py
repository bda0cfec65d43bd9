"""The subset of the QuickBooks Online query language a sink needs.

QBO's ``/query`` endpoint takes a SQL-like string. Sinks use it to find a
document by ``DocNumber`` before creating it, to look up customers by
``DisplayName`` and to page. Supported::

    select * | count(*) from <Entity>
      [where <cond> (and <cond>)*]
      [orderby <field> [asc|desc]]
      [startposition <n>] [maxresults <m>]

with ``<cond>`` one of ``field = 'v'``, ``field in ('a', 'b')``, ``<``, ``>``,
``<=``, ``>=``, ``!=`` and ``like '%v%'``. Reference fields (``CustomerRef``)
compare by their ``value``; dotted fields (``MetaData.LastUpdatedTime``) are
followed. Anything else raises :class:`QueryError` (QBO's QueryParserError).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

MAX_RESULTS = 1000


class QueryError(ValueError):
    """The query could not be parsed."""


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    values: tuple[str, ...]


@dataclass
class Query:
    entity: str
    count: bool = False
    conditions: list[Condition] = field(default_factory=list)
    order_by: str | None = None
    descending: bool = False
    start: int = 1
    max_results: int = 100


_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.|'')*')|(<=|>=|!=|[=<>(),*])|([A-Za-z_][\w.]*)|(\d+))")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise QueryError(f"Error parsing query: unexpected text at {pos}: {text[pos:pos+20]!r}")
        tokens.append(match.group(0).strip())
        pos = match.end()
    return tokens


def _literal(token: str) -> str:
    if token.startswith("'") and token.endswith("'") and len(token) >= 2:
        return token[1:-1].replace("\\'", "'").replace("''", "'")
    if token.isdigit() or token.lower() in ("true", "false"):
        return token
    raise QueryError(f"Error parsing query: expected a literal, got {token!r}")


def parse(text: str) -> Query:
    """Parse a query string into a :class:`Query`."""
    tokens = _tokenize(text)
    lower = [t.lower() for t in tokens]
    i = 0

    def expect(word: str) -> None:
        nonlocal i
        if i >= len(lower) or lower[i] != word:
            raise QueryError(f"Error parsing query: expected {word!r}")
        i += 1

    expect("select")
    count = False
    if lower[i:i + 4] == ["count", "(", "*", ")"]:
        count, i = True, i + 4
    elif i < len(lower) and lower[i] == "*":
        i += 1
    else:
        raise QueryError("Error parsing query: only 'select *' and 'select count(*)' supported")
    expect("from")
    if i >= len(tokens):
        raise QueryError("Error parsing query: missing entity")
    query = Query(entity=tokens[i], count=count)
    i += 1
    if i < len(lower) and lower[i] == "where":
        i += 1
        while True:
            if i + 2 > len(tokens):
                raise QueryError("Error parsing query: incomplete condition")
            name, op = tokens[i], lower[i + 1]
            i += 2
            if op == "in":
                expect("(")
                values = []
                while True:
                    values.append(_literal(tokens[i]))
                    i += 1
                    if lower[i] == ")":
                        i += 1
                        break
                    expect(",")
                query.conditions.append(Condition(name, "in", tuple(values)))
            elif op in ("=", "<", ">", "<=", ">=", "!=", "like"):
                query.conditions.append(Condition(name, op, (_literal(tokens[i]),)))
                i += 1
            else:
                raise QueryError(f"Error parsing query: unsupported operator {op!r}")
            if i < len(lower) and lower[i] == "and":
                i += 1
                continue
            break
    if i < len(lower) and lower[i] == "orderby":
        query.order_by = tokens[i + 1]
        i += 2
        if i < len(lower) and lower[i] in ("asc", "desc"):
            query.descending = lower[i] == "desc"
            i += 1
    while i < len(lower):
        word = lower[i]
        if word not in ("startposition", "maxresults") or i + 1 >= len(tokens):
            raise QueryError(f"Error parsing query: unexpected {tokens[i]!r}")
        try:
            value = int(tokens[i + 1])
        except ValueError as exc:
            raise QueryError(f"Error parsing query: {word} needs a number") from exc
        if word == "startposition":
            query.start = max(1, value)
        else:
            query.max_results = min(MAX_RESULTS, max(0, value))
        i += 2
    return query


def _get(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        if part in value:  # the usual spelling: no scan of every key
            value = value[part]
        else:
            lowered = part.lower()
            value = next((v for k, v in value.items() if k.lower() == lowered), None)
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return value


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
    "<=": operator.le, ">=": operator.ge}


@lru_cache(maxsize=4096)
def _comparator(op: str, right: str) -> Callable[[Any], bool]:
    """``left -> bool`` for ``<left> <op> '<right>'``: numbers compare as numbers when
    both sides are numbers, anything else as case-insensitive text. What depends only
    on the literal (its number, its lower case, a ``like`` pattern) is worked out once
    per query instead of once per record: a query scans every record of the realm."""
    if op == "like":
        pattern = re.compile("^" + ".*".join(re.escape(p) for p in right.split("%")) + "$",
                             re.IGNORECASE)
    try:
        number: Decimal | None = Decimal(right)
    except InvalidOperation:
        number = None
    text = right.lower()
    order = _ORDER.get(op)

    def check(left: Any) -> bool:
        if left is None:
            return op == "!="
        if isinstance(left, bool):
            left_s = "true" if left else "false"
            return (left_s == text) == (op == "=") if op in ("=", "!=") else False
        if op == "like":
            return pattern.match(str(left)) is not None
        assert order is not None, op
        if number is not None:
            try:
                return order(Decimal(str(left)), number)
            except InvalidOperation:
                pass
        return order(str(left).lower(), text)

    return check


def _compare(left: Any, op: str, right: str) -> bool:
    return _comparator(op, right)(left)


def matches(record: dict[str, Any], condition: Condition) -> bool:
    value = _get(record, condition.field)
    if condition.op == "in":
        return any(_compare(value, "=", v) for v in condition.values)
    return _compare(value, condition.op, condition.values[0])


def _predicate(condition: Condition) -> Callable[[dict[str, Any]], bool]:
    """:func:`matches` for one condition, with its comparison and field worked out
    once (a query tests it against every record of the entity)."""
    checks = [_comparator("=" if condition.op == "in" else condition.op, value)
              for value in condition.values]
    path = condition.field
    if "." in path:
        return lambda record: any(check(_get(record, path)) for check in checks)
    if len(checks) == 1:
        check = checks[0]

        def one(record: dict[str, Any]) -> bool:
            if path not in record:
                return check(_get(record, path))
            value = record[path]
            if isinstance(value, dict) and "value" in value:
                value = value["value"]
            return check(value)

        return one
    return lambda record: any(check(_get(record, path)) for check in checks)


def run(query: Query, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Filter, order and page; returns (page, total matching)."""
    tests = [_predicate(c) for c in query.conditions]
    if len(tests) == 1:
        found = list(filter(tests[0], records))
    else:
        found = [r for r in records if all(test(r) for test in tests)]
    if query.order_by:
        key = query.order_by
        found.sort(key=lambda r: str(_get(r, key) or ""), reverse=query.descending)
    start = query.start - 1
    return found[start:start + query.max_results], len(found)
