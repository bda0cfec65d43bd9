"""OData v4 protocol mechanics shared by OData-speaking platforms (Business Central,
Dataverse, SAP S/4HANA V4 services, Acumatica's OData endpoint).

Everything here is pure: string building for ``$filter`` literals and entity keys,
the ``If-Match`` header of optimistic concurrency, the JSON ``$batch`` format
(OData 4.01 §19 "JSON batch": ``{"requests": [{id, method, url, headers, body,
atomicityGroup}]}`` answered by ``{"responses": [{id, status, headers, body}]}``), and
reading the standard error body ``{"error": {"code", "message"}}``. Platform modules
use these helpers so that they read like mapping tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sinks.core.contract import PlatformRequest, PlatformResponse

__all__ = [
    "BatchPart",
    "ODataError",
    "batch_request",
    "collection",
    "entity_path",
    "etag_of",
    "filter_all",
    "filter_eq",
    "if_match",
    "odata_error",
    "parse_batch",
    "quote",
]

_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def quote(value: str) -> str:
    """An OData string literal: single quotes doubled, the whole wrapped in quotes."""
    return "'" + value.replace("'", "''") + "'"


def filter_eq(field_name: str, value: str) -> str:
    """``field eq 'value'`` with the literal escaped."""
    return f"{field_name} eq {quote(value)}"


def filter_all(*pairs: tuple[str, str]) -> str:
    """``a eq 'x' and b eq 'y'``: a conjunction of escaped equality tests."""
    return " and ".join(filter_eq(name, value) for name, value in pairs)


def entity_path(entity_set: str, key: str) -> str:
    """``set(key)``: GUID keys go bare (``customers(5d1e...)``), others quoted."""
    return f"{entity_set}({key})" if _GUID.fullmatch(key) else f"{entity_set}({quote(key)})"


def if_match(etag: str | None) -> dict[str, str]:
    """The ``If-Match`` header for an update or delete; ``*`` when no ETag is known
    (which an OData service treats as "any version": only use it deliberately)."""
    return {"If-Match": etag or "*"}


def etag_of(record: Mapping[str, Any], response: PlatformResponse | None = None) -> str | None:
    """The entity's ETag: ``@odata.etag`` in the body, else the ``ETag`` header."""
    tag = record.get("@odata.etag")
    if isinstance(tag, str) and tag:
        return tag
    if response is not None:
        return response.headers.get("etag")
    return None


def collection(response: PlatformResponse) -> list[dict[str, Any]]:
    """The ``value`` array of a collection response (empty when absent)."""
    body = response.json() or {}
    values = body.get("value", []) if isinstance(body, dict) else []
    return [v for v in values if isinstance(v, dict)]


@dataclass(frozen=True)
class ODataError:
    code: str | None
    message: str


def odata_error(response: PlatformResponse) -> ODataError | None:
    """The ``{"error": {"code", "message"}}`` body of a failed call, if it has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    error = body["error"]
    message = error.get("message")
    if isinstance(message, dict):  # OData V2 style {"lang", "value"}
        message = message.get("value")
    return ODataError(error.get("code"), str(message or ""))


@dataclass(frozen=True)
class BatchPart:
    """One operation of a JSON ``$batch``, with the relative URL of the service root."""

    id: str
    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] | None = None


def batch_request(
    parts: Sequence[BatchPart],
    *,
    purpose: str,
    atomic: bool,
    path: str = "$batch",
    max_parts: int = 100,
    idempotency_key: str | None = None,
) -> PlatformRequest:
    """A JSON ``$batch`` request. ``atomic`` puts every part in one atomicity group
    (all-or-nothing, like a change set); ``max_parts`` is the service's limit."""
    if not parts:
        raise ValueError("a $batch needs at least one operation")
    if len(parts) > max_parts:
        raise ValueError(f"a $batch holds at most {max_parts} operations, got {len(parts)}")
    requests = []
    for part in parts:
        item: dict[str, Any] = {"id": part.id, "method": part.method.upper(), "url": part.url}
        headers = dict(part.headers or {})
        if part.body is not None:
            headers.setdefault("Content-Type", "application/json")
            item["body"] = part.body
        if headers:
            item["headers"] = headers
        if atomic:
            item["atomicityGroup"] = "g1"
        requests.append(item)
    return PlatformRequest(
        "POST",
        path,
        purpose,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        json={"requests": requests},
        idempotency_key=idempotency_key,
    )


def parse_batch(response: PlatformResponse) -> dict[str, PlatformResponse]:
    """Each part's response by its ``id``, as :class:`PlatformResponse` objects."""
    body = response.json() or {}
    out: dict[str, PlatformResponse] = {}
    for item in body.get("responses", []) if isinstance(body, dict) else []:
        part_body = item.get("body")
        raw = b"" if part_body is None else json.dumps(part_body).encode()
        out[str(item.get("id"))] = PlatformResponse(
            int(item.get("status", 0)), dict(item.get("headers") or {}), raw
        )
    return out
