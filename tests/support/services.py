"""Where the test session's Kafka, registry and PostgreSQL come from.

1. ``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL``, ``DATABASE_URL`` all set:
   use them (an existing cluster, or a stack started by ``ledgerstream up``).
2. Java and Maven present: start the project's local stack on free ports in a
   fresh state directory, and stop it at the end of the session
   (``LEDGERSTREAM_KEEP_TEST_STACK=1`` keeps it running for the next session).
3. A Docker engine answering: testcontainers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from deploy.localstack.settings import PROJECT_ROOT, StackSettings
from deploy.localstack.stack import Endpoints, LocalStack

ENV_NAMES = ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "DATABASE_URL")


@contextlib.contextmanager
def provide_endpoints(_tmp: Path) -> Iterator[Endpoints]:
    env = [os.environ.get(name) for name in ENV_NAMES]
    if all(env):
        yield Endpoints(*(value or "" for value in env))
        return
    if shutil.which("java") and shutil.which("mvn"):
        with _local_stack() as endpoints:
            yield endpoints
        return
    with _testcontainers() as endpoints:
        yield endpoints


@contextlib.contextmanager
def _local_stack() -> Iterator[Endpoints]:
    keep = os.environ.get("LEDGERSTREAM_KEEP_TEST_STACK") == "1"
    # Under the project (not /tmp/pytest-of-root, which is 0700): when tests run as
    # root, PostgreSQL runs as the postgres user and must be able to reach its dir.
    name = "test-stack" if keep else f"test-stack-{uuid.uuid4().hex[:8]}"
    state_dir = PROJECT_ROOT / ".ledgerstream" / name
    settings = StackSettings(
        state_dir=state_dir, kafka_port=0, controller_port=0, registry_port=0, postgres_port=0
    )
    stack = LocalStack(settings)
    report = stack.up()
    try:
        yield report.endpoints
    finally:
        if not keep:
            stack.down()
            shutil.rmtree(state_dir, ignore_errors=True)


@contextlib.contextmanager
def _testcontainers() -> Iterator[Endpoints]:  # pragma: no cover - needs a Docker engine
    try:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer
    except ImportError as exc:
        raise RuntimeError(
            "No services: set KAFKA_BOOTSTRAP_SERVERS/SCHEMA_REGISTRY_URL/DATABASE_URL, "
            "or install Java 17 + Maven for the local stack, or run a Docker engine."
        ) from exc
    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        PostgresContainer(
            "postgres:15", username="ledgerstream", password="ledgerstream", dbname="ledgerstream"
        ) as pg,
    ):
        bootstrap = kafka.get_bootstrap_server()
        registry = (
            DockerContainer("apicurio/apicurio-registry:3.0.9")
            .with_exposed_ports(8080)
            .with_env("APICURIO_STORAGE_KIND", "sql")
            .with_env("APICURIO_STORAGE_SQL_KIND", "postgresql")
        )
        with registry:
            wait_for_logs(registry, "started in", timeout=120)
            url = (
                f"http://{registry.get_container_host_ip()}:"
                f"{registry.get_exposed_port(8080)}/apis/ccompat/v7"
            )
            dsn = pg.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
            yield Endpoints(bootstrap, url, dsn)
