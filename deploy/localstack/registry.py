"""Apicurio Registry 3.x with its Confluent-compatible API, storing schemas in Kafka.

KafkaSQL storage keeps every registered schema in a compacted topic on our own
broker, so schema ids survive a registry restart without a second database.
"""

from __future__ import annotations

import time
from pathlib import Path

from deploy.localstack import process
from deploy.localstack.errors import StackError
from deploy.localstack.ports import accepts_connections
from deploy.localstack.probes import check_registry
from deploy.localstack.settings import StackSettings

CCOMPAT_PATH = "/apis/ccompat/v7"
JOURNAL_TOPIC = "_ledgerstream-registry-journal"


class SchemaRegistry:
    name = "registry"

    def __init__(self, settings: StackSettings, jar: Path, port: int, kafka_bootstrap: str):
        self.settings = settings
        self.jar = jar
        self.port = port
        self.kafka_bootstrap = kafka_bootstrap
        self.home = settings.state_dir / "registry"
        self.log_file = self.home / "registry.log"
        self.pid_file = self.home / "registry.pid"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    def running(self) -> bool:
        return process.is_alive(process.read_pid(self.pid_file), "apicurio")

    def healthy(self, timeout_s: float = 3.0) -> bool:
        try:
            check_registry(self.endpoint, timeout_s)
        except StackError:
            return False
        return True

    def start(self) -> float:
        self.home.mkdir(parents=True, exist_ok=True)
        if accepts_connections(self.port):
            raise StackError(f"Schema registry cannot start: 127.0.0.1:{self.port} is in use")
        env = {
            "APICURIO_STORAGE_KIND": "kafkasql",
            "APICURIO_KAFKASQL_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "APICURIO_KAFKASQL_TOPIC": JOURNAL_TOPIC,
            "QUARKUS_HTTP_HOST": "127.0.0.1",
            "QUARKUS_HTTP_PORT": str(self.port),
            # 3.1+ opens a management port on 0.0.0.0:9000 by default; we need none.
            "QUARKUS_MANAGEMENT_ENABLED": "false",
            "QUARKUS_LOG_CONSOLE_JSON": "false",
            "APICURIO_REST_DELETION_ARTIFACT_ENABLED": "true",
            "APICURIO_REST_DELETION_ARTIFACT_VERSION_ENABLED": "true",
        }
        argv = [
            self.settings.java,
            *self.settings.registry_heap.split(),
            "-XX:+UseSerialGC",
            "-jar",
            str(self.jar),
        ]
        started = time.monotonic()
        process.spawn(
            argv, log_file=self.log_file, pid_file=self.pid_file, env=env, cwd=self.jar.parent
        )
        process.wait_until(
            lambda: accepts_connections(self.port) and self.healthy(2.0),
            timeout_s=self.settings.start_timeout_s,
            what=f"Schema registry on {self.endpoint}",
            alive=lambda: process.is_alive(process.read_pid(self.pid_file)),
            log_file=self.log_file,
            interval_s=0.5,
        )
        return time.monotonic() - started

    def stop(self) -> bool:
        return process.terminate(process.read_pid(self.pid_file), timeout_s=30)
