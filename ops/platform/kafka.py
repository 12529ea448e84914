"""Apache Kafka from Maven Central's jars: combined broker+controller nodes in KRaft mode.

One node per address in ``kafka.bootstrap_servers``, all on this host: the default is one, the
cluster profile three (every partition on three nodes, ``min.insync.replicas=2``). Node ``i``
listens for clients on its address and for the controller quorum on
``local.kafka_controller_port + i - 1``. The classpath under ``.run/kafka/libs`` is filled by
``make bootstrap`` (Maven resolves ``org.apache.kafka:kafka_2.13`` and a log4j2 backend). Each
node's storage is formatted on its first start, with the cluster's one id; node 1 keeps its
files in ``.run/kafka``, node ``i`` in ``.run/kafka-<i>``, each with its own pid file and log.
"""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Node:
    """One KRaft node (broker and controller) of the local cluster."""

    id: int
    host: str
    port: int
    controller_port: int
    root: Path
    files: ServiceFiles

    @property
    def data(self) -> Path:
        return self.root / "data"


def nodes(settings: Settings) -> list[Node]:
    """The nodes ``kafka.bootstrap_servers`` names, in order (node ids from 1)."""
    run_dir = settings.local.run_dir
    found = []
    for n, server in enumerate(settings.kafka.bootstrap_servers.split(","), start=1):
        url = urlsplit(f"//{server.strip()}")
        name = NAME if n == 1 else f"{NAME}-{n}"
        found.append(
            Node(
                n,
                url.hostname or "127.0.0.1",
                url.port or 9092,
                settings.local.kafka_controller_port + n - 1,
                run_dir / name,
                ServiceFiles.under(run_dir, name),
            )
        )
    ports = [port for node in found for port in (node.port, node.controller_port)]
    if len(set(ports)) != len(ports):
        raise ServiceStartError(
            f"Kafka client and controller ports overlap ({sorted(ports)}): controllers use "
            "LEARNFLOW_LOCAL__KAFKA_CONTROLLER_PORT and the next ones, one per node"
        )
    return found


def libs_dir(settings: Settings) -> Path:
    return settings.local.kafka_libs_dir


def start(settings: Settings, deadline: Deadline) -> ComponentStatus:
    """Start every node not running (all at once: a quorum needs a majority of them), then
    wait until each serves metadata."""
    cluster = nodes(settings)
    pids = {}
    for node in cluster:
        pids[node.id] = processes.running_pid(node.files) or _start_node(settings, node)
    for node in cluster:
        processes.wait_until(
            node.files,
            functools.partial(_broker_answers, settings, node.host, node.port),
            deadline,
            f"Kafka node {node.id} on {node.host}:{node.port}",
            pid=pids[node.id],
        )
    first = cluster[0]
    return ComponentStatus(
        NAME, True, pids[first.id], first.port, f"kafka://{settings.kafka.bootstrap_servers}"
    )


def _start_node(settings: Settings, node: Node) -> int:
    """Spawn one node (formatting its storage first if new); its pid."""
    config = _write_config(settings, node)
    if not (node.data / "meta.properties").exists():
        _format_storage(settings, config, node)
    return processes.spawn(node.files, [*_java(settings, node), "kafka.Kafka", str(config)])


def stop(settings: Settings, deadline: Deadline) -> bool:
    """SIGTERM runs each broker's controlled shutdown (flushes logs, writes a clean marker).

    The nodes are stopped together: one by one, the last would wait for a controller quorum
    that is gone until the deadline.
    """
    cluster = nodes(settings)
    with ThreadPoolExecutor(len(cluster)) as pool:
        stopped = list(pool.map(lambda node: processes.stop(node.files, deadline), cluster))
    return all(stopped)


def status(settings: Settings) -> ComponentStatus:
    cluster = nodes(settings)
    pids = [processes.running_pid(node.files) for node in cluster]
    up = all(
        pid is not None and processes.port_open(node.host, node.port)
        for pid, node in zip(pids, cluster, strict=True)
    )
    first = cluster[0]
    return ComponentStatus(
        NAME, up, pids[0], first.port, f"kafka://{settings.kafka.bootstrap_servers}"
    )


def _java(settings: Settings, node: Node) -> list[str]:
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
        f"-Dkafka.logs.file={node.files.logfile}",
        "-cp",
        f"{libs}/*",
    ]


def _write_config(settings: Settings, node: Node) -> Path:
    cluster = nodes(settings)
    replicas = min(3, len(cluster))
    in_sync = min(2, replicas)
    voters = ",".join(f"{n.id}@{n.host}:{n.controller_port}" for n in cluster)
    controller = f"{node.host}:{node.controller_port}"
    protocol = settings.kafka.security_protocol
    node.root.mkdir(parents=True, exist_ok=True)
    config = node.root / "server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={node.id}",
                f"controller.quorum.voters={voters}",
                f"listeners={protocol}://{node.host}:{node.port},CONTROLLER://{controller}",
                f"advertised.listeners={protocol}://{node.host}:{node.port}",
                "controller.listener.names=CONTROLLER",
                f"inter.broker.listener.name={protocol}",
                f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,{protocol}:{protocol}",
                *_security_config(settings),
                f"log.dirs={node.data}",
                "auto.create.topics.enable=false",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=12",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={in_sync}",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"share.coordinator.state.topic.min.isr={in_sync}",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={in_sync}",
                "group.initial.rebalance.delay.ms=0",
                "num.partitions=1",
                "log.retention.hours=168",
                "log.segment.bytes=268435456",
                # A node that stops heartbeating is fenced after 4 s instead of 9 (its
                # partitions get new leaders sooner); it heartbeats every second.
                *(
                    ["broker.session.timeout.ms=4000", "broker.heartbeat.interval.ms=1000"]
                    if len(cluster) > 1
                    else []
                ),
            ]
        )
        + "\n"
    )
    config.chmod(0o600)  # it may hold the SASL password
    return config


def _security_config(settings: Settings) -> list[str]:
    """Broker properties for the clients' security settings. The local nodes speak what the
    clients do: TLS with ``local.kafka_ssl_keystore`` (and, when the clients present
    certificates, demand one signed by the same CA), SASL with ``PLAIN`` for the configured user;
    they talk to each other the same way."""
    kafka = settings.kafka
    protocol = kafka.security_protocol
    lines: list[str] = []
    if protocol in ("SSL", "SASL_SSL"):
        lines += _tls_config(settings)
    if protocol.startswith("SASL"):
        lines += _sasl_config(settings)
    return lines


def _tls_config(settings: Settings) -> list[str]:
    keystore, ca = settings.local.kafka_ssl_keystore, settings.kafka.ssl_ca_location
    if keystore is None or ca is None:
        raise ServiceStartError(
            f"local Kafka nodes speaking {settings.kafka.security_protocol} need "
            "local.kafka_ssl_keystore (their key and certificate chain, PEM) and "
            "kafka.ssl_ca_location (the CA that signed it)"
        )
    for path in (keystore, ca):
        if not path.is_file():
            raise ServiceStartError(f"{path} does not exist")
    client_auth = "required" if settings.kafka.ssl_certificate_location else "none"
    return [
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={keystore.resolve()}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={ca.resolve()}",
        f"ssl.client.auth={client_auth}",
        "ssl.endpoint.identification.algorithm=https",
    ]


def _sasl_config(settings: Settings) -> list[str]:
    kafka = settings.kafka
    if kafka.sasl_mechanism != "PLAIN":
        raise ServiceStartError(
            f"the local Kafka nodes take SASL with PLAIN, not {kafka.sasl_mechanism}: point "
            "LEARNFLOW_KAFKA__BOOTSTRAP_SERVERS at your brokers instead"
        )
    user, password = kafka.sasl_username, kafka.sasl_password
    if user is None or password is None:  # the settings refuse SASL without them
        raise ServiceStartError("kafka.sasl_username and kafka.sasl_password are needed")
    secret = password.get_secret_value()
    for value in (user, secret):
        if '"' in value or "\\" in value:
            raise ServiceStartError('a local Kafka SASL user or password may not hold " or \\')
    login = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{user}" password="{secret}" user_{user}="{secret}";'
    )
    listener = kafka.security_protocol.lower()
    return [
        "sasl.enabled.mechanisms=PLAIN",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        f"listener.name.{listener}.plain.sasl.jaas.config={login}",
    ]


def _cluster_id(settings: Settings) -> str:
    """The id every node's storage is formatted with, made once (kept beside node 1)."""
    path = settings.local.run_dir / NAME / "cluster-id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())
    return path.read_text().strip()


def _format_storage(settings: Settings, config: Path, node: Node) -> None:
    result = subprocess.run(
        [
            *_java(settings, node),
            "kafka.tools.StorageTool",
            "format",
            # One token: a base64 id may begin with "-", which would read as an option.
            f"--cluster-id={_cluster_id(settings)}",
            f"--config={config}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    with node.files.logfile.open("a") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise ServiceStartError(
            f"formatting Kafka storage of node {node.id} failed:\n"
            f"{result.stdout}{result.stderr}".rstrip()
        )


def _broker_answers(settings: Settings, host: str, port: int) -> bool:
    """The port is open and the broker serves metadata (it is past controller election)."""
    if not processes.port_open(host, port):
        return False
    config = {**settings.kafka.client_config(), "bootstrap.servers": f"{host}:{port}"}
    admin = AdminClient({**config, "log_level": 0})
    metadata = admin.list_topics(timeout=2.0)
    return bool(metadata.brokers)
