"""The webhook body a CRM sends, and its translation into the contract envelope."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from producers.events import aggregate_id_of, build_event, check_event_type
from schemas.models import PAYLOAD_TYPES, EventSource, FinancialEvent, Op, Payload

_NS = uuid.UUID("b1d4c0a2-6a3e-4c59-8f0e-2f6f0d4f7a31")


class WebhookBody(BaseModel):
    """``{"id": "evt_1", "type": "invoice.sent", "occurred_at": "...", "version": 3,
    "data": {<the Invoice>}}``; deletes send ``aggregate_id`` and ``customer_id`` instead
    of ``data``. ``id`` is the sender's event id: a redelivery repeats it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=255)
    type: str
    occurred_at: AwareDatetime
    version: int = Field(ge=0)
    aggregate_id: str | None = None
    customer_id: str | None = None
    correlation_id: str | None = None
    data: dict[str, Any] | None = None


def event_id_for(tenant_id: str, delivery_id: str) -> str:
    """Same sender event, same envelope id: redeliveries dedupe downstream."""
    return str(uuid.uuid5(_NS, f"{tenant_id}|{delivery_id}"))


def to_event(tenant_id: str, body: WebhookBody) -> tuple[FinancialEvent, str | None]:
    """The envelope and the customer id to key it by. Raises ValueError (incl. pydantic's
    ValidationError) with the reason when the body does not fit the contract."""
    agg = check_event_type(body.type.partition(".")[0].upper(), body.type)
    payload: Payload | None = None
    if body.data is not None:
        record = PAYLOAD_TYPES[agg]
        try:
            payload = record.model_validate(body.data)  # type: ignore[assignment]
        except ValidationError as exc:
            details = "; ".join(
                f"data.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)[:10])
            raise ValueError(f"data is not a valid {record.__name__}: {details}") from None
    delete = body.type.endswith(".deleted")
    if payload is None and not delete:
        raise ValueError(f"{body.type} needs 'data' with the {PAYLOAD_TYPES[agg].__name__}")
    if payload is not None:
        agg_id = aggregate_id_of(payload)
    elif body.aggregate_id:
        agg_id = body.aggregate_id
    else:
        raise ValueError("a delete needs 'aggregate_id'")
    event = build_event(
        tenant_id=tenant_id, aggregate_type=agg, aggregate_id=agg_id, event_type=body.type,
        version=body.version, occurred_at=body.occurred_at, source=EventSource.WEBHOOK,
        payload=payload, event_id=event_id_for(tenant_id, body.id),
        correlation_id=body.correlation_id)
    customer = event.customer_id or body.customer_id
    if event.op is Op.DELETE and customer is None and agg.value not in ("CUSTOMER", "TAX_RATE"):
        raise ValueError("a document delete needs 'customer_id' (the message key)")
    return event, customer
