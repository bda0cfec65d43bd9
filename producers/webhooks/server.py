"""``run_webhooks``: the receiver under uvicorn (which handles SIGTERM gracefully:
in-flight requests finish, i.e. their broker acknowledgements are awaited)."""

from __future__ import annotations

from typing import Any

import uvicorn
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from ledgerstream.observability import Readiness, postgres_check, serve_observability
from producers.publisher import Publisher
from producers.settings import ProducerSettings, _std
from producers.sql import apply_state_schema
from producers.topics_admin import ensure_topics
from producers.webhooks.app import ReceiverConfig, create_app


class WebhookSettings(ProducerSettings):
    """``LEDGERSTREAM_WEBHOOKS_*``; secrets as JSON:
    ``LEDGERSTREAM_WEBHOOKS_SECRETS='{"t1": ["new", "old"], "t2": "s"}'``."""

    model_config = SettingsConfigDict(env_prefix="LEDGERSTREAM_WEBHOOKS_", extra="ignore",
                                      populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        validation_alias=_std("KAFKA_BOOTSTRAP_SERVERS", "LEDGERSTREAM_WEBHOOKS_"))
    schema_registry_url: str = Field(
        validation_alias=_std("SCHEMA_REGISTRY_URL", "LEDGERSTREAM_WEBHOOKS_"))
    database_url: str = Field(validation_alias=_std("DATABASE_URL", "LEDGERSTREAM_WEBHOOKS_"),
                              description="replay store and dead letters")
    host: str = "127.0.0.1"
    port: int = 8088
    secrets: dict[str, list[SecretStr]] = Field(default_factory=dict)
    tolerance_s: int = Field(default=300, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1)

    @field_validator("secrets", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value

    def receiver_config(self) -> ReceiverConfig:
        return ReceiverConfig(
            {t: [s.get_secret_value() for s in v] for t, v in self.secrets.items()},
            self.tolerance_s, self.max_body_bytes)


def build_app(settings: WebhookSettings) -> Any:
    apply_state_schema(settings.database_url)
    if settings.create_topics:
        ensure_topics(settings.kafka_bootstrap_servers, settings.topics)
    publisher = Publisher(settings.kafka_bootstrap_servers, settings.schema_registry_url,
                          settings.topics, linger_ms=settings.linger_ms,
                          client_id=f"ledgerstream-webhooks-{settings.instance_id}")
    return create_app(settings.receiver_config(), settings.database_url, publisher)


def run_webhooks(settings: WebhookSettings) -> None:
    """The receiver answers /healthz and /readyz itself; ``metrics_port`` adds the
    shared observability endpoint (/metrics, and readiness = PostgreSQL answers)."""
    serve_observability("webhooks", settings.metrics_port, host=settings.metrics_host,
                        readiness=Readiness({"postgres": postgres_check(settings.database_url)},
                                            ttl_s=2.0))
    # log_config=None: uvicorn's loggers propagate to the root handler (JSON, redacted)
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port,
                log_level="info", log_config=None)
