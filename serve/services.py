"""What the API's handlers talk to, opened once per process by the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import orjson
import ray
from confluent_kafka import Consumer, KafkaException, TopicPartition

from actors import postgres_store, redis_store
from actors.redis_store import RedisStateStore
from actors.registry import shard_name
from ingest.producer import AsyncEventProducer
from learnflow import keyring, keys
from learnflow.exceptions import LearnFlowError
from learnflow.partitioning import partition_for_student
from learnflow.progress import progress_view
from learnflow.settings import Settings
from learnflow.student_state import StudentState
from serve.auth import AuthError, TokenVerifier
from serve.grading import grader
from serve.grading.catalog import Exercise
from serve.grading.sandbox import SandboxUnavailableError
from serve.limits import IdempotencyStore, RequestGuard
from serve.readiness import Readiness

logger = logging.getLogger(__name__)


class OffsetBeyondEndError(LearnFlowError):
    """A read-your-writes offset that no event has (yet) on the student's partition."""


class Grading(Protocol):
    async def grade(self, exercise: Exercise, code: str) -> dict[str, Any]:
        """The grade of ``code`` as a JSON-ready dict; raises SandboxUnavailableError."""


class LocalGrading:
    """Grades in this process (plain uvicorn, tests) with a grader of its own."""

    def __init__(self, settings: Settings) -> None:
        self._grader = grader.Grader(settings.grader, grader_lock_dir(settings))

    async def grade(self, exercise: Exercise, code: str) -> dict[str, Any]:
        return (await self._grader.grade(exercise, code)).as_dict()


def grader_lock_dir(settings: Settings) -> Path:
    return settings.local.run_dir / "grader"


class ServeGrading:
    """Grades on the ``Grader`` Serve deployment (its replicas hold the slots)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def grade(self, exercise: Exercise, code: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._handle.grade.remote(exercise.id, code)
        if "unavailable" in answer:
            raise SandboxUnavailableError(answer["unavailable"])
        return answer


class Services:
    def __init__(self, settings: Settings, grading: Grading) -> None:
        self.settings = settings
        self.grading = grading
        self.readiness = Readiness(settings)
        self.redis = redis_store.connect(settings.redis)
        self._states = RedisStateStore(self.redis, settings.shards)
        self.guard = RequestGuard(self.redis, settings.serve.rate_limit_per_minute)
        self.idempotency = IdempotencyStore(
            self.redis,
            settings.serve.idempotency_ttl_s,
            claim_ttl_s=int(settings.grader.wall_seconds) + 60,
        )
        self.producer = AsyncEventProducer(settings.kafka)
        self._verifier: TokenVerifier | None = None
        self._ring: tuple[float, keyring.KeyRing] | None = None
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._shards: dict[int, Any] = {}
        self._ends: dict[int, int] = {}
        self._watermarks = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": f"{settings.kafka.client_id}-api-offsets",
                "client.id": f"{settings.kafka.client_id}-api-offsets",
                "enable.auto.commit": False,
            }
        )

    def verifier(self) -> TokenVerifier:
        if self._verifier is None:
            try:
                self._verifier = TokenVerifier(self.settings.auth)
            except keyring.KeyRingError as err:
                raise AuthError(503, f"authentication unavailable: {err}") from err
        return self._verifier

    def signing_ring(self) -> keyring.KeyRing:
        """The key set for minting (dev tokens), re-read at most every few seconds."""
        now = time.monotonic()
        if self._ring is None or now - self._ring[0] > 5.0:
            ring = keyring.load(self.settings.auth.keys_dir)
            if self._ring is not None and self._ring[1].signing == ring.signing:
                ring = self._ring[1]  # keep the parsed private key
            self._ring = (now, ring)
        return self._ring[1]

    async def history_pool(self) -> asyncpg.Pool:
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await postgres_store.connect(self.settings.postgres, 4)
            return self._pool

    async def progress(
        self, student_id: str, min_offset: int | None, timeout_s: float
    ) -> dict[str, Any]:
        """From the student's shard (freshest); from Redis with ``stale: true`` if it can't."""
        partition = partition_for_student(student_id, self.settings.kafka.partitions)
        if min_offset is not None:
            await self._check_offset_exists(partition, min_offset)
        try:
            shard = self._shard(partition)
            view: dict[str, Any] = await asyncio.wait_for(
                shard.get.remote(student_id, min_offset, timeout_s), timeout_s + 1.0
            )
            view["stale"] = False
            return view
        except (TimeoutError, ray.exceptions.RayError, ValueError, LearnFlowError) as err:
            logger.info("progress of %s from Redis: shard-%d: %r", student_id, partition, err)
            self._shards.pop(partition, None)
        saved = await self._states.load([student_id])
        state = saved.get(student_id) or StudentState(student_id)
        view = progress_view(state, self.settings.mastery.thresholds())
        view.update(
            partition=partition, partition_offset=None, caught_up=False, source="redis", stale=True
        )
        return view

    async def _check_offset_exists(self, partition: int, offset: int) -> None:
        """An offset past the partition's end can never be applied: say so instead of waiting."""
        if offset < self._ends.get(partition, 0):
            return
        topic = self.settings.kafka.events_topic
        try:
            _, end = await asyncio.to_thread(
                self._watermarks.get_watermark_offsets,
                TopicPartition(topic, partition),
                timeout=2.0,
                cached=False,
            )
        except KafkaException as err:
            logger.info("no end offset for %s[%d]: %s", topic, partition, err)
            return  # cannot tell: the bounded wait still applies
        self._ends[partition] = int(end)
        if offset >= end:
            raise OffsetBeyondEndError(
                f"min_offset {offset} is beyond the end of your partition {partition} "
                f"(next offset {end}); use the offset a submit returned"
            )

    async def attempts(self, student_id: str, exercise_id: str) -> list[dict[str, Any]]:
        """The student's latest attempts at one exercise, newest first."""
        raw = await self.redis.zrevrange(keys.attempts(student_id, exercise_id), 0, -1)
        return [orjson.loads(item) for item in raw if isinstance(item, bytes | str)]

    def _shard(self, partition: int) -> Any:
        handle = self._shards.get(partition)
        if handle is None:
            if not ray.is_initialized():
                raise LearnFlowError("not connected to Ray")
            handle = ray.get_actor(
                shard_name(self.settings, partition), namespace=self.settings.ray.namespace
            )
            self._shards[partition] = handle
        return handle

    async def weekly(self, student_id: str, weeks: int) -> Sequence[asyncpg.Record]:
        """Weekly aggregates of the last ``weeks`` ISO weeks, newest first."""
        since = (datetime.now(UTC) - timedelta(weeks=weeks - 1)).isocalendar()
        pool = await self.history_pool()
        rows: Sequence[asyncpg.Record] = await pool.fetch(
            "SELECT component, iso_year, iso_week, attempts, correct, p_mastered "
            "FROM weekly_mastery WHERE student_id = $1 AND (iso_year, iso_week) >= ($2, $3) "
            "ORDER BY iso_year DESC, iso_week DESC, component",
            student_id,
            since.year,
            since.week,
        )
        return rows

    async def close(self) -> None:
        await self.readiness.close()
        await self.redis.aclose()
        await asyncio.to_thread(self.producer.close)
        await asyncio.to_thread(self._watermarks.close)
        if self._pool is not None:
            await self._pool.close()
