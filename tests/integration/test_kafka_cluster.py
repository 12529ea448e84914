"""Three KRaft nodes from the same jars, as the cluster profile runs them: with every partition on
three nodes, ``min.insync.replicas=2`` and ``acks=all``, a node SIGKILLed while events stream in
loses none of them, and comes back into every partition's in-sync set.

The nodes run in a run directory and on ports of their own (19092, 19192, 19292; controllers
19093–19095), beside the platform's single node.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from ingest import topics
from learnflow.deadline import Deadline
from learnflow.events import parse_event
from learnflow.settings import Settings
from ops.platform import kafka, processes
from tests.integration.pipeline import Stream, make_events

SERVERS = "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"


def cluster_settings(settings: Settings, run_dir: Path) -> Settings:
    (run_dir / kafka.NAME).mkdir(parents=True)
    (run_dir / kafka.NAME / "libs").symlink_to(kafka.libs_dir(settings))
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={
                    "bootstrap_servers": SERVERS,
                    "events_topic": "cluster.events",
                    "dlq_topic": "cluster.events.dlq",
                    "partitions": 6,
                    "replication_factor": 3,
                    "min_insync_replicas": 2,
                }
            ),
            "local": settings.local.model_copy(
                update={"run_dir": run_dir, "kafka_controller_port": 19093, "kafka_heap_mb": 256}
            ),
        }
    )


def in_sync(cluster: Settings) -> dict[int, int]:
    """Each partition of the events topic: how many replicas are in sync."""
    metadata = topics.admin_client(cluster.kafka).list_topics(
        cluster.kafka.events_topic, timeout=10
    )
    partitions = metadata.topics[cluster.kafka.events_topic].partitions
    return {p: len(info.isrs) for p, info in partitions.items()}


def wait_in_sync(cluster: Settings, seconds: float) -> dict[int, int]:
    """The in-sync counts once every partition has all three replicas in sync, or as they are
    when ``seconds`` have passed. A topic just created may not show its partitions at first."""
    deadline = Deadline.after(seconds)
    counts = in_sync(cluster)
    while (not counts or set(counts.values()) != {3}) and not deadline.expired():
        time.sleep(0.5)
        counts = in_sync(cluster)
    return counts


def read_all(cluster: Settings, expected: int) -> list[str]:
    """Every event id on the topic, reading until ``expected`` came or 60 s passed."""
    consumer = Consumer(
        {**cluster.kafka.client_config(), "group.id": "cluster-check", "enable.auto.commit": False}
    )
    consumer.assign(
        [TopicPartition(cluster.kafka.events_topic, p, 0) for p in range(cluster.kafka.partitions)]
    )
    ids: list[str] = []
    deadline = Deadline.after(60)
    try:
        while len(ids) < expected and not deadline.expired():
            for message in consumer.consume(1000, timeout=1.0):
                if message.error() is None:
                    ids.append(str(parse_event(message.value()).event_id))
    finally:
        consumer.close()
    return ids


def test_a_node_killed_mid_stream_loses_nothing_and_rejoins(
    settings: Settings, tmp_path: Path
) -> None:
    cluster = cluster_settings(settings, tmp_path / "run")
    nodes = kafka.nodes(cluster)
    assert [n.port for n in nodes] == [19092, 19192, 19292]
    kafka.start(cluster, Deadline.after(180))
    try:
        topics.ensure_topics(
            topics.admin_client(cluster.kafka),
            topics.learnflow_topics(cluster.kafka),
            Deadline.after(60),
        )
        counts = wait_in_sync(cluster, 60)
        assert len(counts) == cluster.kafka.partitions and set(counts.values()) == {3}, counts
        events = make_events(students=40, total=3000, seed=17)
        victim = nodes[1]
        with Stream(cluster, events, chunk=100, pause_s=0.05) as stream:
            while len(stream.deliveries) < 600 and stream.running:
                time.sleep(0.05)
            pid = processes.running_pid(victim.files)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed_at = len(stream.deliveries)
        assert stream.error is None, stream.error
        assert killed_at < len(events)  # events were still coming when the node died
        assert len(stream.deliveries) == len(events)

        kafka.start(cluster, Deadline.after(180))  # only the killed node is started again
        counts = wait_in_sync(cluster, 120)
        assert len(counts) == cluster.kafka.partitions and set(counts.values()) == {3}, counts

        ids = read_all(cluster, len(events))
        assert sorted(ids) == sorted(str(e.event_id) for e in events)  # each once, none lost
    finally:
        assert kafka.stop(cluster, Deadline.after(90))
    assert all(processes.running_pid(node.files) is None for node in nodes)
