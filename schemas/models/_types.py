"""Annotated field types that carry their Avro meaning.

The metadata objects (:class:`AvroDecimal`, :class:`AvroInt`) do two jobs: the
validators quantize/check values so fastavro never sees a Decimal whose scale or
precision the schema cannot hold, and :mod:`schemas.contract` reads them to compare a
model with its ``.avsc`` file.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StringConstraints

from schemas.currencies import is_currency


@dataclass(frozen=True)
class AvroDecimal:
    """``bytes`` with logicalType decimal(precision, scale)."""

    precision: int
    scale: int
    _quantum: Decimal = field(init=False, repr=False, compare=False)
    _limit: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # precomputed once: check() runs for every Decimal of every validated record
        object.__setattr__(self, "_quantum", Decimal(1).scaleb(-self.scale))
        object.__setattr__(self, "_limit", Decimal(10) ** (self.precision - self.scale))

    def check(self, value: Decimal) -> Decimal:
        """Pad to exactly ``scale`` places; refuse to round money silently."""
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number")
        try:
            quantized = value.quantize(self._quantum)
        except InvalidOperation:
            raise ValueError(
                f"{value} does not fit decimal({self.precision},{self.scale})"
            ) from None
        if quantized != value:
            raise ValueError(
                f"{value} has more than {self.scale} decimal places; round it explicitly "
                f"(schemas.models.quantize) before building the model"
            )
        if not -self._limit < quantized < self._limit:
            raise ValueError(f"{value} does not fit decimal({self.precision},{self.scale})")
        return quantized if quantized else quantized.copy_abs()


@dataclass(frozen=True)
class AvroInt:
    """Marks a Python ``int`` stored as Avro ``int`` (32-bit) rather than ``long``."""


def _no_float(value: Any) -> Any:
    if isinstance(value, float | bool):
        raise ValueError("money and rates must be Decimal, int or str, never float or bool")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def _fraction(value: Decimal) -> Decimal:
    if not Decimal(0) <= value <= Decimal(1):
        raise ValueError(f"a rate is a fraction between 0 and 1 (0.0825 is 8.25 %), got {value}")
    return value


AMOUNT_SPEC = AvroDecimal(18, 4)
RATE_SPEC = AvroDecimal(12, 6)
_NO_FLOAT = BeforeValidator(_no_float)

Amount = Annotated[Decimal, _NO_FLOAT, AMOUNT_SPEC, AfterValidator(AMOUNT_SPEC.check)]
"""A signed money amount, decimal(18,4): 3-decimal currencies fit with a spare place."""
_AMOUNT = AfterValidator(AMOUNT_SPEC.check)
_RATE = AfterValidator(RATE_SPEC.check)
_NON_NEG = AfterValidator(_non_negative)
NonNegativeAmount = Annotated[Decimal, _NO_FLOAT, AMOUNT_SPEC, _AMOUNT, _NON_NEG]
Quantity = Annotated[Decimal, _NO_FLOAT, AMOUNT_SPEC, _AMOUNT, _NON_NEG]
"""A line quantity (hours, parts), decimal(18,4), never negative: returns are credit notes."""
Rate = Annotated[Decimal, _NO_FLOAT, RATE_SPEC, _RATE, AfterValidator(_fraction)]
"""A tax rate as a fraction, decimal(12,6)."""


def _currency(value: str) -> str:
    if not is_currency(value):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (3 upper-case letters)")
    return value


def _country(value: str) -> str:
    if len(value) != 2 or not value.isascii() or not value.isalpha() or not value.isupper():
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{value!r} is not a UUID") from None


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Currency = Annotated[str, AfterValidator(_currency)]
Country = Annotated[str, AfterValidator(_country)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=255)]
"""An identifier from the CRM; opaque, non-empty."""
Text = Annotated[str, StringConstraints(min_length=1)]
EventId = Annotated[str, AfterValidator(_uuid)]
"""A UUID in canonical lower-case text form (Avro ``string``)."""
Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
"""timestamp-micros; must carry a time zone and is normalised to UTC."""
Int32 = Annotated[int, AvroInt()]


def quantize(
    value: Decimal, scale: int = AMOUNT_SPEC.scale, rounding: str = "ROUND_HALF_UP"
) -> Decimal:
    """Round ``value`` to ``scale`` places explicitly, e.g. a computed tax before it goes
    into a model (the models refuse to round money on their own)."""
    return value.quantize(Decimal(1).scaleb(-scale), rounding=rounding)
