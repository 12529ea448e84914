"""Apache Kafka from Maven Central's jars: one combined broker+controller in KRaft mode.

The classpath under ``.run/kafka/libs`` is filled by ``make bootstrap`` (Maven resolves
``org.apache.kafka:kafka_2.13`` and a log4j2 backend). Storage is formatted on first start; the
broker logs to ``.run/kafka.log`` and listens on the configured bootstrap address only.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from confluent_kafka.admin import AdminClient

from learnflow.deadline import Deadline
from learnflow.settings import Settings
from ops.platform import processes
from ops.platform.exceptions import MissingDependencyError, ServiceStartError
from ops.platform.processes import ServiceFiles
from ops.platform.status import ComponentStatus

NAME = "kafka"
LOG4J_CONFIG = Path(__file__).with_name("kafka-log4j2.xml")


def files(settings: Settings) -> ServiceFiles:
    return ServiceFiles.under(settings.local.run_dir, NAME)


def libs_dir(settings: Settings) -> Path:
    return settings.local.run_dir / NAME / "libs"


def address(settings: Settings) -> tuple[str, int]:
    first = settings.kafka.bootstrap_servers.split(",")[0]
    url = urlsplit(f"//{first}")
    return url.hostname or "127.0.0.1", url.port or 9092


def start(settings: Settings, deadline: Deadline) -> ComponentStatus:
    svc = files(settings)
    host, port = address(settings)
    pid = processes.running_pid(svc)
    if pid is None:
        config = _write_config(settings, host, port)
        if not (_data_dir(settings) / "meta.properties").exists():
            _format_storage(settings, config, svc)
        pid = processes.spawn(svc, [*_java(settings), "kafka.Kafka", str(config)])
    processes.wait_until(
        svc, lambda: _broker_answers(host, port), deadline, f"Kafka on {host}:{port}", pid=pid
    )
    return ComponentStatus(NAME, True, pid, port, f"kafka://{host}:{port}")


def stop(settings: Settings, deadline: Deadline) -> bool:
    """SIGTERM runs the broker's controlled shutdown (flushes logs, writes a clean marker)."""
    return processes.stop(files(settings), deadline)


def status(settings: Settings) -> ComponentStatus:
    host, port = address(settings)
    pid = processes.running_pid(files(settings))
    up = pid is not None and processes.port_open(host, port)
    return ComponentStatus(NAME, up, pid, port, f"kafka://{host}:{port}")


def _data_dir(settings: Settings) -> Path:
    return settings.local.run_dir / NAME / "data"


def _java(settings: Settings) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise MissingDependencyError("java not found: Kafka 4 needs Java 17 (openjdk-17-jre)")
    libs = libs_dir(settings)
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise MissingDependencyError(
            f"Kafka jars missing in {libs}: run `make bootstrap` to fetch them from Maven Central"
        )
    heap = settings.local.kafka_heap_mb
    return [
        java,
        f"-Xms{min(256, heap)}m",
        f"-Xmx{heap}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.file={files(settings).logfile}",
        "-cp",
        f"{libs}/*",
    ]


def _write_config(settings: Settings, host: str, port: int) -> Path:
    root = settings.local.run_dir / NAME
    root.mkdir(parents=True, exist_ok=True)
    controller = f"{host}:{settings.local.kafka_controller_port}"
    config = root / "server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{controller}",
                f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
                f"advertised.listeners=PLAINTEXT://{host}:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={_data_dir(settings)}",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=12",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "num.partitions=1",
                "log.retention.hours=168",
                "log.segment.bytes=268435456",
            ]
        )
        + "\n"
    )
    return config


def _format_storage(settings: Settings, config: Path, svc: ServiceFiles) -> None:
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    result = subprocess.run(
        [
            *_java(settings),
            "kafka.tools.StorageTool",
            "format",
            # One token: a base64 id may begin with "-", which would read as an option.
            f"--cluster-id={cluster_id}",
            f"--config={config}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    with svc.logfile.open("a") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise ServiceStartError(
            f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}".rstrip()
        )


def _broker_answers(host: str, port: int) -> bool:
    """The port is open and the broker serves metadata (it is past controller election)."""
    if not processes.port_open(host, port):
        return False
    admin = AdminClient({"bootstrap.servers": f"{host}:{port}", "log_level": 0})
    metadata = admin.list_topics(timeout=2.0)
    return bool(metadata.brokers)
