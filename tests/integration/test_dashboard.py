"""What data scientists and operators see on the Ray dashboard and its metrics endpoint."""

from __future__ import annotations

import re

import httpx
import pytest
from confluent_kafka import Producer
from ray.util.state import list_actors

from actors import registry
from learnflow.settings import Settings
from tests.integration.pipeline import make_events, publish, wait_for_lag_zero, wait_until

pytestmark = pytest.mark.usefixtures("ray_cluster")

SHARD_METRICS = (
    "ray_learnflow_events_applied",
    "ray_learnflow_events_dead_lettered",
    "ray_learnflow_checkpoint_seconds",
    "ray_learnflow_consumer_lag",
    "ray_learnflow_resident_students",
    "ray_learnflow_model_version",
)


def exported(settings: Settings) -> dict[str, dict[str, float]]:
    """``name -> shard -> value`` of the LearnFlow metrics the head exports (histograms by
    their ``_count``)."""
    text = httpx.get(f"http://127.0.0.1:{settings.ray.metrics_port}/metrics", timeout=10).text
    found: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = re.match(
            r'^(ray_learnflow_\w+?)(_total|_count)?\{.*shard="([^"]+)".*\} (\S+)$', line
        )
        if match and not match[1].endswith(("_bucket", "_sum")):
            found.setdefault(match[1], {})[match[3]] = float(match[4])
    return found


def test_shard_metrics_are_exported_per_shard(settings: Settings) -> None:
    events = make_events(students=50, total=400, seed=3)
    publish(settings, events)
    malformed = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    malformed.produce(settings.kafka.events_topic, key=b"dashboard", value=b"not an event")
    assert malformed.flush(30) == 0
    wait_for_lag_zero(settings)
    shards = {f"{settings.shards.name_prefix}-{p}" for p in range(settings.kafka.partitions)}

    # Ray reports metrics every few seconds.
    wait_until(lambda: set(SHARD_METRICS) <= set(exported(settings)), 90)
    wait_until(lambda: set(exported(settings)["ray_learnflow_model_version"]) == shards, 90)
    # A shard records its figures once a second: the last ones come with its next read.
    wait_until(
        lambda: sum(exported(settings)["ray_learnflow_events_applied"].values()) >= len(events),
        90,
    )
    figures = exported(settings)
    assert set(figures["ray_learnflow_consumer_lag"]) == shards
    assert all(count > 0 for count in figures["ray_learnflow_checkpoint_seconds"].values())


def test_shard_hosts_are_named_actors_on_the_dashboard(settings: Settings) -> None:
    alive = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    names = {actor.name for actor in alive if actor.name}

    assert set(registry.host_names(settings)) <= names
