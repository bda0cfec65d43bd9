"""Building models from Avro-read dicts *without* validating them again.

:func:`schemas.models.from_avro` validates every value of a record (the money checks
alone are three Python calls per Decimal). That is right at a trust boundary: a CRM
event entering the pipeline. It is wasted work where the record was built from a
validated model by our own code and only crossed Kafka as Avro: a ``ledger.entries``
record, written by the processor from a validated :class:`LedgerEntry` and read back
by each sink, where validation was 40-50 % of the decode (about 115 of 220 us per
invoice entry; the sink's largest single CPU cost).

What Avro itself guarantees on the way back (the types, the decimal scale, the enum
symbols, which union branch) is kept: values come out of fastavro as the schema says.
What it does not re-check is the models' own rules (ISO codes, sign rules, the
cross-field ``model_validator`` checks), which the writer's model already passed. The
result equals what :func:`from_avro` builds from the same dict (tested on every event
kind the CRM simulator writes); use it only for records our own processor wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar, get_origin

from schemas.models.base import (
    AvroRecord,
    item_type,
    record_branches,
    union_args,
    unwrap,
)

__all__ = ["from_avro_unchecked"]

R = TypeVar("R", bound=AvroRecord)
_Build = Callable[[Any], Any]
_BUILDERS: dict[type[AvroRecord], Callable[[dict[str, Any]], Any]] = {}
_NONE = type(None)


def from_avro_unchecked(cls: type[R], data: dict[str, Any]) -> R:
    """``cls`` from a fastavro-read dict (``return_record_name=True``), not re-validated;
    keys the model does not know are ignored, as :func:`from_avro` ignores them."""
    built: R = _builder(cls)(data)
    return built


def _builder(cls: type[AvroRecord]) -> Callable[[dict[str, Any]], Any]:
    found = _BUILDERS.get(cls)
    if found is not None:
        return found
    plan: list[tuple[str, _Build]] = []
    names = frozenset(cls.model_fields)
    defaults = {name: field.get_default(call_default_factory=True)
                for name, field in cls.model_fields.items() if not field.is_required()}
    new = cls.__new__
    set_ = object.__setattr__

    def build(data: dict[str, Any]) -> Any:
        # What ``model_construct`` does, without its per-call walk over every field
        # (which cost as much as validating). Read with today's schema, the dict has
        # exactly the model's fields and is fastavro's fresh one: it becomes the
        # record's own ``__dict__`` once the values that need it are converted.
        if data.keys() == names:
            values = data
        else:  # an older writer: the defaults of the fields it lacked
            values = {**defaults, **{k: v for k, v in data.items() if k in names}}
        for name, convert in plan:
            value = values.get(name)
            if value is not None:
                values[name] = convert(value)
        record = new(cls)
        set_(record, "__dict__", values)
        set_(record, "__pydantic_fields_set__", set(values))
        set_(record, "__pydantic_extra__", None)
        set_(record, "__pydantic_private__", None)
        return record

    _BUILDERS[cls] = build  # before the fields: a record may nest its own kind
    for name, field in cls.model_fields.items():
        convert = _converter(field.annotation)
        if convert is not None:
            plan.append((name, convert))
    return build


def _converter(annotation: Any) -> _Build | None:
    """How to turn one non-None read value into the field's Python value (None: as
    fastavro gave it: str, int, bool, bytes, Decimal, date, datetime)."""
    bare = unwrap(annotation)
    branches = record_branches(bare)
    if len(branches) == 1 and union_args(bare) is None:
        return _builder(branches[0])
    if branches:  # fastavro names a union's record branch: ``(name, dict)``
        return _union(branches)
    plain = [unwrap(b) for b in (union_args(bare) or (bare,)) if b is not _NONE]
    if len(plain) == 1:
        only = plain[0]
        if isinstance(only, type) and issubclass(only, Enum):
            return only
        sequence = get_origin(only)
        if sequence in (tuple, list):
            inner = _converter(item_type(only))
            if inner is None:
                return sequence
            return lambda value: sequence(None if v is None else inner(v) for v in value)
    return None


def _union(branches: list[type[AvroRecord]]) -> _Build:
    builders: dict[str, Callable[[dict[str, Any]], Any]] = {}
    for branch in branches:
        builders.setdefault(branch.avro_name, _builder(branch))
        builders.setdefault(branch.avro_name.rpartition(".")[2], _builder(branch))

    def build(value: Any) -> Any:
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
            build_branch = builders.get(value[0])
            if build_branch is None:
                raise ValueError(f"record {value[0]!r} is not allowed here; expected one "
                                 f"of {[b.__name__ for b in branches]}")
            return build_branch(value[1])
        if isinstance(value, dict) and len(branches) == 1:
            return builders[branches[0].avro_name](value)
        raise ValueError("a multi-record union must be read with return_record_name=True"
                         if isinstance(value, dict) else f"unexpected union value {value!r}")

    return build
