"""The local stack as one unit: `up` starts what is not running, `down` stops it all.

Ports are chosen once (the preferred default, or a free one if that is taken),
remembered in ``stack.json`` and reused on the next `up`, so clients configured
from a previous run keep working. Order matters: Kafka first (the registry
stores its schemas there), PostgreSQL independently.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from deploy.localstack import artifacts
from deploy.localstack.errors import StackError
from deploy.localstack.kafka import KafkaBroker
from deploy.localstack.ports import choose_port, is_free
from deploy.localstack.postgres import Postgres
from deploy.localstack.registry import SchemaRegistry
from deploy.localstack.settings import StackSettings


class Service(Protocol):
    name: str

    @property
    def endpoint(self) -> str: ...
    def running(self) -> bool: ...
    def healthy(self, timeout_s: float = 3.0) -> bool: ...
    def start(self) -> float: ...
    def stop(self) -> bool: ...


@dataclass
class Ports:
    kafka: int
    controller: int
    registry: int
    postgres: int


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    schema_registry_url: str
    database_url: str

    def as_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "SCHEMA_REGISTRY_URL": self.schema_registry_url,
            "DATABASE_URL": self.database_url,
        }


@dataclass
class ServiceStatus:
    name: str
    endpoint: str
    running: bool
    healthy: bool
    started_in_s: float | None = None


@dataclass
class UpReport:
    endpoints: Endpoints
    services: list[ServiceStatus] = field(default_factory=list)
    total_s: float = 0.0


class LocalStack:
    def __init__(self, settings: StackSettings | None = None):
        self.settings = settings or StackSettings()
        self.state_file = self.settings.state_dir / "stack.json"

    # -- ports -------------------------------------------------------------
    def _ports(self, *, choose: bool) -> Ports:
        saved = self._load_ports()
        if saved is not None:
            return saved
        if not choose:
            s = self.settings
            return Ports(s.kafka_port, s.controller_port, s.registry_port, s.postgres_port)
        taken: set[int] = set()
        chosen = []
        for preferred in (
            self.settings.kafka_port,
            self.settings.controller_port,
            self.settings.registry_port,
            self.settings.postgres_port,
        ):
            port = choose_port(preferred, taken)
            taken.add(port)
            chosen.append(port)
        ports = Ports(*chosen)
        self._save_ports(ports)
        return ports

    def _load_ports(self) -> Ports | None:
        try:
            return Ports(**json.loads(self.state_file.read_text())["ports"])
        except (FileNotFoundError, KeyError, TypeError, ValueError):
            return None

    def _save_ports(self, ports: Ports) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"ports": asdict(ports)}, indent=2))

    # -- services ----------------------------------------------------------
    def services(self, *, resolve: bool = False, choose_ports: bool = False) -> list[Service]:
        ports = self._ports(choose=choose_ports)
        if resolve:
            found = artifacts.resolve(self.settings)
            libs, jar = found.kafka_libs, found.registry_jar
        else:
            libs, jar = Path("."), Path("apicurio.jar")
        kafka = KafkaBroker(self.settings, libs, ports.kafka, ports.controller)
        registry = SchemaRegistry(self.settings, jar, ports.registry, kafka.endpoint)
        postgres = Postgres(self.settings, ports.postgres)
        return [kafka, registry, postgres]

    def endpoints(self) -> Endpoints:
        kafka, registry, postgres = self.services()
        return Endpoints(kafka.endpoint, registry.endpoint, postgres.endpoint)

    def up(self, progress: Callable[[str], None] | None = None) -> UpReport:
        """Start every part that is not already healthy; harmless when all are up."""
        begin = time.monotonic()
        self._release_ports_of_dead_services()
        report = UpReport(self.endpoints_after_start())
        for service in self.services(resolve=True):
            status = ServiceStatus(service.name, service.endpoint, service.running(), False)
            if status.running and service.healthy():
                status.healthy = True
            else:
                if status.running:
                    # Alive but not answering (e.g. a wedged JVM): restart it.
                    service.stop()
                if progress:
                    progress(f"starting {service.name} on {service.endpoint}")
                status.started_in_s = service.start()
                status.running = status.healthy = True
            report.services.append(status)
        report.total_s = time.monotonic() - begin
        return report

    def endpoints_after_start(self) -> Endpoints:
        self._ports(choose=True)
        return self.endpoints()

    def _release_ports_of_dead_services(self) -> None:
        """A stopped stack whose saved ports were taken meanwhile gets new ones."""
        saved = self._load_ports()
        if saved is None:
            return
        services = self.services()
        if any(s.running() for s in services):
            return
        if all(is_free(p) for p in (saved.kafka, saved.controller, saved.registry, saved.postgres)):
            return
        # Kafka's controller port is part of its quorum config, which we rewrite each
        # start; changing ports of a stopped stack is therefore safe.
        self.state_file.unlink()

    def status(self) -> list[ServiceStatus]:
        result = []
        for service in self.services():
            running = service.running()
            result.append(
                ServiceStatus(
                    service.name, service.endpoint, running, running and service.healthy()
                )
            )
        return result

    def down(self) -> list[str]:
        stopped = []
        # Registry before Kafka: it would otherwise spin on a vanished broker.
        kafka, registry, postgres = self.services()
        for service in (registry, kafka, postgres):
            if service.stop():
                stopped.append(service.name)
        return stopped


def ensure_up(settings: StackSettings | None = None) -> Endpoints:
    stack = LocalStack(settings)
    report = stack.up()
    if not all(s.healthy for s in report.services):
        raise StackError("local stack did not become healthy")
    return report.endpoints
