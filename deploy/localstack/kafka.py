"""A single-node KRaft Apache Kafka broker on loopback, with transactions enabled.

One combined broker+controller with a static quorum (so ``StorageTool format``
needs no ``--standalone``), replication factor 1 for the internal topics (the
transaction state log would otherwise want 3 replicas and ``InitProducerId``
would never succeed), and a small number of internal partitions for a 2-core box.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from deploy.localstack import process
from deploy.localstack.errors import StackError
from deploy.localstack.ports import accepts_connections
from deploy.localstack.probes import check_kafka
from deploy.localstack.settings import StackSettings

LOG4J2 = """\
status = warn
appender.file.type = Console
appender.file.name = STDOUT
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
"""


def server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
"""


class KafkaBroker:
    name = "kafka"

    def __init__(self, settings: StackSettings, kafka_libs: Path, port: int, controller_port: int):
        self.settings = settings
        self.classpath = f"{kafka_libs}/*"
        self.port = port
        self.controller_port = controller_port
        self.home = settings.state_dir / "kafka"
        self.data_dir = self.home / "data"
        self.log_file = self.home / "kafka.log"
        self.pid_file = self.home / "kafka.pid"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return process.is_alive(process.read_pid(self.pid_file), "kafka.Kafka")

    def healthy(self, timeout_s: float = 3.0) -> bool:
        try:
            check_kafka(self.endpoint, timeout_s)
        except StackError:
            return False
        return True

    def start(self) -> float:
        """Format storage on first use, start the broker, wait until it serves metadata."""
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        config.write_text(server_properties(self.data_dir, self.port, self.controller_port))
        (self.home / "log4j2.properties").write_text(LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            self._format(config)
        for port in (self.port, self.controller_port):
            if accepts_connections(port):
                raise StackError(f"Kafka cannot start: 127.0.0.1:{port} is already in use")
        java = self.settings.java
        argv = [
            java,
            *self.settings.kafka_heap.split(),
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            self.classpath,
            "kafka.Kafka",
            str(config),
        ]
        started = time.monotonic()
        process.spawn(argv, log_file=self.log_file, pid_file=self.pid_file)
        process.wait_until(
            lambda: accepts_connections(self.port) and self.healthy(2.0),
            timeout_s=self.settings.start_timeout_s,
            what=f"Kafka broker on {self.endpoint}",
            alive=lambda: process.is_alive(process.read_pid(self.pid_file)),
            log_file=self.log_file,
        )
        return time.monotonic() - started

    def _format(self, config: Path) -> None:
        cluster_id_file = self.home / "cluster-id"
        if not cluster_id_file.exists():
            cluster_id = self._tool("random-uuid").strip().splitlines()[-1]
            cluster_id_file.write_text(cluster_id)
        cluster_id = cluster_id_file.read_text().strip()
        # --ignore-formatted: a dir half-formatted by a killed run is completed, not refused.
        self._tool("format", "-t", cluster_id, "-c", str(config), "--ignore-formatted")

    def _tool(self, *args: str) -> str:
        argv = [
            self.settings.java,
            "-Xmx256m",
            "-cp",
            self.classpath,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "kafka.tools.StorageTool",
            *args,
        ]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"kafka StorageTool {args[0]} failed: {result.stderr[-2000:]}")
        return result.stdout

    def stop(self) -> bool:
        return process.terminate(process.read_pid(self.pid_file), timeout_s=60)
