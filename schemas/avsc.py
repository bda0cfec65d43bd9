"""Load the ``.avsc`` files (the source of truth) and compose self-contained schemas.

Each file under ``schemas/avro/`` (except ``history/``) defines one named type and
refers to others by full name, so a type is written once. A registry subject,
however, needs one self-contained schema (we do not use schema references: Apicurio's
ccompat and every consumer then see the same single document). :func:`compose`
inlines every referenced named type at its first use, in document order, and writes
later uses as the full name, which is what the Avro spec requires.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

AVRO_DIR = Path(__file__).parent / "avro"
HISTORY_DIR = AVRO_DIR / "history"

CRM_NAMESPACE = "io.ledgerstream.crm"
LEDGER_NAMESPACE = "io.ledgerstream.ledger"

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "enum", "fixed"})

Json = Any


def full_name(name: str, namespace: str | None) -> str:
    """The Avro full name: a dotted name is already full, else prefix the namespace."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _collect(schema: Json, namespace: str | None, out: dict[str, Json]) -> None:
    """Record every named type defined (not merely referenced) inside ``schema``."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, out)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in NAMED_KINDS:
        name = full_name(schema["name"], schema.get("namespace", namespace))
        out[name] = schema
        inner_ns = name.rpartition(".")[0] or None
        for field in schema.get("fields", []):
            _collect(field["type"], inner_ns, out)
    elif kind == "array":
        _collect(schema["items"], namespace, out)
    elif kind == "map":
        _collect(schema["values"], namespace, out)
    elif isinstance(kind, dict | list):
        _collect(kind, namespace, out)


@cache
def definitions() -> dict[str, Json]:
    """Every named type defined in the current ``.avsc`` files, by full name."""
    found: dict[str, Json] = {}
    for path in sorted(AVRO_DIR.rglob("*.avsc")):
        if HISTORY_DIR in path.parents:
            continue
        schema = json.loads(path.read_text(encoding="utf-8"))
        before = set(found)
        _collect(schema, None, found)
        if before & set(found) != before:  # pragma: no cover - defensive
            raise ValueError(f"{path} redefines a named type")
    return found


def _inline(schema: Json, namespace: str | None, defined: set[str]) -> Json:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        name = full_name(schema, namespace)
        if name in defined:
            return name
        try:
            target = definitions()[name]
        except KeyError:
            raise ValueError(f"unknown Avro type {name!r}") from None
        return _inline(target, name.rpartition(".")[0] or None, defined)
    if isinstance(schema, list):
        return [_inline(branch, namespace, defined) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    out = copy.deepcopy(schema)
    if kind in NAMED_KINDS:
        name = full_name(schema["name"], schema.get("namespace", namespace))
        if name in defined:
            return name
        defined.add(name)
        ns, _, short = name.rpartition(".")
        out["name"] = short
        out["namespace"] = ns
        if kind == "record":
            out["fields"] = [
                {**field, "type": _inline(field["type"], ns or None, defined)}
                for field in schema["fields"]
            ]
        return out
    if kind == "array":
        out["items"] = _inline(schema["items"], namespace, defined)
    elif kind == "map":
        out["values"] = _inline(schema["values"], namespace, defined)
    elif (isinstance(kind, str) and kind not in PRIMITIVES) or isinstance(kind, dict | list):
        return _inline(kind, namespace, defined)
    return out


@cache
def _composed(name: str) -> str:
    return json.dumps(_inline(name, None, set()), separators=(",", ":"))


def compose(name: str) -> Json:
    """A self-contained schema for the named type ``name`` (full or short name)."""
    return json.loads(_composed(resolve_name(name)))


def schema_str(name: str) -> str:
    """:func:`compose` as compact JSON, the string given to serializers and the registry."""
    return _composed(resolve_name(name))


@cache
def parsed(name: str) -> Any:
    """The fastavro-parsed schema for ``name`` (cached; parsing is not free)."""
    return fastavro.parse_schema(compose(name))


def resolve_name(name: str) -> str:
    """Accept ``Invoice`` or ``io.ledgerstream.crm.Invoice``; fail loudly on ambiguity."""
    defs = definitions()
    if name in defs:
        return name
    matches = [full for full in defs if full.rpartition(".")[2] == name]
    if len(matches) != 1:
        raise KeyError(f"no unique Avro type named {name!r}: {matches}")
    return matches[0]


def history(record: str) -> list[Json]:
    """The registered past versions of a top-level record, oldest first (v1, v2, ...)."""
    folder = HISTORY_DIR / resolve_name(record).rpartition(".")[2]
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]


def versions(record: str) -> list[Json]:
    """History followed by the current composed schema: the order to register them in."""
    return [*history(record), compose(record)]
