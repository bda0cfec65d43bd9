"""The base class of every contract record and the model <-> Avro-dict codec.

The codec is driven by the models' type annotations, not by hand-written per-class
code, so a new field needs no codec change. Records inside a union with more than one
record branch (the envelope's ``payload``) are written in fastavro's tuple notation
``(full_name, dict)`` so the writer never has to guess the branch; on the way back,
a ``(name, dict)`` tuple (``return_record_name=True``) or a plain dict (matched by its
exact field set) both work, which makes round trips exact.
"""

from __future__ import annotations

import types
from enum import Enum
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict

R = TypeVar("R", bound="AvroRecord")


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


def to_avro(model: AvroRecord) -> dict[str, Any]:
    """``model`` as a fastavro-ready dict (Decimal, date and datetime kept as objects)."""
    return {
        name: _dump(getattr(model, name), field.annotation)
        for name, field in type(model).model_fields.items()
    }


def _dump(value: Any, annotation: Any) -> Any:
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


def from_avro(cls: type[R], data: dict[str, Any]) -> R:
    """Build ``cls`` from a fastavro-read dict. Keys the model does not know are
    ignored, as an Avro reader ignores writer fields missing from its schema."""
    return cls.model_validate(_load_fields(cls, data))


def _load_fields(cls: type[AvroRecord], data: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _load(data[name], field.annotation)
        for name, field in cls.model_fields.items()
        if name in data
    }


def _load(value: Any, annotation: Any) -> Any:
    if value is None:
        return None
    branches = record_branches(annotation)
    if branches and isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        name, body = value
        for branch in branches:
            if name in (branch.avro_name, branch.avro_name.rpartition(".")[2]):
                return from_avro(branch, body)
        raise ValueError(f"record {name!r} is not allowed here; expected one of {branches}")
    if branches and isinstance(value, dict):
        if len(branches) == 1:
            return from_avro(branches[0], value)
        keys = set(value)
        matching = [b for b in branches if set(b.model_fields) == keys]
        if len(matching) != 1:
            raise ValueError(
                f"cannot tell which of {[b.__name__ for b in branches]} this dict is; "
                "read with return_record_name=True"
            )
        return from_avro(matching[0], value)
    if isinstance(value, list):
        inner = item_type(annotation)
        return tuple(_load(item, inner) for item in value)
    return value
