"""A pure-Python Avro BACKWARD-compatibility checker (fastavro has none).

BACKWARD means: a consumer using the NEW schema as its reader schema can read every
message written with an OLD schema. The rules are Avro's schema-resolution rules
(spec, "Schema Resolution"), applied statically:

* records match by unqualified name or a reader alias; each reader field is found in
  the writer by name or by one of its aliases, otherwise it needs a default (and the
  default must fit the field's type); writer fields the reader dropped are skipped;
* enums: every writer symbol must exist in the reader, unless the reader declares an
  enum ``default`` symbol to map unknown ones to;
* unions: every writer branch must be readable by some reader branch; a non-union
  writer must match some branch of a reader union;
* primitives may be promoted (int -> long/float/double, long -> float/double,
  float -> double, string <-> bytes);
* fixed: same name and size;
* logical types are checked *stricter than the spec*, because the bytes keep their
  shape but change meaning: a decimal must keep its scale and may only widen its
  precision, and adding, removing or changing a logical type (``timestamp-millis`` ->
  ``timestamp-micros``, ``date`` -> ``int``) is reported. Money read at the wrong scale
  is a silent 10x error, which is worse than a rejected deploy.

The result is a list of :class:`Incompatibility` with a path such as
``FinancialEvent.payload<Invoice>.lines[].quantity``; empty means compatible.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

Json = Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "enum", "fixed", "error"})
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
"""writer type -> reader types it may be promoted to."""


@dataclass(frozen=True)
class Incompatibility:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class _Schema:
    """A schema with every named type indexed by full name, so references resolve."""

    def __init__(self, schema: Json) -> None:
        if isinstance(schema, str) and schema.lstrip().startswith(("{", "[")):
            schema = json.loads(schema)
        self.names: dict[str, dict[str, Any]] = {}
        self.root = self._normalize(schema, None)

    def _normalize(self, schema: Json, namespace: str | None) -> Json:
        """Turn every node into a dict (or list for unions); references stay names."""
        if isinstance(schema, list):
            return [self._normalize(branch, namespace) for branch in schema]
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return {"type": schema}
            return {"type": "ref", "name": _full(schema, namespace)}
        kind = schema.get("type")
        if isinstance(kind, dict | list):
            return self._normalize(kind, namespace)
        if kind in PRIMITIVES:
            return dict(schema)
        if kind in NAMED:
            name = _full(schema["name"], schema.get("namespace", namespace))
            ns = name.rpartition(".")[0] or None
            node = dict(schema)
            node["type"] = "record" if kind == "error" else kind
            node["name"] = name
            node["aliases"] = [_full(a, ns) for a in schema.get("aliases", [])]
            self.names[name] = node
            if kind in ("record", "error"):
                node["fields"] = [
                    {**f, "type": self._normalize(f["type"], ns)} for f in schema["fields"]
                ]
            return node
        if kind == "array":
            return {**schema, "items": self._normalize(schema["items"], namespace)}
        if kind == "map":
            return {**schema, "values": self._normalize(schema["values"], namespace)}
        if isinstance(kind, str):
            return {"type": "ref", "name": _full(kind, namespace)}
        raise ValueError(f"not an Avro schema: {schema!r}")

    def deref(self, node: Json) -> Json:
        if isinstance(node, dict) and node.get("type") == "ref":
            try:
                return self.names[node["name"]]
            except KeyError:
                raise ValueError(f"undefined Avro type {node['name']!r}") from None
        return node


def _full(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _describe(node: Json) -> str:
    if isinstance(node, list):
        return "union[" + ", ".join(_describe(b) for b in node) + "]"
    kind = node["type"]
    if kind in NAMED:
        return f"{kind} {_short(node['name'])}"
    logical = node.get("logicalType")
    if logical == "decimal":
        return f"{kind}/decimal({node.get('precision')},{node.get('scale', 0)})"
    return f"{kind}/{logical}" if logical else str(kind)


class _Checker:
    def __init__(self, reader: _Schema, writer: _Schema) -> None:
        self.reader = reader
        self.writer = writer
        self.seen: set[tuple[str, str]] = set()

    def check(self, r: Json, w: Json, path: str) -> list[Incompatibility]:
        r, w = self.reader.deref(r), self.writer.deref(w)
        if isinstance(w, list):
            out: list[Incompatibility] = []
            for branch in w:
                found = self.writer.deref(branch)
                label = _short(found["name"]) if found["type"] in NAMED else found["type"]
                out += self.check(r, branch, f"{path}<{label}>")
            return out
        if isinstance(r, list):
            if w["type"] in NAMED:  # named types match their reader branch by name
                for branch in r:
                    found = self.reader.deref(branch)
                    if found["type"] == w["type"] and _names_match(found, w):
                        return self.check(found, w, path)
            for branch in r:
                if not self.check(branch, w, path):
                    return []
            return [Incompatibility(path, f"writer type {_describe(w)} matches no branch of "
                                          f"reader {_describe(r)}")]
        return self._check_single(r, w, path)

    def _check_single(self, r: Json, w: Json, path: str) -> list[Incompatibility]:
        rk, wk = r["type"], w["type"]
        logical = self._logical(r, w, path)
        if logical is not None:
            return logical
        if rk in PRIMITIVES and wk in PRIMITIVES:
            if rk == wk or rk in PROMOTIONS.get(wk, ()):
                return []
            return [Incompatibility(path, f"reader {rk} cannot read writer {wk}")]
        if rk != wk:
            return [Incompatibility(path, f"type changed from {_describe(w)} to {_describe(r)}")]
        if rk == "array":
            return self.check(r["items"], w["items"], f"{path}[]")
        if rk == "map":
            return self.check(r["values"], w["values"], f"{path}{{}}")
        if not _names_match(r, w):
            return [Incompatibility(path, f"{rk} name changed from {_short(w['name'])} to "
                                          f"{_short(r['name'])} without an alias")]
        if rk == "fixed":
            if r["size"] != w["size"]:
                return [Incompatibility(path, f"fixed size changed {w['size']} -> {r['size']}")]
            return []
        if rk == "enum":
            return self._enum(r, w, path)
        return self._record(r, w, path)

    def _logical(self, r: Json, w: Json, path: str) -> list[Incompatibility] | None:
        """None when neither side has a logical type (the caller goes on)."""
        rl, wl = r.get("logicalType"), w.get("logicalType")
        if rl is None and wl is None:
            return None
        if rl != wl:
            return [Incompatibility(path, f"logical type changed from {_describe(w)} to "
                                          f"{_describe(r)}")]
        if r["type"] != w["type"]:
            return [Incompatibility(path, f"type changed from {_describe(w)} to {_describe(r)}")]
        if rl == "decimal":
            r_scale, w_scale = r.get("scale", 0), w.get("scale", 0)
            if r_scale != w_scale:
                return [Incompatibility(path, f"decimal scale changed {w_scale} -> {r_scale}: "
                                              "every stored value would change meaning")]
            if r["precision"] < w["precision"]:
                return [Incompatibility(path, f"decimal precision narrowed {w['precision']} -> "
                                              f"{r['precision']}")]
        if r["type"] == "fixed":
            return None  # also compare fixed names and sizes
        return []

    def _enum(self, r: Json, w: Json, path: str) -> list[Incompatibility]:
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and r.get("default") not in r["symbols"]:
            return [Incompatibility(path, f"enum {_short(r['name'])} lost symbols {missing} "
                                          "and has no default symbol")]
        return []

    def _record(self, r: Json, w: Json, path: str) -> list[Incompatibility]:
        key = (r["name"], w["name"])
        if key in self.seen:
            return []
        self.seen.add(key)
        writer_fields = {f["name"]: f for f in w["fields"]}
        out: list[Incompatibility] = []
        for field in r["fields"]:
            where = f"{path}.{field['name']}"
            source = next(
                (writer_fields[n] for n in (field["name"], *field.get("aliases", []))
                 if n in writer_fields),
                None,
            )
            if source is not None:
                out += self.check(field["type"], source["type"], where)
            elif "default" not in field:
                out.append(Incompatibility(where, "field added without a default"))
            else:
                problem = _default_problem(self.reader, field["type"], field["default"])
                if problem:
                    out.append(Incompatibility(where, problem))
        return out


def _names_match(r: Json, w: Json) -> bool:
    if _short(r["name"]) == _short(w["name"]):
        return True
    return any(a == w["name"] or _short(a) == _short(w["name"]) for a in r.get("aliases", []))


def _default_problem(schema: _Schema, node: Json, default: Any) -> str | None:
    """Why ``default`` is not a valid default for ``node`` (None if it is)."""
    node = schema.deref(node)
    if isinstance(node, list):  # a union's default must fit its FIRST branch
        return _default_problem(schema, node[0], default)
    kind = node["type"]
    ok = {
        "null": default is None,
        "boolean": isinstance(default, bool),
        "int": isinstance(default, int) and not isinstance(default, bool),
        "long": isinstance(default, int) and not isinstance(default, bool),
        "float": isinstance(default, int | float) and not isinstance(default, bool),
        "double": isinstance(default, int | float) and not isinstance(default, bool),
        "bytes": isinstance(default, str),
        "string": isinstance(default, str),
        "fixed": isinstance(default, str),
        "enum": default in node.get("symbols", ()),
        "array": isinstance(default, list),
        "map": isinstance(default, dict),
        "record": isinstance(default, dict),
    }.get(kind, False)
    return None if ok else f"default {default!r} does not fit {_describe(node)}"


def check_backward(new: Json, old: Json) -> list[Incompatibility]:
    """Why a reader using ``new`` cannot read data written with ``old`` (empty: it can).

    Both arguments are Avro schemas as parsed JSON or JSON text.
    """
    reader, writer = _Schema(new), _Schema(old)
    root = reader.deref(reader.root)
    name = _short(root["name"]) if isinstance(root, dict) and root["type"] in NAMED else "$"
    return _Checker(reader, writer).check(reader.root, writer.root, name)


def is_backward_compatible(new: Json, old: Json) -> bool:
    return not check_backward(new, old)


def check_backward_transitive(new: Json, olds: list[Json]) -> list[Incompatibility]:
    """BACKWARD_TRANSITIVE: ``new`` must read data written by every one of ``olds``."""
    return [problem for old in olds for problem in check_backward(new, old)]


def check_history(versions: list[Json]) -> list[Incompatibility]:
    """Each version must read the one before it (what a BACKWARD subject enforces)."""
    out: list[Incompatibility] = []
    for number, (old, new) in enumerate(itertools.pairwise(versions), start=2):
        out += [Incompatibility(f"v{number}:{p.path}", p.message) for p in check_backward(new, old)]
    return out
