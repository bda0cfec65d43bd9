"""A minimal platform and an in-memory API with idempotency keys, for runtime tests.

The runtime's guarantees (offsets with the map in one transaction, seek on assign,
dead letters, paused tenants) do not depend on any real vendor, so they are tested
against this small, fully controllable one; the vendor platforms have their own
suites against their sandboxes.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from sinks.core.contract import (
    Platform,
    PlatformRequest,
    PlatformResponse,
    PlatformSpec,
    SinkContext,
    WireProtocol,
    WriteResult,
)
from sinks.core.errors import PermanentError, SinkError


class EchoPlatform(Platform):
    spec = PlatformSpec(name="echo", display_name="Echo", protocol=WireProtocol.REST_JSON,
                        supports_idempotency_key=True)

    def plan(self, entry: Any, context: SinkContext
             ) -> Generator[PlatformRequest, PlatformResponse, WriteResult]:
        event = entry.event
        customer_key = f"customer:{getattr(event.payload, 'customer_id', '')}"
        related = {}
        if customer_key not in context.external_ids and customer_key != "customer:":
            response = yield PlatformRequest(
                "POST", "/customers", "create customer",
                json={"crm_id": customer_key}, headers={"Idempotency-Key":
                                                        context.key_for("echo", "customer")},
            )
            related[customer_key] = response.json()["id"]
        response = yield PlatformRequest(
            "POST", "/documents", "write document",
            json={"event_id": str(event.event_id), "kind": str(event.aggregate_type),
                  "crm_id": str(event.aggregate_id), "op": str(event.op),
                  "customer": context.external_ids.get(customer_key) or related.get(customer_key)},
            headers={"Idempotency-Key": context.key_for("echo")},
        )
        body = response.json()
        return WriteResult(external_id=body["id"], version=str(body["version"]), raw=body,
                           related=related)

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        if response.status == 422:
            return PermanentError(response.json()["message"], platform="echo", status=422)
        return super().classify_error(response)


@dataclass
class EchoApi:
    """The platform's state. Thread-safe; dedupes by Idempotency-Key like real APIs."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    fail_next: int = 0
    drop_next: int = 0
    reject_crm_ids: set[str] = field(default_factory=set)
    revoked_tenants: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, tenant: str):
        def handle(request: httpx.Request) -> httpx.Response:
            with self.lock:
                self.calls[request.url.path] += 1
                if tenant in self.revoked_tenants:
                    return httpx.Response(403, json={"message": "grant revoked"})
                if self.fail_next > 0:
                    self.fail_next -= 1
                    return httpx.Response(503, json={"message": "try later"})
                key = request.headers["Idempotency-Key"]
                if key in self.by_key:
                    return httpx.Response(200, json=self.by_key[key])
                body = json.loads(request.content)
                if body.get("crm_id") in self.reject_crm_ids:
                    return httpx.Response(422, json={"message": f"rejected {body['crm_id']}"})
                if request.url.path == "/customers":
                    reply = {"id": f"C{len(self.customers) + 1}"}
                    self.customers[reply["id"]] = body["crm_id"]
                else:
                    reply = {"id": f"D{len(self.documents) + 1}", "version": 0}
                    self.documents[reply["id"]] = {**body, "tenant": tenant}
                self.by_key[key] = reply
                if self.drop_next > 0:
                    self.drop_next -= 1
                    raise httpx.RemoteProtocolError("connection dropped after the write")
                return httpx.Response(201, json=reply)

        return handle

    def event_ids(self) -> Counter[str]:
        return Counter(doc["event_id"] for doc in self.documents.values())
