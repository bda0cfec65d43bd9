"""Prometheus metrics of the producers (``ledgerstream_<component>_<what>_<unit>``).

Module-level collectors on the default registry: a process runs one runtime, and
tests that run several relays in one process simply share the counters."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RELAY_EVENTS = Counter(
    "ledgerstream_relay_events_total", "Outbox rows handled by the relay",
    ["topic", "outcome"])
RELAY_LAG = Gauge(
    "ledgerstream_relay_lag_seconds", "Age of the oldest outbox row not yet published")
RELAY_BATCH = Histogram(
    "ledgerstream_relay_batch_duration_seconds",
    "Claim + produce + delivery reports + commit, per batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RELAY_BATCH_ROWS = Histogram(
    "ledgerstream_relay_batch_rows", "Rows per batch",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000))
RELAY_ABORTS = Counter(
    "ledgerstream_relay_batch_aborts_total", "Batches rolled back (rows re-sent later)")

POLLER_EVENTS = Counter(
    "ledgerstream_poller_events_total", "Changes the poller emitted", ["stream", "event_type"])
POLLER_LAG = Gauge(
    "ledgerstream_poller_watermark_lag_seconds", "now - watermark", ["stream"])
POLLER_DEAD_LETTERS = Counter(
    "ledgerstream_poller_dead_letters_total", "Changed rows dead-lettered", ["error_class"])
POLLER_CYCLE = Histogram(
    "ledgerstream_poller_cycle_duration_seconds", "One poll over every stream")

WEBHOOK_REQUESTS = Counter(
    "ledgerstream_webhooks_requests_total", "Webhook requests by answer", ["status"])
WEBHOOK_DEAD_LETTERS = Counter(
    "ledgerstream_webhooks_dead_letters_total",
    "Refused deliveries kept (table) and, when to_dlq, dead-lettered", ["error_class"])
WEBHOOK_LATENCY = Histogram(
    "ledgerstream_webhooks_request_duration_seconds", "Request to broker ack to answer")
