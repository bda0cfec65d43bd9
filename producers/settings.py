"""Settings shared by the producer runtimes (pydantic-settings; nothing else reads the
environment). The three endpoints take the standard variable names so the same exports
work for every ledgerstream component and for Kafka's own tools."""

from __future__ import annotations

import os
import socket

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import Topics


def _std(name: str, prefix: str) -> AliasChoices:
    return AliasChoices(f"{prefix}{name}", name, name.lower())


class ProducerSettings(BaseSettings):
    """Endpoints, topic naming, producer tuning and the metrics port."""

    model_config = SettingsConfigDict(env_prefix="LEDGERSTREAM_", extra="ignore",
                                      populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        validation_alias=_std("KAFKA_BOOTSTRAP_SERVERS", "LEDGERSTREAM_"))
    schema_registry_url: str = Field(
        validation_alias=_std("SCHEMA_REGISTRY_URL", "LEDGERSTREAM_"))
    topic_prefix: str = ""
    topic_suffix: str = Field(default="", description="appended after a dot (test isolation)")
    create_topics: bool = Field(default=True, description="create missing topics at start")
    linger_ms: int = 5
    metrics_port: int | None = Field(
        default=None, description="serve /metrics, /healthz, /readyz; 0 = off")
    metrics_host: str = Field(default="0.0.0.0", description="address of that endpoint")
    instance_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, suffix=self.topic_suffix)


class DatabaseSettings(BaseSettings):
    """Just ``DATABASE_URL`` (the simulator and small tools)."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str
