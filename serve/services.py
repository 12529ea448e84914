"""What the API's handlers talk to, opened once per process by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import ray
from confluent_kafka import Consumer, KafkaException, TopicPartition
from redis.exceptions import RedisError

from actors import model_store, postgres_store, redis_store
from actors.postgres_store import PostgresHistoryStore
from actors.redis_store import RedisStateStore
from actors.registry import shard_name
from ingest.producer import AsyncEventProducer
from learnflow import keyring, keys, state_codec
from learnflow.bkt import ModelParameters
from learnflow.deadline import Deadline
from learnflow.exceptions import LearnFlowError
from learnflow.model_loading import load_model
from learnflow.partitioning import partition_for_student
from learnflow.progress import progress_view, with_priors
from learnflow.settings import Settings
from learnflow.student_state import StudentState
from serve.auth import AuthError, TokenVerifier
from serve.checkpoint_watch import CheckpointWatch
from serve.exceptions import GraderBusyError, OffsetBeyondEndError
from serve.grading import catalog, grader
from serve.grading.catalog import Exercise
from serve.grading.sandbox import SandboxUnavailableError
from serve.limits import IdempotencyStore, RequestGuard
from serve.readiness import Readiness

logger = logging.getLogger(__name__)

_REDIS_CONNECTIONS = 64
"""Per API process: requests beyond wait for a connection (Redis answers in microseconds)."""


class SubmitAdmission:
    """Submits take one of ``places`` grading places in arrival order, and queue for one as long
    as the wait they can expect stays within ``max_wait_s``: the submits ahead of them, times the
    time a grade holds its place, over the places. A grade's time is the recent mean, or the age
    of the oldest grade still running if that is longer (a stalled grader stops the queue at
    once, before any grade has finished). Past that, or with ``limit`` submits already admitted,
    the next is refused at once (503, ``Retry-After`` the expected wait): a full grader costs a
    client one quick answer, not seconds, while bursts the CPU can absorb are graded."""

    _SMOOTHING = 0.1

    def __init__(self, places: int, max_wait_s: float, limit: int) -> None:
        self._places = places
        self._free = asyncio.Semaphore(places)
        self._max_wait_s = max_wait_s
        self._limit = limit
        self._hold_s = 0.05  # a grade's time until the first ones are measured
        self._tickets = itertools.count()
        self._started: dict[int, float] = {}  # running grades: ticket -> start
        self.in_flight = 0

    def expected_wait_s(self) -> float:
        """How long the next submit would wait for a place."""
        ahead = self.in_flight - self._places + 1
        if ahead <= 0:
            return 0.0
        oldest = min(self._started.values(), default=time.monotonic())
        hold_s = max(self._hold_s, time.monotonic() - oldest)
        return ahead * hold_s / self._places

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        wait_s = self.expected_wait_s()
        if self.in_flight >= self._limit or wait_s > self._max_wait_s:
            raise GraderBusyError(
                f"the grader is busy ({self.in_flight} submissions being graded or waiting, "
                f"about {wait_s:.1f} s of work ahead); retry with the same Idempotency-Key",
                retry_after_s=max(1, math.ceil(wait_s)),
            )
        self.in_flight += 1
        try:
            async with self._free:
                ticket = next(self._tickets)
                start = self._started[ticket] = time.monotonic()
                try:
                    yield
                finally:
                    del self._started[ticket]
                    self._hold_s += self._SMOOTHING * (time.monotonic() - start - self._hold_s)
        finally:
            self.in_flight -= 1


class Grading(Protocol):
    async def grade(self, exercise: Exercise, code: str) -> dict[str, Any]:
        """The grade of ``code`` as a JSON-ready dict; raises SandboxUnavailableError."""


class LocalGrading:
    """Grades in this process with a grader of its own: the API replica with
    ``grader.placement = "ingress"``, plain uvicorn, tests."""

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
        self.redis = redis_store.connect(settings.redis, max_connections=_REDIS_CONNECTIONS)
        self._states = RedisStateStore(self.redis, settings.shards)
        self.guard = RequestGuard(self.redis, settings.serve.rate_limit_per_minute)
        grader_settings = settings.grader
        places = grader_settings.slots * (
            grader_settings.replicas if grader_settings.placement == "deployment" else 1
        )
        self.submits = SubmitAdmission(
            places, settings.serve.submit_queue_s, settings.serve.max_submits_in_flight
        )
        self.idempotency = IdempotencyStore(
            self.redis,
            settings.serve.idempotency_ttl_s,
            claim_ttl_s=int(settings.grader.wall_seconds) + 60,
        )
        self.producer = AsyncEventProducer(settings.kafka)
        self._verifier: TokenVerifier | None = None
        self._ring: tuple[float, keyring.KeyRing] | None = None
        self._history: PostgresHistoryStore | None = None
        self._pool: asyncpg.Pool | None = None
        self._history_lock = asyncio.Lock()
        self.course = tuple(
            sorted({name for exercise in catalog.load().values() for name in exercise.components})
        )
        """Every component the course's exercises are tagged with."""
        self._published = model_store.PublishedModel(
            load_model(settings.mastery), settings.mastery.model_poll_s
        )
        self._model_lookup: asyncio.Task[None] | None = None
        self._shards: dict[int, Any] = {}
        self.checkpoints = CheckpointWatch(self.redis, settings.redis, settings.kafka.events_topic)
        self._ends: dict[int, int] = {}
        self._watermarks = Consumer(
            {
                **settings.kafka.client_config("api-offsets"),
                "group.id": f"{settings.kafka.client_id}-api-offsets",
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

    async def pool(self) -> asyncpg.Pool:
        """The PostgreSQL pool, connected on first use."""
        async with self._history_lock:
            if self._pool is None:
                self._pool = await postgres_store.connect(self.settings.postgres, 4)
            return self._pool

    async def history(self) -> PostgresHistoryStore:
        """The attempt history, connected on first use."""
        if self._history is None:
            self._history = PostgresHistoryStore(await self.pool())
        return self._history

    async def model(self) -> ModelParameters:
        """The published parameters (priors of the components a student has not started).

        Looked up in PostgreSQL at most every ``mastery.model_poll_s``, in the background once
        known, so no read waits for it; on a failure the last known version stays.
        """
        published = self._published
        idle = self._model_lookup is None or self._model_lookup.done()
        first = not published.known
        if idle and published.claim():
            self._model_lookup = asyncio.create_task(self._look_up_model())
            if first:
                await asyncio.wait([self._model_lookup], timeout=2.0)
        return published.current

    async def _look_up_model(self) -> None:
        try:
            await self._published.refresh(await self.pool(), force=True)
        except (OSError, asyncpg.PostgresError, LearnFlowError) as err:
            logger.warning(
                "published model version unknown, keeping %d: %r",
                self._published.current.version, err,
            )  # fmt: skip

    def progress_keys(self, student_id: str) -> tuple[str, str, str]:
        """What a progress read needs from Redis: the student's state, its partition's
        checkpoint offset and whether the partition's shard runs (read with the request's
        admission, in the same round trip)."""
        partition = partition_for_student(student_id, self.settings.kafka.partitions)
        topic = self.settings.kafka.events_topic
        return (
            keys.state(student_id),
            keys.partition_checkpoint(topic, partition),
            keys.partition_alive(topic, partition),
        )

    async def progress(
        self,
        student_id: str,
        saved: Sequence[bytes | None],
        min_offset: int | None,
        timeout_s: float,
    ) -> dict[str, Any]:
        """The student's progress from Redis, which every checkpoint writes before the shard's
        memory moves on (so it is as fresh as the shard).

        ``saved`` holds the values of :meth:`progress_keys`. With ``min_offset`` not yet
        checkpointed, waits (at most ``timeout_s``) for the partition's checkpoint notification,
        then reads again; ``caught_up`` says whether it came. If Redis fails while waiting, the
        student's shard answers instead.
        """
        partition = partition_for_student(student_id, self.settings.kafka.partitions)
        state_raw, mark_raw, alive_raw = saved
        watermark = int(mark_raw) if mark_raw is not None else -1
        caught_up = True
        if min_offset is not None and watermark < min_offset:
            await self._check_offset_exists(partition, min_offset)
            try:
                caught_up = await self.checkpoints.wait(
                    partition, min_offset, Deadline.after(timeout_s)
                )
                if caught_up:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for key in self.progress_keys(student_id):
                            pipe.get(key)
                        state_raw, mark_raw, alive_raw = await pipe.execute()
                    watermark = int(mark_raw) if mark_raw is not None else -1
            except RedisError as err:
                logger.info("progress of %s from shard-%d: Redis: %r", student_id, partition, err)
                return await self._progress_from_shard(student_id, min_offset, timeout_s)
        state = state_codec.decode(state_raw) if state_raw else StudentState(student_id)
        view = progress_view(state, self.settings.mastery.thresholds())
        with_priors(view, await self.model(), self.course)
        view.update(
            partition=partition,
            partition_offset=watermark if watermark >= 0 else None,
            caught_up=caught_up,
            source="redis",
            # The shard is down: events may wait on Kafka until it is back.
            stale=alive_raw is None,
        )
        return view

    async def _progress_from_shard(
        self, student_id: str, min_offset: int | None, timeout_s: float
    ) -> dict[str, Any]:
        partition = partition_for_student(student_id, self.settings.kafka.partitions)
        shard = self._shard(partition)
        view: dict[str, Any] = await asyncio.wait_for(
            shard.get.remote(partition, student_id, min_offset, timeout_s), timeout_s + 1.0
        )
        view["stale"] = False
        with_priors(view, await self.model(), self.course)
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
        return await self._states.latest_attempts(student_id, exercise_id)

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
        history = await self.history()
        return await history.weekly(student_id, since.year, since.week)

    async def close(self) -> None:
        if self._model_lookup is not None:
            self._model_lookup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._model_lookup
        await self.checkpoints.close()
        await self.readiness.close()
        await self.redis.aclose()
        await asyncio.to_thread(self.producer.close)
        await asyncio.to_thread(self._watermarks.close)
        if self._history is not None:
            await self._history.close()
