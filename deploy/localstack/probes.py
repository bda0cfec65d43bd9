"""Bounded-time reachability checks for Kafka, the schema registry and PostgreSQL.

Every client library has its own idea of "wait forever": librdkafka retries
silently, psycopg's default connect timeout is unlimited. These probes give one
clear error naming the endpoint within ``timeout_s`` instead of a hang, and are
used by `ledgerstream status`, by the stack's start-up and by the services.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from deploy.localstack.errors import ServiceUnreachable


def check_kafka(bootstrap: str, timeout_s: float = 5.0) -> int:
    """Return the broker count, or raise ``ServiceUnreachable``."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
        "log_level": 0,
        "logger": _quiet_logger(),
    }
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ServiceUnreachable("Kafka", bootstrap, timeout_s, str(exc.args[0])) from exc
    if not metadata.brokers:
        raise ServiceUnreachable("Kafka", bootstrap, timeout_s, "no broker in metadata")
    return len(metadata.brokers)


def check_registry(url: str, timeout_s: float = 5.0) -> None:
    """The Confluent-compatible API answers ``GET /subjects`` with a JSON list."""
    target = url.rstrip("/") + "/subjects"
    try:
        response = httpx.get(target, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServiceUnreachable("Schema registry", url, timeout_s, repr(exc)) from exc
    if response.status_code != 200 or not isinstance(response.json(), list):
        raise ServiceUnreachable(
            "Schema registry", url, timeout_s, f"GET /subjects gave HTTP {response.status_code}"
        )


def check_database(dsn: str, timeout_s: float = 5.0) -> str:
    """Return the server version string, or raise ``ServiceUnreachable``."""
    shown = _redact_dsn(dsn)
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s))) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        raise ServiceUnreachable("PostgreSQL", shown, timeout_s, str(exc).strip()) from exc
    return str(row[0]) if row else "?"


def _redact_dsn(dsn: str) -> str:
    """Hide a password in a DSN before it reaches an error message or a log."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    if info.get("password"):
        info["password"] = "***"
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})


def _quiet_logger() -> logging.Logger:
    """librdkafka logs every refused connection; the probe reports the failure itself."""
    logger = logging.getLogger("ledgerstream.probe.librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger
