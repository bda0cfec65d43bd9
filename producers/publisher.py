"""Publish envelopes and await the broker's acknowledgement (poller and webhooks).

The relay has its own batch loop; the poller and the webhook receiver only need "send
these, tell me when every one is acknowledged or why not", in order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from producers.kafka import make_producer
from producers.routing import event_key, topic_for
from producers.serde import Serde
from schemas.models import DeadLetter, FinancialEvent
from schemas.topics import Topics


class DeliveryError(RuntimeError):
    """The broker did not acknowledge a record."""


@dataclass(frozen=True)
class Outgoing:
    event: FinancialEvent
    customer_id: str | None = None  # only needed for deletes of documents


class Publisher:
    """Idempotent producer + serde for the crm.* topics."""

    def __init__(self, bootstrap: str, registry_url: str, topics: Topics, *,
                 linger_ms: int = 5, client_id: str = "ledgerstream-producer") -> None:
        self.topics = topics
        self.serde = Serde(registry_url)
        self.producer: Producer = make_producer(bootstrap, linger_ms=linger_ms,
                                                client_id=client_id)

    def _produce(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]],
                 callback: object) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key.encode(),
                                      headers=headers,  # type: ignore[arg-type]
                                      on_delivery=callback)  # type: ignore[arg-type]
                return
            except BufferError:
                self.producer.poll(0.05)

    def send(self, items: Sequence[Outgoing], callback: object) -> None:
        for item in items:
            event = item.event
            topic = topic_for(event.aggregate_type, self.topics)
            self._produce(topic, event_key(event, item.customer_id),
                          self.serde.event(topic, event),
                          [("event_id", event.event_id.encode()),
                           ("event_type", event.event_type.encode())], callback)

    def publish(self, items: Sequence[Outgoing], timeout_s: float = 60.0) -> None:
        """Send and wait for every delivery report; raise if any failed."""
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        self.send(items, on_delivery)
        self._flush(timeout_s)
        if errors:
            raise DeliveryError(f"{len(errors)} record(s) not acknowledged: {errors[0]}")

    def publish_dead_letter(self, letter: DeadLetter, key: str | None,
                            timeout_s: float = 30.0) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        dlq = self.topics.crm_dlq
        headers = [("event_id", letter.event_id.encode())] if letter.event_id else []
        self._produce(dlq, key or "", self.serde.dead_letter(dlq, letter), headers, on_delivery)
        self._flush(timeout_s)
        if errors:
            raise DeliveryError(f"dead letter not acknowledged: {errors[0]}")

    def _flush(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.producer.flush(0.5) > 0:
            if time.monotonic() > deadline:
                raise DeliveryError(f"no delivery report within {timeout_s}s")

    def close(self) -> None:
        self.producer.flush(10)


class AsyncPublisher:
    """For asyncio servers: a background thread serves delivery reports, and each publish
    awaits a future resolved by its own report (no blocking flush on the event loop)."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._poll, name="delivery-reports",
                                        daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.publisher.producer.poll(0.1)

    async def publish(self, item: Outgoing, timeout_s: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[KafkaError | None] = loop.create_future()

        def resolve(err: KafkaError | None) -> None:
            if not done.done():
                done.set_result(err)

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            loop.call_soon_threadsafe(resolve, err)

        with self._lock:
            self.publisher.send([item], on_delivery)
        err = await asyncio.wait_for(done, timeout_s)
        if err is not None:
            raise DeliveryError(f"record not acknowledged: {err}")

    async def publish_dead_letter(self, letter: DeadLetter, key: str | None) -> None:
        await asyncio.to_thread(self.publisher.publish_dead_letter, letter, key)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.publisher.close()
