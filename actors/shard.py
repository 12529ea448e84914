"""``StudentShard``: the hot mastery state (L1) of every student on one Kafka partition.

One detached, named Ray actor per partition (``shard-<p>``). The ingest sends it one call per
partition batch; the API reads a student's mastery from it, optionally waiting for an offset
(read-your-writes). Students are loaded lazily from Redis on first touch, one round trip per
batch, so a restarted shard is ready at once whatever the number of students.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict, deque
from typing import Any

from actors import postgres_store, redis_store
from actors.checkpoint import HistoryStore, StateStore
from actors.feed import POLL_S, PartitionFeed
from actors.postgres_store import PostgresHistoryStore
from actors.redis_store import RedisStateStore
from ingest.dead_letters import DeadLetterProducer
from learnflow.batch_fold import component_steps, fold_batch, parse_batch
from learnflow.batches import (
    AppliedEvent,
    BatchResult,
    CheckpointBatch,
    ComponentStep,
    DeadLetter,
    Record,
)
from learnflow.deadline import Deadline
from learnflow.model_loading import load_model
from learnflow.progress import progress_view
from learnflow.settings import Settings
from learnflow.student_state import StudentState

logger = logging.getLogger(__name__)


class StudentShard:
    """Applies batches with the mastery engine and checkpoints them before acknowledging.

    A checkpoint is three ordered steps (see :meth:`_checkpoint`); the partition watermark and
    each student's ``applied_offset`` make every replay harmless.
    """

    _redis: StateStore
    _history: HistoryStore

    def __init__(
        self, settings: Settings, partition: int, topic: str | None = None, feed: bool = False
    ) -> None:
        self.partition = partition
        self.topic = topic or settings.kafka.events_topic
        self._settings = settings
        self._model = load_model(settings.mastery)
        self._thresholds = settings.mastery.thresholds()
        self._students: OrderedDict[str, StudentState] = OrderedDict()
        self._watermark = -1
        self._started = False
        self._lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._latencies: deque[float] = deque(maxlen=settings.shards.latency_samples)
        self._counts = {"applied": 0, "skipped": 0, "dead_lettered": 0, "batches": 0}
        self._started_at = time.monotonic()
        self._next_stats = 0.0
        self._busy_s = 0.0
        self._metrics = _ShardMetrics(f"{settings.shards.name_prefix}-{partition}")
        self._lag: int | None = None
        self._feeding: asyncio.Task[None] | None = None
        if feed:  # a Ray actor's constructor runs on its event loop
            self._feeding = asyncio.get_running_loop().create_task(self._feed())

    def __repr__(self) -> str:
        return (
            f"StudentShard({self.topic}[{self.partition}] resident={len(self._students)} "
            f"checkpointed={self._watermark})"
        )

    async def apply_batch(self, records: list[Record], previous_offset: int | None) -> BatchResult:
        """Apply and checkpoint one partition batch (records in offset order).

        ``previous_offset`` is the last offset the caller sent before this batch (``None`` for
        the first batch after it started or sought): if this shard has not saved it, the batch
        would leave a gap, so it is rejected and the caller resends from the shard's watermark.
        """
        async with self._lock:
            began = time.perf_counter()
            await self._start()
            if previous_offset is not None and previous_offset > self._watermark:
                logger.warning(
                    "%s[%d]: batch after @%d but checkpointed @%d: rejected",
                    self.topic, self.partition, previous_offset, self._watermark,
                )  # fmt: skip
                return BatchResult(self.partition, self._watermark, rejected=True)
            fresh = [record for record in records if record[0] > self._watermark]
            if not fresh:
                return BatchResult(self.partition, self._watermark, skipped=len(records))
            result = await self._apply(fresh, skipped=len(records) - len(fresh))
            self._busy_s += time.perf_counter() - began
        async with self._changed:
            self._changed.notify_all()
        return result

    async def _feed(self) -> None:
        """Read this shard's partition from its checkpoint and apply it, batch after batch.

        Any failure (a store or Kafka down, this shard's first start failing) waits
        ``ingest.retry_backoff_s`` and reads again from the checkpoint: memory moves only with a
        saved batch, so the replay is harmless. Dead letters are delivered before the feed
        goes on; they are retried until the topic takes them.
        """
        feed = PartitionFeed(self._settings, self.topic, self.partition)
        dead_letters = DeadLetterProducer(self._settings.kafka)
        backoff_s = self._settings.ingest.retry_backoff_s
        positioned = False
        try:
            while True:
                try:
                    if not positioned:
                        await self._start()
                        await asyncio.to_thread(feed.seek, self._watermark + 1)
                        feed.checkpointed(self._watermark + 1)  # a commit lost with a crash
                        positioned = True
                    records = await asyncio.to_thread(feed.poll, POLL_S)
                    if records:
                        result = await self.apply_batch(records, None)
                        if result.dead_letters:
                            await self._deliver(dead_letters, result.dead_letters)
                        feed.checkpointed(result.checkpointed_offset + 1)
                    self._lag = feed.lag(self._watermark)
                    feed.commit(force=not records)
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    logger.warning(
                        "%s[%d]: feed failed, reading again from @%d: %r",
                        self.topic, self.partition, self._watermark + 1, err,
                    )  # fmt: skip
                    positioned = False
                    await asyncio.sleep(backoff_s)
        finally:
            await asyncio.to_thread(feed.close)

    async def _deliver(self, producer: DeadLetterProducer, letters: tuple[DeadLetter, ...]) -> None:
        backoff_s = self._settings.ingest.retry_backoff_s
        while True:
            try:
                await asyncio.to_thread(
                    producer.send, self.topic, self.partition, letters, Deadline.after(30.0)
                )
                return
            except Exception as err:  # nothing past an undelivered letter goes on
                logger.warning("%s[%d]: %r; retrying", self.topic, self.partition, err)
                await asyncio.sleep(backoff_s)

    async def get(
        self, student_id: str, min_offset: int | None = None, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """The student's mastery per component with levels.

        With ``min_offset``, first waits (at most ``timeout_s``) until this partition has
        checkpointed that offset; ``caught_up`` says whether it did.
        """
        await self._start()
        caught_up = True
        if min_offset is not None and self._watermark < min_offset:
            budget = Deadline.after(timeout_s or self._settings.shards.read_timeout_s)
            try:
                async with self._changed:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self._watermark >= min_offset),
                        timeout=budget.remaining(),
                    )
            except TimeoutError:
                caught_up = False
        state = self._students.get(student_id)
        if state is None:
            state = (await self._redis.load([student_id])).get(student_id)
        view = progress_view(state or StudentState(student_id), self._thresholds)
        view.update(
            partition=self.partition,
            partition_offset=self._watermark,
            caught_up=caught_up,
            source="shard",
        )
        return view

    async def state_of(self, student_ids: list[str]) -> dict[str, StudentState]:
        """Resident or saved states (for checks and tools); absent students are left out."""
        await self._start()
        found = {s: self._students[s] for s in student_ids if s in self._students}
        missing = [s for s in student_ids if s not in found]
        found.update(await self._redis.load(missing))
        return found

    async def stats(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "topic": self.topic,
            "pid": os.getpid(),
            "resident_students": len(self._students),
            "checkpointed_offset": self._watermark,
            "uptime_s": time.monotonic() - self._started_at,
            "busy_s": self._busy_s,
            "feeding": self._feeding is not None and not self._feeding.done(),
            "lag": self._lag,
            **self._counts,
        }

    async def latency_samples(self, clear: bool = True) -> list[float]:
        """Produce-to-checkpointed latencies (ms) of recently applied events."""
        samples = list(self._latencies)
        if clear:
            self._latencies.clear()
        return samples

    async def close(self) -> None:
        """Stop the feed and release the store clients (a shard living in an actor keeps them
        for its life)."""
        if self._feeding is not None:
            self._feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeding
            self._feeding = None
        if hasattr(self, "_history"):
            await self._history.close()
            del self._history
        if hasattr(self, "_redis"):
            await self._redis.close()
            del self._redis
        self._started = False

    async def _start(self) -> None:
        """Connect the stores and line Redis up with PostgreSQL (once per process)."""
        if self._started:
            return
        async with self._start_lock:
            if not self._started:
                await self._connect()

    async def _connect(self) -> None:
        # The clients are made once per process and kept when a later step fails (Redis or
        # PostgreSQL down while this shard starts): a retry reuses them instead of opening
        # another pool each time, which would exhaust PostgreSQL's connection slots.
        settings = self._settings
        if not hasattr(self, "_redis"):
            self._redis = RedisStateStore(
                redis_store.connect(settings.redis, socket_timeout_s=10.0), settings.shards
            )
        if not hasattr(self, "_history"):
            pool = await postgres_store.connect(
                settings.postgres, settings.shards.postgres_pool_size
            )
            self._history = PostgresHistoryStore(pool)
        redis_mark = await self._redis.watermark(self.topic, self.partition)
        history_mark = await self._history.watermark(self.topic, self.partition)
        if history_mark > redis_mark:
            await self._repair_redis(redis_mark, history_mark)
        self._watermark = max(redis_mark, history_mark)
        self._started = True
        logger.info(
            "%s[%d] shard started: checkpointed @%d", self.topic, self.partition, self._watermark
        )

    async def _repair_redis(self, redis_mark: int, history_mark: int) -> None:
        """Redis lost writes PostgreSQL has: rebuild those students from their history."""
        students = await self._history.students_after(self.partition, redis_mark)
        logger.warning(
            "%s[%d]: Redis checkpoint @%d behind PostgreSQL @%d; rebuilding %d students",
            self.topic, self.partition, redis_mark, history_mark, len(students),
        )  # fmt: skip
        history = await self._history.history(students)
        states: dict[str, StudentState] = {}
        applied: list[AppliedEvent] = []
        steps: list[ComponentStep] = []
        for student, events in history.items():
            state = StudentState(student)
            for item in events:
                state = state.apply(item.event, self._model, self._thresholds, item.offset)
                if item.offset > redis_mark:
                    applied.append(item)
                    steps.extend(component_steps(item.offset, item.event, state))
            states[student] = state
        await self._redis.save(
            CheckpointBatch(self.topic, self.partition, history_mark, applied, steps, states)
        )

    async def _apply(self, records: list[Record], skipped: int) -> BatchResult:
        parsed = parse_batch(records)
        loaded = await self._redis.load([s for s in parsed.students() if s not in self._students])
        resident = self._students

        def known(student: str) -> StudentState | None:
            return resident.get(student) or loaded.get(student)

        folded = fold_batch(
            self.topic, self.partition, parsed, known, self._model, self._thresholds
        )
        batch, working = folded.checkpoint, folded.checkpoint.states
        skipped += folded.skipped
        began = time.perf_counter()
        await self._checkpoint(batch)
        self._metrics.checkpoint_seconds(time.perf_counter() - began)

        # Only now, with both stores written, does memory move on.
        for student, state in loaded.items():
            if student not in working:
                self._students[student] = state
        for student, state in working.items():
            self._students[student] = state
            self._students.move_to_end(student)
        self._watermark = batch.last_offset
        self._evict()
        now_ms = time.time() * 1000.0
        self._latencies.extend(now_ms - ts for ts in folded.timestamps_ms if ts > 0)
        applied, dead = len(batch.applied), folded.dead
        self._counts["applied"] += applied
        self._counts["skipped"] += skipped
        self._counts["dead_lettered"] += len(dead)
        self._counts["batches"] += 1
        self._metrics.batch(applied, len(dead), len(self._students))
        await self._publish_stats()
        return BatchResult(self.partition, batch.last_offset, applied, skipped, dead)

    async def _publish_stats(self) -> None:
        """Leave figures in Redis for ``learnflow status`` (at most once a second)."""
        now = time.monotonic()
        if now < self._next_stats:
            return
        self._next_stats = now + 1.0
        try:
            await self._redis.publish_stats(
                self.topic, self.partition, {**self._counts, "resident": len(self._students)}
            )
        except Exception as err:  # figures for operators must never fail a batch
            logger.info("%s[%d]: stats not published: %s", self.topic, self.partition, err)

    async def _checkpoint(self, batch: CheckpointBatch) -> None:
        """Save one batch, in an order that survives a crash between any two steps.

        1. PostgreSQL, one statement (one transaction): attempt rows (ignored if their
           ``event_id`` exists), weekly aggregates (only steps above each row's
           ``last_offset`` count) and the partition watermark. A crash after this step
           replays the batch: every write of step 1 then changes nothing, so nothing is
           counted twice.
        2. Redis, one atomic script: each changed student's state with its ``applied_offset``,
           daily mastery, latest attempts, the partition watermark. A crash after this step
           replays the batch: the watermarks skip it. If Redis itself loses this write (its AOF
           syncs every second), :meth:`_start` sees its watermark behind PostgreSQL's and
           rebuilds those students from history.
        3. The caller commits the Kafka offset only after this returns. Until then, a crash
           anywhere means Kafka delivers the batch again: no event is lost.
        """
        await self._history.record(batch)
        await self._redis.save(batch)

    def _evict(self) -> None:
        excess = len(self._students) - self._settings.shards.max_resident_students
        for _ in range(max(0, excess)):
            self._students.popitem(last=False)


class _ShardMetrics:
    """Ray metrics tagged by shard; no-ops outside a Ray worker."""

    def __init__(self, shard: str) -> None:
        try:
            from ray.util import metrics
        except ImportError:  # pragma: no cover - Ray is a dependency
            self._enabled = False
            return
        self._enabled = True
        tags = {"shard": shard}
        self._applied = metrics.Counter(
            "learnflow_events_applied", "Events applied to student state", tag_keys=("shard",)
        )
        self._dead = metrics.Counter(
            "learnflow_events_dead_lettered", "Events sent to the DLQ", tag_keys=("shard",)
        )
        self._checkpoint = metrics.Histogram(
            "learnflow_checkpoint_seconds",
            "Duration of a shard checkpoint (PostgreSQL + Redis)",
            boundaries=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            tag_keys=("shard",),
        )
        self._resident = metrics.Gauge(
            "learnflow_resident_students", "Students held in shard memory", tag_keys=("shard",)
        )
        for metric in (self._applied, self._dead, self._checkpoint, self._resident):
            metric.set_default_tags(tags)

    def batch(self, applied: int, dead: int, resident: int) -> None:
        if not self._enabled:
            return
        if applied:
            self._applied.inc(applied)
        if dead:
            self._dead.inc(dead)
        self._resident.set(resident)

    def checkpoint_seconds(self, seconds: float) -> None:
        if self._enabled:
            self._checkpoint.observe(seconds)
