"""Mechanics shared by resource-wrapped JSON REST platforms (Sage Accounting, Acumatica).

These platforms have the same protocol shape, so their platform modules should not
each re-implement it:

* amounts travel as JSON numbers, so a :class:`~decimal.Decimal` must be rounded with
  the platform's own rule *before* it becomes a float (:func:`json_number`);
* a write body names one resource (``{"sales_invoice": {...}}`` in Sage,
  ``{"FieldName": {"value": ...}}`` wrappers in Acumatica): :func:`wrap`/:func:`unwrap`;
* list endpoints return either an envelope with the records under a key (Sage's
  ``$items``) or a bare array (Acumatica): :func:`items_of`;
* "find by our reference" is a GET whose answer may hold several near matches (both
  APIs search by substring), so the caller must pick the exact one and treat two exact
  matches as a data problem, not pick one at random: :func:`lookup_one`;
* vendor errors arrive as a list of entries (Sage ``[{"$dataCode": ...}]``) or an
  object (Acumatica ``{"message", "exceptionMessage"}``): :func:`error_entries`.

Nothing here does I/O: :func:`lookup_one` is a sub-flow for ``yield from`` inside a
platform's :meth:`~sinks.core.contract.Platform.plan`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sinks.core.contract import Flow, PlatformRequest, PlatformResponse
from sinks.core.errors import PayloadRejectedError

__all__ = [
    "error_entries",
    "exact_quantity_price",
    "hex_key",
    "items_of",
    "json_number",
    "lookup_one",
    "unwrap",
    "wrap",
]


def json_number(value: Decimal, places: int = 2, rounding: str = ROUND_HALF_UP) -> float:
    """``value`` rounded to ``places`` with ``rounding``, as the JSON number a body needs.

    Rounding happens on the Decimal, so the float only ever carries a value that has an
    exact short decimal representation (``float(Decimal("89.99"))`` prints ``89.99``).
    """
    quantum = Decimal(1).scaleb(-places)
    return float(value.quantize(quantum, rounding=rounding))


def exact_quantity_price(quantity: Decimal, unit_price: Decimal, amount: Decimal
                         ) -> tuple[Decimal, Decimal, bool]:
    """Quantity and unit price whose product rounds (half-up, cents) to ``amount``.

    Both Sage and Acumatica recompute a line's amount from quantity x unit price, so a
    CRM that rounded its line amount differently would drift by a cent. The CRM amount
    wins: the unit price is re-derived to 4 places, and if even that cannot reproduce
    the amount, ``(1, amount)`` is returned with ``False`` (the caller keeps the original
    figures in the line's description).
    """
    cent = Decimal("0.01")
    target = amount.quantize(cent, rounding=ROUND_HALF_UP)
    if (quantity * unit_price).quantize(cent, rounding=ROUND_HALF_UP) == target:
        return quantity, unit_price, True
    if quantity:
        derived = (target / quantity).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        if (quantity * derived).quantize(cent, rounding=ROUND_HALF_UP) == target:
            return quantity, derived, True
    return Decimal(1), target, False


def hex_key(key: str) -> str:
    """A UUID idempotency key without hyphens (32 hex characters), as Sage asks."""
    text = key.replace("-", "").lower()
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a UUID key: {key!r}")
    return text


def wrap(resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """``{resource: body}`` with ``None`` values dropped (absent ≠ null on these APIs)."""
    return {resource: {k: v for k, v in body.items() if v is not None}}


def unwrap(response: PlatformResponse, resource: str | None = None) -> dict[str, Any]:
    """The record in a response body, unwrapping ``{resource: {...}}`` when present."""
    payload = response.json()
    if resource is not None and isinstance(payload, dict) and isinstance(
        payload.get(resource), dict
    ):
        payload = payload[resource]
    if not isinstance(payload, dict):
        raise PayloadRejectedError(
            f"expected a JSON object in the response, got {type(payload).__name__}",
            status=response.status,
        )
    return payload


def items_of(payload: Any, key: str = "$items") -> list[dict[str, Any]]:
    """Records of a list response: ``payload[key]`` of an envelope, or a bare array."""
    if isinstance(payload, list):
        return [item for item in payload if isinstance(item, dict)]
    if isinstance(payload, dict) and isinstance(payload.get(key), list):
        return [item for item in payload[key] if isinstance(item, dict)]
    return []


def lookup_one(
    request: PlatformRequest,
    matches: Callable[[dict[str, Any]], bool],
    *,
    what: str,
    items_key: str = "$items",
    platform: str = "",
) -> Flow[dict[str, Any] | None]:
    """Send ``request`` (a search), return the single record for which ``matches`` holds.

    ``None`` when nothing matches; two exact matches raise :class:`PayloadRejectedError`
    (the platform already holds duplicates a person must merge; writing a third would
    make it worse).
    """
    response = yield request
    found = [item for item in items_of(response.json(), items_key) if matches(item)]
    if len(found) > 1:
        ids = ", ".join(str(item.get("id", "?")) for item in found)
        raise PayloadRejectedError(
            f"{len(found)} records match {what} ({ids}); merge them on the platform first",
            platform=platform,
        )
    return found[0] if found else None


def error_entries(body: bytes | str) -> list[dict[str, Any]]:
    """The error entries of a vendor error body: a list as is, an object as one entry,
    anything unparseable as none."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        return []
    if isinstance(payload, list):
        return [entry for entry in payload if isinstance(entry, dict)]
    if isinstance(payload, dict):
        return [payload]
    return []


# --------------------------------------------------------------------------- value-wrapped
# Contract-based endpoints (Acumatica) wrap every field: ``{"Qty": {"value": 1.5}}``.


def wrap_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``{"Field": {"value": v}}`` for scalars; nested dicts wrap recursively, lists of
    dicts become lists of wrapped records; ``None`` values are dropped."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            out[name] = wrap_values(value)
        elif isinstance(value, list):
            out[name] = [wrap_values(item) for item in value]
        else:
            out[name] = {"value": value}
    return out


def unwrap_values(record: Any) -> Any:
    """The inverse of :func:`wrap_values` on a response record (``id``, ``rowNumber``
    and other plain members are kept as they are)."""
    if isinstance(record, list):
        return [unwrap_values(item) for item in record]
    if not isinstance(record, dict):
        return record
    if set(record) <= {"value", "error"} and "value" in record:
        return record["value"]
    if set(record) == {"error"}:
        return None
    return {name: unwrap_values(value) for name, value in record.items()}


def field_errors(record: Any, path: str = "") -> dict[str, str]:
    """``{"Details[0].Account": "message"}`` for every ``error`` inside a wrapped record."""
    found: dict[str, str] = {}
    if isinstance(record, dict):
        if isinstance(record.get("error"), str) and record["error"]:
            found[path or "entity"] = record["error"]
        for name, value in record.items():
            if name != "error":
                found.update(field_errors(value, f"{path}.{name}" if path else name))
    elif isinstance(record, list):
        for index, item in enumerate(record):
            found.update(field_errors(item, f"{path}[{index}]"))
    return found


# --------------------------------------------------------------------------- long-running


def await_operation(
    start: PlatformRequest,
    status_request: Callable[[str], PlatformRequest],
    *,
    max_polls: int = 20,
    platform: str = "",
) -> Flow[PlatformResponse]:
    """Send an action that may answer ``202 Accepted`` + ``Location``; poll that location
    until it stops answering 202 (Acumatica answers 204 when the action is done).

    Returns the final response. Too many polls is a :class:`TransientError`: the action
    is still running, and retrying the event re-checks the document's state first.
    """
    from sinks.core.errors import TransientError

    response = yield start
    polls = 0
    while response.status == 202:
        location = response.headers.get("location")
        if not location:
            return response
        if polls >= max_polls:
            raise TransientError(
                f"{start.purpose}: still running after {max_polls} polls", platform=platform)
        polls += 1
        response = yield status_request(location)
    return response


# --------------------------------------------------------------------------- cookie session


def session_cookie(response: PlatformResponse, name: str) -> str:
    """The value of cookie ``name`` set by a login response (``Set-Cookie`` headers arrive
    joined by commas once lower-cased into one mapping entry)."""
    raw = response.headers.get("set-cookie", "")
    for part in raw.replace(",", ";").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    raise ValueError(f"login response set no {name} cookie")
