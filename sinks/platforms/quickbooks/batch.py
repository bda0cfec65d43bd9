"""QuickBooks ``/batch``: how single requests are packed into one and unpacked again.

Used by :class:`sinks.transport.coalesce.Coalescer` when a sink coalesces concurrent
requests (``LEDGERSTREAM_SINK_COALESCE``). Only queries and keyed creates/sparse
updates travel in a batch; reads by id, voids and deletes (which need ``operation``
query parameters) go alone. Each item's answer becomes the response the single
endpoint gives: ``{"<Entity>": record}``, ``{"QueryResponse": ...}``, or a 400 with
``{"Fault": ...}``, so the flows cannot tell the difference.

Intuit meters each batch item like a call and caps batch requests per realm and
minute, so batching saves round-trips, not rate budget; the sink leaves it off by
default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sinks.core.contract import (
    IDEMPOTENCY_NAMESPACE,
    PlatformRequest,
    PlatformResponse,
    uuid5_text,
)
from sinks.core.errors import TransientError
from sinks.platforms.quickbooks.spec import NAME

__all__ = ["MAX_ITEMS", "QboBatchCodec"]

#: Intuit's documented maximum of items per batch request.
MAX_ITEMS = 30

#: Entities the flows create or update, by their lower-case path segment.
ENTITIES = {e.lower(): e for e in ("Customer", "Invoice", "Payment", "CreditMemo",
                                   "RefundReceipt")}


def _entity(request: PlatformRequest) -> str | None:
    return ENTITIES.get(request.path.strip("/").lower())


class QboBatchCodec:
    max_items = MAX_ITEMS

    def accepts(self, request: PlatformRequest) -> bool:
        if request.method == "GET":
            return request.path == "/query" and "query" in request.query
        return (request.method == "POST" and _entity(request) is not None
                and isinstance(request.json, dict) and request.idempotency_key is not None
                and not {"operation", "include"} & set(request.query))

    def pack(self, requests: Sequence[PlatformRequest]) -> PlatformRequest:
        items: list[dict[str, Any]] = []
        names: list[str] = []
        for number, request in enumerate(requests):
            entity = _entity(request)
            if request.method == "GET" or entity is None:
                items.append({"bId": str(number), "Query": request.query["query"]})
                names.append("query:" + request.query["query"])
            else:
                body = dict(request.json)
                items.append({"bId": str(number),
                              "operation": "update" if body.get("Id") else "create",
                              entity: body})
                names.append(str(request.idempotency_key))
        # Same items, same key: a transport retry of this batch is answered from
        # Intuit's requestid replay store instead of writing again.
        key = uuid5_text(IDEMPOTENCY_NAMESPACE, "\x1f".join(["qbo-batch", *names]))
        minor = requests[0].query.get("minorversion")
        query = {"requestid": key, **({"minorversion": minor} if minor else {})}
        return PlatformRequest("POST", "/batch", "batch", query=query,
                               headers={"Accept": "application/json"},
                               json={"BatchItemRequest": items}, idempotency_key=key)

    def unpack(self, requests: Sequence[PlatformRequest], response: PlatformResponse
               ) -> list[PlatformResponse]:
        payload = response.json() or {}
        answers = {str(item.get("bId")): item for item in payload.get("BatchItemResponse", [])}
        stamp = payload.get("time")
        out = []
        for number, request in enumerate(requests):
            item = answers.get(str(number))
            if item is None:
                raise TransientError(f"batch answer has no item bId={number}", platform=NAME)
            if "Fault" in item:
                out.append(PlatformResponse.from_json(400, {"Fault": item["Fault"],
                                                            "time": stamp}))
            elif "QueryResponse" in item:
                out.append(PlatformResponse.from_json(200, {"QueryResponse":
                                                            item["QueryResponse"],
                                                            "time": stamp}))
            else:
                entity = _entity(request) or ""
                if entity not in item:
                    raise TransientError(f"batch item bId={number} carries no {entity}",
                                         platform=NAME)
                out.append(PlatformResponse.from_json(200, {entity: item[entity],
                                                            "time": stamp}))
        return out
