"""Session fixtures: the real Kafka, schema registry and PostgreSQL.

Endpoints come from ``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL`` and
``DATABASE_URL`` when all three are set; otherwise the project's local stack is
started once per test session in a temporary state directory
(``deploy.localstack``); otherwise, where a Docker engine answers, through
testcontainers. Tests stay isolated by using unique topic names (hence unique
subjects) and a fresh database each.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from deploy.localstack.stack import Endpoints
from tests.support.services import provide_endpoints


@pytest.fixture(scope="session")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """The three real services for this test session."""
    with provide_endpoints(tmp_path_factory.mktemp("stack")) as found:
        yield found


@pytest.fixture(scope="session")
def kafka_bootstrap(endpoints: Endpoints) -> str:
    return endpoints.kafka_bootstrap


@pytest.fixture(scope="session")
def schema_registry_url(endpoints: Endpoints) -> str:
    return endpoints.schema_registry_url


@pytest.fixture(scope="session")
def database_url(endpoints: Endpoints) -> str:
    """DSN of the server's maintenance database; create your own with ``fresh_database``."""
    return endpoints.database_url


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    info["dbname"] = name
    yield psycopg.conninfo.make_conninfo(**info)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def unique_topic() -> Callable[[str], str]:
    """Make topic names unique per test (and so registry subjects too)."""
    suffix = uuid.uuid4().hex[:8]

    def make(base: str) -> str:
        return f"{base}.{suffix}"

    return make
