"""Compare a pydantic model with its Avro record, field by field.

The ``.avsc`` files are the source of truth and the models are written by hand, so
they can drift. :func:`compare` walks both and returns every disagreement: record
name, field names and order, types, nullability, union branch order, logical types
(decimal precision/scale, date, timestamp-micros), enum names and symbols, int vs
long, and defaults. ``tests/schemas`` runs it over every model, and over a
deliberately wrong model to show it catches drift.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, get_args, get_origin

from pydantic import AwareDatetime
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from schemas import avsc
from schemas.compatibility import _Schema
from schemas.models._types import AvroDecimal, AvroInt
from schemas.models.base import AvroRecord, union_args

Json = Any


def _split(annotation: Any) -> tuple[Any, list[Any]]:
    """(bare type, Annotated metadata) of an annotation."""
    metadata: list[Any] = []
    while get_origin(annotation) is Annotated:
        args = get_args(annotation)
        annotation, metadata = args[0], [*metadata, *args[1:]]
    return annotation, metadata


class _Comparer:
    def __init__(self, schema: _Schema) -> None:
        self.schema = schema
        self.problems: list[str] = []
        self.seen: set[str] = set()

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def record(self, model: type[AvroRecord], node: Json, path: str) -> None:
        node = self.schema.deref(node)
        if not isinstance(node, dict) or node.get("type") != "record":
            self.fail(path, f"model {model.__name__} but schema is {node!r:.80}")
            return
        if node["name"] != model.avro_name:
            self.fail(path, f"record name {node['name']} != model {model.avro_name}")
        if node["name"] in self.seen:
            return
        self.seen.add(node["name"])
        avro_fields = [f["name"] for f in node["fields"]]
        model_fields = list(model.model_fields)
        if avro_fields != model_fields:
            self.fail(path, f"fields differ: schema {avro_fields} vs model {model_fields}")
        by_name = {f["name"]: f for f in node["fields"]}
        for name, info in model.model_fields.items():
            if name in by_name:
                self.field(info, by_name[name], f"{path}.{name}")

    def field(self, info: FieldInfo, avro_field: Json, path: str) -> None:
        self.type(info.annotation, list(info.metadata), avro_field["type"], path)
        has_default = "default" in avro_field
        if info.is_required():
            if has_default:
                self.fail(path, f"schema default {avro_field['default']!r} but model requires it")
            return
        if not has_default:
            self.fail(path, f"model default {info.default!r} but schema has no default")
            return
        model_default = info.default if info.default is not PydanticUndefined else None
        if isinstance(model_default, Enum):
            model_default = model_default.value
        if isinstance(model_default, tuple):
            model_default = list(model_default)
        if model_default != avro_field["default"]:
            self.fail(path, f"default {avro_field['default']!r} != model {model_default!r}")

    def type(self, annotation: Any, metadata: list[Any], node: Json, path: str) -> None:
        node = self.schema.deref(node)
        branches = union_args(annotation)
        if branches is not None:
            if not isinstance(node, list):
                self.fail(path, f"model is a union/nullable but schema is {_kind(node)}")
                return
            model_null = type(None) in branches
            model_rest = [b for b in branches if b is not type(None)]
            avro_null = any(self.schema.deref(b).get("type") == "null" for b in node)
            avro_rest = [b for b in node if self.schema.deref(b).get("type") != "null"]
            if model_null != avro_null:
                self.fail(path, f"nullable in model: {model_null}, in schema: {avro_null}")
            if node and self.schema.deref(node[0]).get("type") != "null" and model_null:
                self.fail(path, "a nullable union must list null first (default null)")
            if len(model_rest) != len(avro_rest):
                self.fail(path, f"{len(model_rest)} model branches vs {len(avro_rest)} in schema")
                return
            for model_branch, avro_branch in zip(model_rest, avro_rest, strict=True):
                bare, meta = _split(model_branch)
                self.type(bare, meta, avro_branch, path)
            return
        if isinstance(node, list):
            self.fail(path, f"schema is a union {[_kind(self.schema.deref(b)) for b in node]} "
                            "but model is not")
            return
        bare, more = _split(annotation)
        metadata = [*metadata, *more]
        self.single(bare, metadata, node, path)

    def single(self, bare: Any, metadata: list[Any], node: Json, path: str) -> None:
        kind, logical = node.get("type"), node.get("logicalType")
        if isinstance(bare, type) and issubclass(bare, AvroRecord):
            self.record(bare, node, path)
            return
        if isinstance(bare, type) and issubclass(bare, Enum):
            if kind != "enum":
                self.fail(path, f"model enum {bare.__name__} but schema is {_kind(node)}")
                return
            if node["name"].rpartition(".")[2] != bare.__name__:
                self.fail(path, f"enum name {node['name']} != model {bare.__name__}")
            symbols = [member.value for member in bare]
            if node["symbols"] != symbols:
                self.fail(path, f"enum symbols {node['symbols']} != model {symbols}")
            return
        if get_origin(bare) in (tuple, list):
            if kind != "array":
                self.fail(path, f"model sequence but schema is {_kind(node)}")
                return
            item, meta = _split(get_args(bare)[0])
            self.type(item, meta, node["items"], f"{path}[]")
            return
        expected = _expected(bare, metadata)
        actual = (kind, logical, node.get("precision"), node.get("scale"))
        if expected is None:
            self.fail(path, f"model type {bare!r} has no Avro mapping")
        elif actual != expected:
            self.fail(path, f"schema {_fmt(actual)} != model {_fmt(expected)}")


def _expected(bare: Any, metadata: list[Any]) -> tuple[Any, ...] | None:
    if bare is bool:
        return ("boolean", None, None, None)
    if bare is int:
        is_int32 = any(isinstance(m, AvroInt) for m in metadata)
        return ("int" if is_int32 else "long", None, None, None)
    if bare is str:
        return ("string", None, None, None)
    if bare is bytes:
        return ("bytes", None, None, None)
    if bare is Decimal:
        spec = next((m for m in metadata if isinstance(m, AvroDecimal)), None)
        if spec is None:
            return ("bytes", "decimal", "<no AvroDecimal metadata>", None)
        return ("bytes", "decimal", spec.precision, spec.scale)
    if bare is datetime or bare is AwareDatetime:
        return ("long", "timestamp-micros", None, None)
    if bare is date:
        return ("int", "date", None, None)
    return None


def _fmt(t: tuple[Any, ...]) -> str:
    kind, logical, precision, scale = t
    if logical == "decimal":
        return f"{kind}/decimal({precision},{scale})"
    return f"{kind}/{logical}" if logical else str(kind)


def _kind(node: Json) -> str:
    return str(node.get("type")) if isinstance(node, dict) else "union"


def compare(model: type[AvroRecord], schema: Json | None = None) -> list[str]:
    """Every disagreement between ``model`` and its Avro record (empty: they agree).

    ``schema`` defaults to the composed current schema of ``model.avro_name``; pass
    another (parsed JSON) to compare against a different version.
    """
    parsed = _Schema(schema if schema is not None else avsc.compose(model.avro_name))
    comparer = _Comparer(parsed)
    comparer.record(model, parsed.root, model.avro_name.rpartition(".")[2])
    return comparer.problems
