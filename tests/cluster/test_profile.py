"""The cluster profile runs what it says: three Kafka nodes holding every LearnFlow partition
three times, two Ray nodes, a shard host and an API replica on each."""

from __future__ import annotations

import time

import ray
from confluent_kafka.admin import AdminClient
from ray.util.state import list_actors

from ingest import topics
from learnflow.deadline import Deadline
from learnflow.settings import Settings
from tests.cluster.conftest import alive_nodes, host_figures

API_REPLICA = "ServeReplica:learnflow:ApiIngress"


def test_every_partition_is_on_three_kafka_nodes(settings: Settings) -> None:
    admin: AdminClient = topics.admin_client(settings.kafka)
    metadata = admin.list_topics(timeout=30)
    assert len(metadata.brokers) == 3
    for spec in topics.learnflow_topics(settings.kafka):
        assert spec.replication_factor == 3 and ("min.insync.replicas", "2") in spec.config
        partitions = metadata.topics[spec.name].partitions.values()
        assert len(partitions) == spec.partitions
        assert all(len(p.replicas) == 3 and len(p.isrs) >= 2 for p in partitions), spec.name


def test_hosts_and_api_replicas_are_spread_over_both_ray_nodes(
    two_nodes: Settings,
) -> None:
    nodes = alive_nodes()
    assert len(nodes) == 2
    placed = host_figures(two_nodes)
    assert sorted(str(f["node_id"]) for f in placed) == nodes
    held = sorted(p for f in placed for p in f["partitions"])  # type: ignore[attr-defined]
    assert held == list(range(two_nodes.kafka.partitions))
    # After a node loss, Serve puts the lost replica back once the node is there again.
    deadline = Deadline.after(90)
    while True:
        replicas = list_actors(filters=[("class_name", "=", API_REPLICA), ("state", "=", "ALIVE")])
        if sorted(r.node_id for r in replicas) == nodes or deadline.expired():
            break
        time.sleep(1.0)
    assert sorted(r.node_id for r in replicas) == nodes
    assert ray.get_runtime_context().get_node_id() in nodes
