"""The Redis state store: current student states (L2), daily mastery, recent attempts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from actors.checkpoint import CheckpointBatch
from learnflow import keys, state_codec
from learnflow.settings import RedisSettings, ShardSettings
from learnflow.student_state import StudentState


def connect(settings: RedisSettings, socket_timeout_s: float | None = None) -> aioredis.Redis:
    """An asyncio client that survives a Redis restart: a dead pooled connection is retried."""
    return aioredis.Redis.from_url(
        settings.url,
        password=settings.password.get_secret_value() if settings.password else None,
        socket_timeout=socket_timeout_s or settings.socket_timeout_s,
        socket_connect_timeout=settings.socket_timeout_s,
        health_check_interval=5,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


class RedisStateStore:
    """One MULTI/EXEC per checkpoint: a batch's students, attempts and watermark land together.

    Every write is idempotent (SET of the whole state, HSET of end-of-day values, ZADD scored by
    offset), so a batch written twice leaves Redis as written once.
    """

    def __init__(self, client: aioredis.Redis, settings: ShardSettings) -> None:
        self._redis = client
        self._ttl = timedelta(days=settings.daily_mastery_ttl_days)
        self._attempts_kept = settings.attempts_kept

    async def load(self, student_ids: Sequence[str]) -> dict[str, StudentState]:
        if not student_ids:
            return {}
        raw = await self._redis.mget([keys.state(s) for s in student_ids])
        return {
            student: state_codec.decode(value)
            for student, value in zip(student_ids, raw, strict=True)
            if value is not None
        }

    async def save(self, batch: CheckpointBatch) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for student, state in batch.states.items():
                pipe.set(keys.state(student), state_codec.encode(state))
            daily: dict[str, dict[str, float]] = {}
            for step in batch.steps:
                # Later steps of the same day overwrite earlier ones: the end-of-day value.
                daily.setdefault(keys.daily_mastery(step.student_id, step.day), {})[
                    step.component
                ] = step.p_mastered
            for key, mapping in daily.items():
                pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                pipe.expire(key, self._ttl)
            touched: set[str] = set()
            for applied in batch.applied:
                event = applied.event
                key = keys.attempts(event.student_id, event.exercise_id)
                summary = json.dumps(
                    {
                        "event_id": str(event.event_id),
                        "passed": event.passed,
                        "score": event.score,
                        "tests_passed": event.tests_passed,
                        "tests_total": event.tests_total,
                        "submitted_at": event.submitted_at.isoformat(),
                        "offset": applied.offset,
                    },
                    separators=(",", ":"),
                )
                pipe.zadd(key, {summary: applied.offset})
                touched.add(key)
            for key in touched:
                pipe.zremrangebyrank(key, 0, -self._attempts_kept - 1)
            pipe.set(keys.partition_checkpoint(batch.topic, batch.partition), batch.last_offset)
            await pipe.execute()

    async def publish_stats(self, topic: str, partition: int, figures: dict[str, int]) -> None:
        await self._redis.hset(keys.partition_stats(topic, partition), mapping=figures)  # type: ignore[arg-type]

    async def watermark(self, topic: str, partition: int) -> int:
        value = await self._redis.get(keys.partition_checkpoint(topic, partition))
        return int(value) if value is not None else -1

    async def close(self) -> None:
        await self._redis.aclose()
