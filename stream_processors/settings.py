"""Settings of the stream processor (pydantic-settings; the only place env is read).

Variables: the three standard endpoint names (``KAFKA_BOOTSTRAP_SERVERS``,
``SCHEMA_REGISTRY_URL``) plus ``LEDGERSTREAM_PROCESSOR_*`` for the rest, e.g.
``LEDGERSTREAM_PROCESSOR_PROCESSING_GUARANTEE=at_least_once``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.models import RoundingMode
from schemas.topics import Topics
from stream_processors.tax import Granularity, TaxPolicy


class ProcessorSettings(BaseSettings):
    """Everything ``ledgerstream process`` / ``python -m stream_processors`` needs."""

    model_config = SettingsConfigDict(env_prefix="LEDGERSTREAM_PROCESSOR_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS",
                                      "LEDGERSTREAM_PROCESSOR_KAFKA_BOOTSTRAP_SERVERS",
                                      "kafka_bootstrap_servers"),
    )
    schema_registry_url: str = Field(
        "http://127.0.0.1:18081/apis/ccompat/v7",
        validation_alias=AliasChoices("SCHEMA_REGISTRY_URL",
                                      "LEDGERSTREAM_PROCESSOR_SCHEMA_REGISTRY_URL",
                                      "schema_registry_url"),
    )
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    topic_prefix: str = ""
    topic_suffix: str = ""
    """Decorates every topic, subject and the app id (``schemas.topics.Topics``)."""
    app_id: str | None = None
    """Consumer group / faust app id; default: the decorated ``ledgerstream.processor``."""
    data_dir: Path = Path(".ledgerstream/processor")
    """RocksDB tables live here (one directory per app id)."""
    metrics_port: int = 0
    """Prometheus /metrics port; 0 disables the endpoint."""
    grace_seconds: float = 300.0
    """How long an event for an unknown customer / tax code waits before the DLQ."""
    tick_interval_seconds: float = 5.0
    """How often parked events are retried."""
    commit_interval_seconds: float = 1.0
    """Transaction / offset commit interval: latency of ledger.* vs. throughput."""
    producer_linger_ms: float = 10.0
    """How long a producer waits to batch records before a produce request. With one
    transactional producer per input partition and 2-4 records per event, linger 0 sent
    one small request per record (the kernel's loopback ``send`` alone was ~15 % of the
    worker's time); a commit waits at most this long for the last batch."""
    lag_interval_seconds: float = 5.0
    """How often the consumer lag gauge is measured (committed vs end offsets)."""
    session_timeout_seconds: float = 30.0
    """Consumer-group session timeout: how long a SIGKILLed worker's partitions stay
    assigned to it before a restarted (or other) worker gets them."""
    tax_rounding: Granularity = Granularity.PER_DOCUMENT
    rounding_mode: RoundingMode = RoundingMode.HALF_UP
    tenant_tax_rounding: dict[str, Granularity] = Field(default_factory=dict)
    """Per-tenant override of ``tax_rounding`` (JSON in the env variable)."""
    wipe_state_on_unclean_start: bool = True
    """With exactly_once, discard local RocksDB state after a crash and restore it from
    the (committed) changelogs: RocksDB keeps writes of aborted transactions."""
    faust_native_output: bool = False
    """Diagnostic only: produce ledger.* with faust's own ``topic.send()`` (which, under
    exactly_once, bypasses the transaction — faust-streaming #177) instead of through
    the input partition's transactional producer. Kept to reproduce the bug."""
    auto_register_schemas: bool = True
    """Register the ledger.* schemas on first use; set False in production, where
    ``schemas.registry`` registers them at deploy time."""
    max_poll_records: int = 500
    batch_max_events: int = 500
    """Most input records processed as one batch (one lock hold, one flush of the
    batch's table rows and balances; a commit waits for the batch in progress)."""
    batch_wait_seconds: float = 0.005
    """How long a batch waits to fill before it is processed anyway: the latency a
    lone event pays for batching. An idle worker wakes up this often: measured on the
    2-core dev machine, an idle worker used ~4 % of a core at 5 ms and ~2 % at 50 ms."""
    log_level: Literal["debug", "info", "warn", "error"] = "info"

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, suffix=self.topic_suffix)

    @property
    def resolved_app_id(self) -> str:
        return self.app_id or self.topics.processor_app_id

    def tax_policy(self, tenant_id: str) -> TaxPolicy:
        return TaxPolicy(self.tenant_tax_rounding.get(tenant_id, self.tax_rounding),
                         self.rounding_mode)
