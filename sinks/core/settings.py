"""Settings of one sink process (`ledgerstream sink --platform <name>`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SinkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERSTREAM_SINK_", extra="ignore")

    platform: str
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092",
        validation_alias=AliasChoices("LEDGERSTREAM_SINK_KAFKA_BOOTSTRAP_SERVERS",
                                      "KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
    )
    schema_registry_url: str = Field(
        "http://127.0.0.1:18081/apis/ccompat/v7",
        validation_alias=AliasChoices("LEDGERSTREAM_SINK_SCHEMA_REGISTRY_URL",
                                      "SCHEMA_REGISTRY_URL", "schema_registry_url"),
    )
    database_url: str = Field(
        "postgresql://ledgerstream@127.0.0.1:15432/ledgerstream",
        validation_alias=AliasChoices("LEDGERSTREAM_SINK_DATABASE_URL", "DATABASE_URL",
                                      "database_url"),
    )
    tenants_file: Path | None = Field(None, description="Per-tenant mapping YAML.")
    topic_prefix: str = ""
    topic_suffix: str = ""
    batch_size: int = Field(200, ge=1, le=10_000)
    poll_timeout_s: float = Field(
        0.1, gt=0, description="How long one poll waits for a first record (then it "
        "takes what is already fetched, up to batch_size, without waiting): how often "
        "an idle sink wakes up; a record is written as soon as it is fetched.")
    fetch_wait_max_ms: int = Field(
        100, ge=0, le=5000, description="Kafka fetch wait when no new data (latency vs "
        "fewer idle fetch requests).")
    max_partition_fetch_bytes: int = Field(
        65_536, ge=1024,
        description="librdkafka max.partition.fetch.bytes: how much of one partition a "
        "fetch brings (librdkafka's default: 1 MiB, ~1,400 ledger entries). A poll takes "
        "what is fetched, partition by partition, so with 1 MiB a batch of a backlog "
        "came from one or two partitions: few keys, few concurrent lanes (10-26 of 500 "
        "records in the sink bench). 64 KiB (~90 entries per partition) spreads a batch "
        "over more partitions and keys.")
    retry_backoff_s: float = Field(2.0, description="Pause before re-reading a record whose "
                                   "platform call failed after the transport's own retries.")
    batch_time_budget_s: float = Field(
        60.0, gt=0,
        description="Commit and re-poll after this long on one batch; must stay well under "
        "Kafka's max.poll.interval.ms (300 s) on throttled platforms.")
    concurrency: int = Field(
        8, ge=1, le=64,
        description="Records of different Kafka keys (tenant:customer) written at once; "
        "each key's records stay in order. The rate limiter still caps each tenant.")
    coalesce: bool = Field(
        False,
        description="Send concurrent requests of a tenant as one platform batch where the "
        "platform has a batch endpoint (QuickBooks /batch). Saves round-trips; platforms "
        "meter batch items like calls, so it does not raise a rate-limited throughput.")
    coalesce_linger_s: float = Field(
        0.002, ge=0, le=0.1,
        description="With coalesce: how long a batch's sender waits for more requests "
        "before sending a batch that is not full. Without it, a request that arrives "
        "just after a batch left often travels alone; on a busy sink the wait costs no "
        "CPU and halves the HTTP requests (and their CPU) per document.")
    session_timeout_ms: int = Field(
        10_000, ge=6_000,
        description="How soon Kafka hands a dead sink's partitions to another replica.")
    check_ledger_entries: bool = Field(
        False,
        description="Re-validate every ledger entry read (the models' own rules). Off: "
        "the processor wrote each one from a validated model; on for a ledger.entries "
        "topic that other producers write to. Validating was about half of a decode.")
    gc_gen0_threshold: int = Field(
        20_000, ge=0,
        description="Allocations between the garbage collector's youngest-generation "
        "runs (Python's default: 700; 0 keeps it). A batch allocates thousands of "
        "objects per document that all live until the batch commits; at 700 the "
        "collector kept re-scanning them (about 5 % of the sink's CPU).")
    metrics_port: int | None = Field(None, description="Serve Prometheus metrics here.")
    metrics_host: str = Field("127.0.0.1", description="0.0.0.0 inside a container.")
    crash_at: str | None = Field(
        None,
        description="Test hook for crash-injection tests: '<point>:<n>' makes the process "
        "SIGKILL itself the n-th time it reaches <point> (after_api_call, after_db_commit, "
        "mid_batch).",
    )
