"""The webhook receiver: ``POST /webhooks/{tenant_id}``.

Order of checks, each answered with a clear JSON error and the body kept in
``webhook_dead_letter`` with the reason: body size (413) -> known tenant (404) ->
signature headers, timestamp within 5 minutes, HMAC (401) -> signature seen before (409
replay) -> JSON + contract (422; also sent to crm.dlq, since the sender is authenticated)
-> event id seen before (200, ``duplicate``, not published again) -> publish and await the
broker's acknowledgement (503 if it does not come: the sender retries) -> remember the
signature and event id -> 200 ``accepted``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from producers import metrics
from producers.kafka import dead_letter
from producers.publisher import AsyncPublisher, DeliveryError, Outgoing, Publisher
from producers.webhooks.models import WebhookBody, to_event
from producers.webhooks.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    StaleTimestampError,
    verify,
)

log = logging.getLogger("ledgerstream.webhooks")

KEPT_HEADERS = ("content-type", "user-agent", TIMESTAMP_HEADER.lower(),
                SIGNATURE_HEADER.lower())


@dataclass(frozen=True)
class ReceiverConfig:
    secrets: dict[str, list[str]]
    tolerance_s: int = 300
    max_body_bytes: int = 1_048_576


class Refused(Exception):
    def __init__(self, status: int, error: str, reason: str, *, to_dlq: bool = False) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason, self.to_dlq = status, error, reason, to_dlq


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['msg']}"
                     for e in exc.errors(include_url=False)[:10])


class Receiver:
    def __init__(self, config: ReceiverConfig, pool: AsyncConnectionPool,
                 publisher: AsyncPublisher) -> None:
        self.config = config
        self.pool = pool
        self.publisher = publisher

    async def handle(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        tenant = request.path_params["tenant_id"]
        body = await request.body()
        try:
            answer = await self._accept(tenant, request, body)
        except Refused as exc:
            log.warning("webhook for %s refused (%d): %s", tenant, exc.status, exc.reason)
            await self._keep(tenant, request, body, exc)
            answer = JSONResponse({"error": exc.error, "reason": exc.reason}, exc.status)
        except DeliveryError as exc:
            answer = JSONResponse({"error": "unavailable", "reason": str(exc)}, 503)
        metrics.WEBHOOK_REQUESTS.labels(str(answer.status_code)).inc()
        metrics.WEBHOOK_LATENCY.observe(time.perf_counter() - started)
        return answer

    async def _accept(self, tenant: str, request: Request, body: bytes) -> JSONResponse:
        if len(body) > self.config.max_body_bytes:
            raise Refused(413, "too_large", f"body over {self.config.max_body_bytes} bytes")
        secrets = self.config.secrets.get(tenant)
        if not secrets:
            raise Refused(404, "unknown_tenant", f"no webhook secret for tenant {tenant!r}")
        try:
            sig = verify(secrets, request.headers.get(TIMESTAMP_HEADER),
                         request.headers.get(SIGNATURE_HEADER), body, now=time.time(),
                         tolerance_s=self.config.tolerance_s)
        except StaleTimestampError as exc:
            raise Refused(401, "stale_timestamp", str(exc)) from None
        except SignatureError as exc:
            raise Refused(401, "bad_signature", str(exc)) from None
        async with self.pool.connection() as conn:
            seen = await (await conn.execute(
                "SELECT 1 FROM webhook_seen WHERE signature = %s", (sig,))).fetchone()
        if seen:
            raise Refused(409, "replay", "this signed request was already accepted")
        try:
            parsed = WebhookBody.model_validate_json(body)
            event, customer = to_event(tenant, parsed)
        except ValidationError as exc:
            raise Refused(422, "invalid_body", _errors(exc), to_dlq=True) from None
        except ValueError as exc:
            raise Refused(422, "invalid_body", str(exc), to_dlq=True) from None
        async with self.pool.connection() as conn:
            dup = await (await conn.execute(
                "SELECT 1 FROM webhook_seen WHERE tenant_id = %s AND delivery_id = %s",
                (tenant, parsed.id))).fetchone()
        if dup:
            return JSONResponse({"status": "duplicate", "event_id": event.event_id}, 200)
        await self.publisher.publish(Outgoing(event, customer))
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO webhook_seen (tenant_id, delivery_id, signature, event_id) "
                "VALUES (%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                (tenant, parsed.id, sig, event.event_id))
        return JSONResponse({"status": "accepted", "event_id": event.event_id}, 200)

    async def _keep(self, tenant: str, request: Request, body: bytes, exc: Refused) -> None:
        headers = {k: v for k, v in request.headers.items() if k.lower() in KEPT_HEADERS}
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO webhook_dead_letter (tenant_id, status_code, reason, headers, body)"
                " VALUES (%s,%s,%s,%s,%s)",
                (tenant, exc.status, f"{exc.error}: {exc.reason}", Jsonb(headers),
                 body[: self.config.max_body_bytes]))
        metrics.WEBHOOK_DEAD_LETTERS.labels(exc.error).inc()
        if exc.to_dlq:
            sender_id = None  # the DLQ record is keyed by the sender's event id, if legible
            with suppress(ValueError, AttributeError):
                sender_id = str(json.loads(body).get("id"))
            await self.publisher.publish_dead_letter(dead_letter(
                topic=f"webhooks/{tenant}", error=exc.reason, error_class=exc.error,
                stage="webhooks", key=None, value=body, event_id=None,
                tenant_id=tenant), key=sender_id)


def create_app(config: ReceiverConfig, database_url: str, publisher: Publisher) -> Starlette:
    """The ASGI app; the pool and the delivery-report thread live with its lifespan."""
    holder: dict[str, Receiver] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(database_url, min_size=1, max_size=10, open=False,
                                   kwargs={"autocommit": True})
        await pool.open()
        async_pub = AsyncPublisher(publisher)
        holder["r"] = Receiver(config, pool, async_pub)
        try:
            yield
        finally:
            async_pub.close()
            await pool.close()

    async def receive(request: Request) -> JSONResponse:
        return await holder["r"].handle(request)

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def ready(_request: Request) -> JSONResponse:
        """Ready once the lifespan opened the pool and PostgreSQL answers."""
        receiver = holder.get("r")
        if receiver is None:
            return JSONResponse({"status": "not ready", "checks": {"app": "starting"}},
                                status_code=503)
        try:
            async with receiver.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:  # any failure to answer means not ready
            return JSONResponse({"status": "not ready",
                                 "checks": {"postgres": f"{type(exc).__name__}: {exc}"}},
                                status_code=503)
        return JSONResponse({"status": "ready", "checks": {"app": "ok", "postgres": "ok"}})

    routes: list[Any] = [Route("/webhooks/{tenant_id}", receive, methods=["POST"]),
                         Route("/healthz", health), Route("/readyz", ready)]
    return Starlette(routes=routes, lifespan=lifespan)
