"""Where the services are: env vars win, else the local stack's endpoint file."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.localstack.stack import Endpoints, LocalStack


class EndpointSettings(BaseSettings):
    """The standard variable names, so the same values work for Kafka tools too."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str | None = None
    schema_registry_url: str | None = None
    database_url: str | None = None


def configured_endpoints() -> Endpoints:
    env = EndpointSettings()
    local = LocalStack().endpoints()
    return Endpoints(
        env.kafka_bootstrap_servers or local.kafka_bootstrap,
        env.schema_registry_url or local.schema_registry_url,
        env.database_url or local.database_url,
    )
