"""Exactness under rebalances, crashes and service restarts, with events flowing."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable

import pytest
import ray
from ray import serve as ray_serve

from actors import registry
from ingest.deployment import build_ingest
from learnflow.deadline import Deadline
from learnflow.settings import Settings
from ops.platform import kafka as local_kafka
from ops.platform import redis as local_redis
from serve.deployment import INGEST_APP
from tests.integration.pipeline import (
    Stream,
    assert_matches_fold,
    make_events,
    wait_for_lag_zero,
)

pytestmark = pytest.mark.usefixtures("ray_cluster")


def deploy_ingest(settings: Settings, replicas: int) -> None:
    scaled = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"replicas": replicas})}
    )
    ray_serve.run(build_ingest(scaled), name=INGEST_APP, route_prefix=None, blocking=False)


def ingest_pids() -> list[int]:
    handle = ray_serve.get_app_handle(INGEST_APP)
    return [int(handle.stats.remote().result(timeout_s=30)["pid"])]


def test_scaling_the_ingest_down_and_up_loses_nothing(settings: Settings) -> None:
    events = make_events(students=1500, total=15_000, seed=77)
    deploy_ingest(settings, replicas=2)
    try:
        with Stream(settings, events, chunk=500, pause_s=0.3) as stream:
            time.sleep(3)
            deploy_ingest(settings, replicas=1)
            time.sleep(4)
            deploy_ingest(settings, replicas=2)
        assert stream.error is None, stream.error
        wait_for_lag_zero(settings)
        assert_matches_fold(settings, events, stream.deliveries)
    finally:
        deploy_ingest(settings, replicas=settings.ingest.replicas)


def kill_random_shard(settings: Settings, rng: random.Random) -> str:
    partition = rng.randrange(settings.kafka.partitions)
    pid = ray.get(registry.shard(settings, partition).stats.remote(partition), timeout=60)["pid"]
    os.kill(pid, signal.SIGKILL)
    return f"SIGKILL {registry.shard_name(settings, partition)} (pid {pid})"


def kill_ingest(settings: Settings, rng: random.Random) -> str:
    (pid,) = ingest_pids()
    os.kill(pid, signal.SIGKILL)
    return f"SIGKILL ingest replica (pid {pid})"


def restart_redis(settings: Settings, rng: random.Random) -> str:
    local_redis.stop(settings, Deadline.after(30))
    time.sleep(1.0)
    local_redis.start(settings, Deadline.after(60))
    return "restarted Redis"


def restart_kafka(settings: Settings, rng: random.Random) -> str:
    local_kafka.stop(settings, Deadline.after(60))
    time.sleep(1.0)
    local_kafka.start(settings, Deadline.after(120))
    return "restarted Kafka"


def test_chaos_loses_nothing_and_counts_nothing_twice(settings: Settings) -> None:
    rng = random.Random(2026)
    events = make_events(students=5000, total=100_000, seed=13)
    actions: list[Callable[[Settings, random.Random], str]] = [
        kill_random_shard, kill_ingest, kill_random_shard, restart_redis, kill_random_shard,
        kill_ingest, restart_kafka, kill_random_shard,
    ]  # fmt: skip
    log: list[str] = []
    with Stream(settings, events, chunk=2000, pause_s=0.5) as stream:
        for action in actions:
            time.sleep(rng.uniform(1.5, 4.0))
            try:
                log.append(action(settings, rng))
            except Exception as err:  # e.g. a replica already being replaced: try the next one
                log.append(f"{action.__name__} skipped: {err!r}")
    print("\nchaos:", *log, sep="\n  ")  # noqa: T201
    assert stream.error is None, stream.error
    assert sum("SIGKILL" in entry for entry in log) >= 5, log
    assert "restarted Redis" in log and "restarted Kafka" in log, log
    assert len(stream.deliveries) == len(events)

    wait_for_lag_zero(settings, timeout_s=600)
    assert_matches_fold(settings, events, stream.deliveries)
