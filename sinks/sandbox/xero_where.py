"""The equality subset of Xero's ``where`` filter that sinks use for lookups.

Xero accepts a .NET-style expression in ``?where=``. Finding an already
written document by its CRM reference only needs equality joined by AND::

    Reference=="CRM-10042"
    Type=="ACCREC" AND InvoiceNumber=="INV-0001"
    Contact.ContactID==guid("3f2a...")  &&  Status!="DELETED"

Values are strings, ``guid("...")``, numbers or ``true``/``false``. Unsupported
syntax raises :class:`WhereError` (Xero answers such queries with a 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_CLAUSE = re.compile(
    r"""\s*(?P<field>[A-Za-z][\w.]*)\s*(?P<op>==|!=)\s*
        (?:"(?P<str>(?:[^"\\]|\\.)*)"|guid\("(?P<guid>[^"]*)"\)|(?P<lit>[\w.\-]+))\s*""",
    re.VERBOSE)
_JOIN = re.compile(r"\s*(?:AND|&&)\s*", re.IGNORECASE)


class WhereError(ValueError):
    """The where clause is outside the supported subset."""


def _lookup(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = next((v for k, v in value.items() if k.lower() == part.lower()), None)
    return value


def compile_where(text: str) -> Callable[[dict[str, Any]], bool]:
    """Compile ``text`` into a predicate over a (public-shaped) record."""
    clauses: list[tuple[str, str, str]] = []
    pos = 0
    while pos < len(text):
        match = _CLAUSE.match(text, pos)
        if not match:
            raise WhereError(f"unsupported where clause near {text[pos:pos + 30]!r}")
        raw = match.group("str")
        value = (raw.replace('\\"', '"') if raw is not None
                 else match.group("guid") or match.group("lit") or "")
        clauses.append((match.group("field"), match.group("op"), value))
        pos = match.end()
        joiner = _JOIN.match(text, pos)
        if joiner and pos < len(text):
            pos = joiner.end()
        elif pos < len(text):
            raise WhereError(f"unsupported where clause near {text[pos:pos + 30]!r}")

    def predicate(record: dict[str, Any]) -> bool:
        for field_name, op, expected in clauses:
            actual = _lookup(record, field_name)
            if isinstance(actual, bool):
                actual = "true" if actual else "false"
            equal = actual is not None and str(actual).lower() == expected.lower()
            if equal != (op == "=="):
                return False
        return True

    return predicate
