"""Observability shared by every ledgerstream runtime: one HTTP endpoint serving
``/metrics``, ``/healthz`` and ``/readyz`` (:mod:`.server`), readiness checks
(:mod:`.readiness`), JSON logs with secrets masked (:mod:`.logging`) and Kafka
consumer-lag metrics from librdkafka statistics (:mod:`.kafka`)."""

from ledgerstream.observability.logging import JsonFormatter, setup_logging
from ledgerstream.observability.readiness import Heartbeat, Readiness, fresh, postgres_check
from ledgerstream.observability.server import ObservabilityServer, serve_observability

__all__ = [
    "Heartbeat",
    "JsonFormatter",
    "ObservabilityServer",
    "Readiness",
    "fresh",
    "postgres_check",
    "serve_observability",
    "setup_logging",
]
