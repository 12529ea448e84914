"""Per-partition figures for ``learnflow status``: consumer lag and each shard's residents."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition

from learnflow import keys
from learnflow.settings import Settings
from ops.platform import redis as local_redis


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    partition: int
    end_offset: int
    committed: int | None
    lag: int | None
    resident_students: int | None
    applied: int | None


def partition_status(settings: Settings) -> list[PartitionStatus]:
    """Read from Kafka (group offsets, end offsets) and Redis (figures the shards publish)."""
    topic = settings.kafka.events_topic
    consumer = Consumer(
        {
            **settings.kafka.client_config("status"),
            "group.id": settings.ingest.group_id,
            "enable.auto.commit": False,
        }
    )
    client = local_redis.client(settings)
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]
        try:
            committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=5)}
        except KafkaException:
            committed = {}
        pipe = client.pipeline(transaction=False)
        for p in range(settings.kafka.partitions):
            pipe.hgetall(keys.partition_stats(topic, p))
        try:
            figures = pipe.execute()
        except redis.RedisError:
            figures = [{} for _ in tps]
        rows = []
        for tp, stats in zip(tps, figures, strict=True):
            _, high = consumer.get_watermark_offsets(tp, timeout=5)
            done = committed.get(tp.partition)
            done = done if done is not None and done >= 0 else None
            rows.append(
                PartitionStatus(
                    tp.partition,
                    high,
                    done,
                    None if done is None else max(0, high - done),
                    int(stats[b"resident"]) if b"resident" in stats else None,
                    int(stats[b"applied"]) if b"applied" in stats else None,
                )
            )
        return rows
    finally:
        consumer.close()
        client.close()
