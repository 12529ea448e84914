"""The ingest path end to end: Kafka → ingest deployment → shards → PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import msgspec
import pytest
import ray
from confluent_kafka import Consumer, Producer, TopicPartition

from actors import registry
from ingest.producer import producer_config
from learnflow.deadline import Deadline
from learnflow.settings import Settings
from tests.integration.pipeline import (
    assert_matches_fold,
    make_events,
    publish,
    wait_for_lag_zero,
)

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_every_store_equals_the_fold(settings: Settings) -> None:
    events = make_events(students=2000, total=20_000, seed=42)

    deliveries = publish(settings, events)
    wait_for_lag_zero(settings)

    assert_matches_fold(settings, events, deliveries)


def test_every_partition_is_on_the_named_host_that_says_it_holds_it(settings: Settings) -> None:
    names = {
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if isinstance(actor, dict) and actor.get("namespace") == settings.ray.namespace
    }
    assert set(registry.host_names(settings)) <= names

    held = [
        (figures["partition"], figures["host"])
        for host in ray.get([h.all_stats.remote() for h in registry.ensure_shards(settings)])
        for figures in host
    ]
    assert sorted(held) == [
        (p, int(registry.shard_name(settings, p).rsplit("-", 1)[1]))
        for p in range(settings.kafka.partitions)
    ]
    with pytest.raises(ray.exceptions.RayTaskError, match="is not on shard host"):
        ray.get(registry.host(settings, 0).stats.remote(settings.kafka.partitions))


def dlq_end_offsets(settings: Settings) -> dict[int, int]:
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "probe"}
    )
    try:
        return {
            p: consumer.get_watermark_offsets(
                TopicPartition(settings.kafka.dlq_topic, p), timeout=10
            )[1]
            for p in range(settings.kafka.dlq_partitions)
        }
    finally:
        consumer.close()


def read_dlq(settings: Settings, start: dict[int, int], expected: int) -> list[dict[str, str]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"dlq-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
        }
    )
    consumer.assign([TopicPartition(settings.kafka.dlq_topic, p, o) for p, o in start.items()])
    found: list[dict[str, str]] = []
    deadline = Deadline.after(120.0)
    try:
        while len(found) < expected and not deadline.expired():
            for msg in consumer.consume(num_messages=100, timeout=deadline.cap(1.0)):
                if msg.error():
                    continue
                headers = {k: v.decode() for k, v in msg.headers() or []}
                headers["value_bytes"] = str(len(msg.value() or b""))
                found.append(headers)
    finally:
        consumer.close()
    return found


def test_bad_input_goes_to_the_dlq_and_the_stream_goes_on(settings: Settings) -> None:
    good = make_events(students=20, total=60, seed=9)
    student = good[0].student_id
    template = json.loads(good[0].to_json())
    bad_values = {
        "invalid JSON": b'{"schema_version": 1, "student_id": ',
        "missing fields": json.dumps({"schema_version": 1, "student_id": student}).encode(),
        "wrong types": json.dumps({**template, "score": "high", "passed": "yes"}).encode(),
        "1 MB value": json.dumps({**template, "exercise_id": "x" * 1_000_000}).encode(),
        "unknown schema_version": json.dumps({**template, "schema_version": 99}).encode(),
    }
    start = dlq_end_offsets(settings)
    producer = Producer(producer_config(settings.kafka))
    delivered: dict[str, tuple[int, int]] = {}

    def remember(label: str):  # type: ignore[no-untyped-def]
        def callback(err, msg):  # type: ignore[no-untyped-def]
            assert err is None, err
            delivered[label] = (msg.partition(), msg.offset())

        return callback

    half = len(good) // 2
    first = publish(settings, good[:half])
    for label, value in bad_values.items():
        producer.produce(
            settings.kafka.events_topic, key=student.encode(), value=value,
            on_delivery=remember(label),
        )  # fmt: skip
    assert producer.flush(30) == 0
    second = publish(settings, good[half:])
    wait_for_lag_zero(settings)

    letters = read_dlq(settings, start, expected=len(bad_values))
    by_source = {(int(h["source.partition"]), int(h["source.offset"])): h for h in letters}
    for label, source in delivered.items():
        assert source in by_source, f"{label} not on the DLQ"
        header = by_source[source]
        assert header["source.topic"] == settings.kafka.events_topic
        assert header["error"].startswith("invalid event"), (label, header["error"])
    assert "schema_version" in by_source[delivered["unknown schema_version"]]["error"]
    assert "score" in by_source[delivered["wrong types"]]["error"]
    assert int(by_source[delivered["1 MB value"]]["value_bytes"]) > 1_000_000
    assert_matches_fold(settings, good, first + second)


def test_a_killed_shard_recovers_lazily(settings: Settings) -> None:
    """Kill a shard holding 100,000 students; it must apply the next batch with all state."""
    partition = 5
    events = make_events(students=100_000, total=100_000, seed=5)
    producer = Producer(producer_config(settings.kafka, **{"linger.ms": 20}))
    for event in events:
        while True:
            try:
                producer.produce(
                    settings.kafka.events_topic, key=event.key, value=event.to_json(),
                    partition=partition,
                )  # fmt: skip
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0
    wait_for_lag_zero(settings, timeout_s=300)
    shard = registry.shard(settings, partition)
    assert ray.get(shard.stats.remote(partition))["resident_students"] >= 100_000

    follow_up = msgspec.structs.replace(
        make_events(students=1, total=1, seed=6)[0], student_id=events[0].student_id
    )
    began = time.monotonic()
    ray.kill(shard, no_restart=False)
    producer.produce(
        settings.kafka.events_topic, key=follow_up.key, value=follow_up.to_json(),
        partition=partition,
    )  # fmt: skip
    assert producer.flush(30) == 0
    wait_for_lag_zero(settings, timeout_s=120)
    recovered_in = time.monotonic() - began
    print(f"\nshard with 100,000 students: next batch applied {recovered_in:.2f} s after kill")  # noqa: T201

    stats = ray.get(registry.shard(settings, partition).stats.remote(partition))
    assert stats["uptime_s"] < recovered_in + 5  # a new process
    assert stats["resident_students"] < 10  # nothing was preloaded
    state = ray.get(
        registry.shard(settings, partition).state_of.remote(partition, [events[0].student_id])
    )
    assert state[events[0].student_id].components[follow_up.components[0]].attempts >= 1


def test_a_call_caught_by_a_shard_crash_is_resent_to_the_restarted_shard(
    settings: Settings,
) -> None:
    """A read waiting inside a shard when its process is SIGKILLed is answered by the restarted
    shard instead of failing (the caller need not resend it)."""
    shard = registry.shard(settings, 7)
    pid = ray.get(shard.stats.remote(7))["pid"]
    waiting = shard.get.remote(7, "nobody", 10**12, 2.0)  # waits for an offset that never comes
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    view = ray.get(waiting, timeout=60)
    assert view["caught_up"] is False
    assert view["partition"] == 7
    assert ray.get(shard.stats.remote(7))["pid"] != pid


def test_a_shard_retrying_its_start_reuses_its_connections(settings: Settings) -> None:
    """While Redis is unreachable a shard's start fails again and again; each retry must reuse
    the PostgreSQL pool it already opened, or the retries use up PostgreSQL's slots."""
    import asyncio

    import asyncpg

    from actors.postgres_store import connection_args
    from actors.shard import StudentShard

    no_redis = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"url": "redis://127.0.0.1:1/0"})}
    )

    async def connections() -> int:
        conn = await asyncpg.connect(**connection_args(settings.postgres))
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                    settings.postgres.database,
                )
            )
        finally:
            await conn.close()

    async def retries() -> tuple[int, int]:
        shard = StudentShard(no_redis, 0, topic="test.no-redis")
        before = await connections()
        try:
            for _ in range(8):
                with pytest.raises(Exception):  # noqa: B017 - Redis refuses: any client error
                    await shard.start()
            return before, await connections()
        finally:
            await shard.close()

    before, after = asyncio.run(retries())
    assert after - before <= settings.shards.postgres_pool_size
