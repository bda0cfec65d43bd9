"""Settings of the embedded local stack (Kafka, Apicurio Registry, PostgreSQL).

Everything is read through pydantic-settings with the ``LEDGERSTREAM_STACK_``
prefix, so an operator can move the state directory or pin ports without code
changes. Port ``0`` means "the preferred default, or any free port if taken".
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERSTREAM_STACK_", extra="ignore")

    state_dir: Path = Field(
        default=PROJECT_ROOT / ".ledgerstream" / "stack",
        description="Where data, logs, pids and the endpoint file live.",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "ledgerstream",
        description="Where Maven-resolved jars are unpacked (shared between state dirs).",
    )
    pom: Path = PROJECT_ROOT / "deploy" / "maven" / "pom.xml"
    kafka_port: int = 19092
    controller_port: int = 19093
    registry_port: int = 18081
    postgres_port: int = 15432
    kafka_heap: str = "-Xms256m -Xmx768m"
    registry_heap: str = "-Xms128m -Xmx512m"
    start_timeout_s: float = 120.0
    java: str = "java"
    mvn: str = "mvn"
    postgres_bin_dir: Path | None = Field(
        default=None, description="Directory of initdb/pg_ctl; found automatically if unset."
    )
