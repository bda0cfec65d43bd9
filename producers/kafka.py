"""The Kafka producer every runtime uses, and the dead-letter record it sends.

Idempotent (``enable.idempotence`` implies acks=all and at most 5 in-flight requests per
connection, with ordering kept), so broker-side retries never duplicate or reorder a key.
"""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Producer

from schemas.models import DeadLetter

PERMANENT_DELIVERY_ERRORS = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_MSG_SIZE,
    KafkaError.INVALID_RECORD,
    -174,  # librdkafka's local _MSG_SIZE_TOO_LARGE (record above message.max.bytes)
})
"""Delivery errors that are about the record itself: retrying cannot help, so the row is
dead-lettered. Everything else (timeouts, broker down, authorization) is the
environment's fault: the batch is rolled back and re-sent later."""


def producer_config(bootstrap: str, *, linger_ms: int = 5, client_id: str = "ledgerstream",
                    **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "message.timeout.ms": 120_000,
    }
    config.update(overrides)
    return config


def make_producer(bootstrap: str, **kwargs: Any) -> Producer:
    return Producer(producer_config(bootstrap, **kwargs))


def dead_letter(*, topic: str, error: BaseException | str, stage: str,
                key: bytes | None, value: bytes | None, event_id: str | None,
                tenant_id: str | None, error_class: str | None = None) -> DeadLetter:
    """A :class:`DeadLetter` naming what failed and why, with the raw bytes for replay."""
    if isinstance(error, BaseException):
        reason = "".join(traceback.format_exception_only(error)).strip()
        error_class = error_class or type(error).__name__
    else:
        reason = error
    return DeadLetter(
        topic=topic, partition=None, offset=None, key=key, value=value,
        error_class=error_class or "Error", reason=reason, stage=stage,
        failed_at=datetime.now(UTC), event_id=event_id, tenant_id=tenant_id,
    )
