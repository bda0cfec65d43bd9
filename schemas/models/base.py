"""The base class of every contract record and the model <-> Avro-dict codec.

The codec is driven by the models' type annotations, not by hand-written per-class
code, so a new field needs no codec change. Records inside a union with more than one
record branch (the envelope's ``payload``) are written in fastavro's tuple notation
``(full_name, dict)`` so the writer never has to guess the branch; on the way back,
a ``(name, dict)`` tuple (``return_record_name=True``) or a plain dict (matched by its
exact field set) both work, which makes round trips exact.

Why the annotations are compiled into a per-class *plan* (a list of field converters,
built once and cached by class): walking ``get_origin``/``get_args`` for every value of
every record cost more than fastavro and pydantic together on the processor's hot path.
A plan only converts what needs converting (records, enums, arrays); every other value
is passed through untouched.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict

R = TypeVar("R", bound="AvroRecord")
Converter = Callable[[Any], Any]
_NONE = type(None)


class AvroRecord(BaseModel):
    """A frozen model mirroring one Avro record; ``avro_name`` is its full Avro name."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    avro_name: ClassVar[str]

    def to_avro(self) -> dict[str, Any]:
        """This record as the dict fastavro (and the Confluent serializer) writes."""
        return to_avro(self)

    @classmethod
    def from_avro(cls: type[R], data: dict[str, Any]) -> R:
        """Build from the dict fastavro (or the Confluent deserializer) read."""
        return from_avro(cls, data)


def unwrap(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` down to the bare type."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def union_args(annotation: Any) -> tuple[Any, ...] | None:
    """The branches of ``X | Y`` / ``Optional[X]``, or None if not a union."""
    annotation = unwrap(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return None


def record_branches(annotation: Any) -> list[type[AvroRecord]]:
    """The AvroRecord classes an annotation can hold (directly or as union branches)."""
    branches = union_args(annotation) or (annotation,)
    out = []
    for branch in branches:
        bare = unwrap(branch)
        if isinstance(bare, type) and issubclass(bare, AvroRecord):
            out.append(bare)
    return out


def item_type(annotation: Any) -> Any:
    """The element type of ``tuple[X, ...]`` / ``list[X]``."""
    args = get_args(unwrap(annotation))
    return args[0] if args else Any


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, AvroRecord)


def _is_sequence(tp: Any) -> bool:
    return get_origin(tp) in (tuple, list)


def _is_plain(tp: Any) -> bool:
    """A type fastavro takes as it is (str, int, bool, bytes, Decimal, date, ...)."""
    return (isinstance(tp, type) and not issubclass(tp, AvroRecord | Enum)
            and get_origin(tp) is None)


# --------------------------------------------------------------------------- dumping

_DUMPERS: dict[tuple[type[AvroRecord], bool], Callable[[AvroRecord], dict[str, Any]]] = {}


def to_avro(model: AvroRecord) -> dict[str, Any]:
    """``model`` as a fastavro-ready dict (Decimal, date and datetime kept as objects)."""
    return _record_dumper(type(model), False)(model)


def to_avro_tagged(model: AvroRecord) -> dict[str, Any]:
    """Like :func:`to_avro`, but *every* record inside a union (``Customer | None``
    too) is written in tuple notation.

    Why: for a union value without a name, fastavro validates the datum against each
    branch in turn before writing it — a full recursive check of the record, about as
    costly as writing it. Named, it goes straight to the branch. The bytes are the same;
    only writers use this form (:func:`from_avro` reads both).
    """
    return _record_dumper(type(model), True)(model)


def _record_dumper(cls: type[AvroRecord], tag_all: bool) -> Callable[[AvroRecord], dict[str, Any]]:
    found = _DUMPERS.get((cls, tag_all))
    if found is not None:
        return found
    plan: list[tuple[str, Converter | None]] = []

    def dump(model: AvroRecord) -> dict[str, Any]:
        values = model.__dict__
        out = {}
        for name, convert in plan:
            value = values[name]
            out[name] = value if convert is None or value is None else convert(value)
        return out

    _DUMPERS[(cls, tag_all)] = dump  # before the fields: a record may nest itself
    plan.extend((name, _value_dumper(field.annotation, tag_all))
                for name, field in cls.model_fields.items())
    return dump


def _value_dumper(annotation: Any, tag_all: bool) -> Converter | None:
    """How to turn one non-None value of ``annotation`` into its Avro form (None: as is)."""
    bare = unwrap(annotation)
    branches = union_args(bare)
    if branches is None:
        return _single_dumper(bare, tag=False, tag_all=tag_all)
    options = [unwrap(b) for b in branches if b is not _NONE]
    records = [b for b in options if _is_record(b)]
    if len(options) == 1:
        return _single_dumper(options[0], tag=tag_all and bool(records), tag_all=tag_all)
    if records and len(records) == len(options):
        tag = tag_all or len(records) > 1

        def dump_branch(value: Any) -> Any:
            body = _record_dumper(type(value), tag_all)(value)
            return (value.avro_name, body) if tag else body

        return dump_branch
    return lambda value: _dump(value, annotation)


def _single_dumper(tp: Any, *, tag: bool, tag_all: bool) -> Converter | None:
    if _is_record(tp):
        own = _record_dumper(tp, tag_all)

        def dump_record(value: Any) -> Any:
            cls = type(value)
            body = own(value) if cls is tp else _record_dumper(cls, tag_all)(value)
            return (value.avro_name, body) if tag else body

        return dump_record
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _enum_value
    if _is_sequence(tp):
        inner = _value_dumper(item_type(tp), tag_all)
        if inner is None:
            return list
        return lambda value: [None if item is None else inner(item) for item in value]
    if _is_plain(tp):
        return None
    return lambda value: _dump(value, tp)


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _dump(value: Any, annotation: Any) -> Any:
    """The generic (uncompiled) form, for annotations a plan cannot specialise."""
    if value is None:
        return None
    if isinstance(value, AvroRecord):
        body = to_avro(value)
        if len(record_branches(annotation)) > 1:
            return (value.avro_name, body)
        return body
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        inner = item_type(annotation)
        return [_dump(item, inner) for item in value]
    return value


# --------------------------------------------------------------------------- loading

_LOADERS: dict[type[AvroRecord], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def from_avro(cls: type[R], data: dict[str, Any]) -> R:
    """Build ``cls`` from a fastavro-read dict. Keys the model does not know are
    ignored, as an Avro reader ignores writer fields missing from its schema.

    The whole record is validated by pydantic in one call (nested records as nested
    dicts); only a branch of a multi-record union is built on its own first, so
    pydantic never has to try the branches one by one.
    """
    return cls.model_validate(_record_loader(cls)(data))


def _load_fields(cls: type[AvroRecord], data: dict[str, Any]) -> dict[str, Any]:
    return _record_loader(cls)(data)


def _record_loader(cls: type[AvroRecord]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    found = _LOADERS.get(cls)
    if found is not None:
        return found
    plan: list[tuple[str, Converter]] = []
    names = frozenset(cls.model_fields)

    def load(data: dict[str, Any]) -> dict[str, Any]:
        if not plan and data.keys() <= names:
            return data
        out = {key: value for key, value in data.items() if key in names}
        for name, convert in plan:
            value = out.get(name)
            if value is not None:
                out[name] = convert(value)
        return out

    _LOADERS[cls] = load
    for name, field in cls.model_fields.items():
        convert = _value_loader(field.annotation)
        if convert is not None:
            plan.append((name, convert))
    return load


def _value_loader(annotation: Any) -> Converter | None:
    """How to prepare one non-None read value for validation (None: as it is)."""
    bare = unwrap(annotation)
    branches = record_branches(bare)
    if branches:
        return _union_loader(branches)
    if _is_sequence(bare):
        inner = _value_loader(item_type(bare))
        if inner is None:
            return None
        return lambda value: [None if item is None else inner(item) for item in value]
    return None


def _union_loader(branches: list[type[AvroRecord]]) -> Converter:
    by_name: dict[str, type[AvroRecord]] = {}
    for branch in branches:
        by_name.setdefault(branch.avro_name, branch)
        by_name.setdefault(branch.avro_name.rpartition(".")[2], branch)
    single = branches[0] if len(branches) == 1 else None
    by_fields = {frozenset(b.model_fields): b for b in branches}

    def load(value: Any) -> Any:
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
            name, body = value
            branch = by_name.get(name)
            if branch is None:
                raise ValueError(
                    f"record {name!r} is not allowed here; expected one of {branches}")
            return _record_loader(branch)(body) if single else from_avro(branch, body)
        if isinstance(value, dict):
            if single is not None:
                return _record_loader(single)(value)
            match = by_fields.get(frozenset(value))
            if match is None or sum(set(b.model_fields) == set(value) for b in branches) != 1:
                raise ValueError(
                    f"cannot tell which of {[b.__name__ for b in branches]} this dict is; "
                    "read with return_record_name=True"
                )
            return from_avro(match, value)
        return value

    return load
