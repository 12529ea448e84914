"""``StudentShard``: the hot mastery state (L1) of every student on one Kafka partition.

A :class:`~actors.host.ShardHost` actor holds the shards of several partitions and feeds them
what it reads of their partitions; the API reads a student's mastery from a shard, optionally
waiting for an offset (read-your-writes). Students are loaded lazily from Redis on first touch,
one round trip per batch, so a restarted shard is ready at once whatever the number of
students.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import asyncpg

from actors import model_store, postgres_store, redis_store
from actors.checkpoint import HistoryStore, StateStore
from actors.postgres_store import PostgresHistoryStore
from actors.redis_store import RedisStateStore
from learnflow.batch_fold import FoldedBatch, applied_event, fold_batch, parse_batch
from learnflow.batches import AppliedEvent, BatchResult, CheckpointBatch, Record
from learnflow.bkt import ModelParameters
from learnflow.deadline import Deadline
from learnflow.model_loading import load_model
from learnflow.progress import progress_view
from learnflow.settings import Settings
from learnflow.student_state import StudentState

logger = logging.getLogger(__name__)


class ShardStores:
    """The store clients of one process's shards: a host's shards share them (one PostgreSQL
    pool and one Redis connection per process, not per partition).

    The clients are made once and kept when a later step fails (Redis or PostgreSQL down while
    a shard starts): a retry reuses them instead of opening another pool each time, which would
    exhaust PostgreSQL's connection slots.
    """

    redis: StateStore
    history: HistoryStore
    pool: asyncpg.Pool

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = asyncio.Lock()
        self.published = model_store.PublishedModel(
            load_model(settings.mastery), settings.mastery.model_poll_s
        )

    async def connect(self) -> None:
        async with self._lock:
            if not hasattr(self, "redis"):
                self.redis = RedisStateStore(
                    redis_store.connect(self._settings.redis, socket_timeout_s=10.0),
                    self._settings.shards,
                )
            if not hasattr(self, "history"):
                self.pool = await postgres_store.connect(
                    self._settings.postgres, self._settings.shards.postgres_pool_size
                )
                self.history = PostgresHistoryStore(self.pool)

    @property
    def model(self) -> ModelParameters:
        """The parameters every batch is folded with, one version for a whole batch."""
        return self.published.current

    async def follow_model(self, force: bool = False) -> None:
        """Switch to the published model version if it changed. Call between batches, never
        during one: a batch is folded with one version."""
        await self.published.refresh(self.pool, force)

    async def checkpoint(self, batches: list[CheckpointBatch]) -> None:
        """Save one checkpoint, in an order that survives a crash between any two steps.

        1. PostgreSQL, one transaction: lock and read each partition's watermark, copy in the
           attempt rows above it, add the weekly sums of the steps above it, move it on. A
           crash after this step replays the batches: they lie at or below the watermark
           then, so nothing is counted twice.
        2. Redis, one MULTI/EXEC: each changed student's state with its ``applied_offset``,
           daily mastery, latest attempts, each partition's watermark. A crash after this step
           replays the batches: the watermarks skip them. If Redis itself loses this write (its
           AOF syncs every second), :meth:`StudentShard._start` sees its watermark behind
           PostgreSQL's and rebuilds those students from history.
        3. Only then do the shards' memory and the feed's position move on. Until then, a
           crash anywhere means the batches are read again: no event is lost.
        """
        await self.write(self.prepare(batches))

    def prepare(self, batches: list[CheckpointBatch]) -> PreparedCheckpoint:
        """What :meth:`checkpoint` sends for ``batches``, made ahead of the writing: a host
        makes it with the fold, so that while a checkpoint is written the stores do all the
        work left."""
        return PreparedCheckpoint(batches, self.history.rows(batches), self.redis.commands(batches))

    async def write(self, prepared: PreparedCheckpoint) -> None:
        """:meth:`checkpoint` with what was made ahead."""
        await self.history.record(prepared.batches, prepared.rows)
        await self.redis.save(prepared.batches, prepared.commands)

    async def close(self) -> None:
        if hasattr(self, "history"):
            await self.history.close()
            del self.history
        if hasattr(self, "redis"):
            await self.redis.close()
            del self.redis


@dataclass(frozen=True)
class PreparedCheckpoint:
    """One checkpoint's batches and what writing them sends: the attempt rows for PostgreSQL
    (``None``: the store makes them as it writes) and the Redis transaction's commands."""

    batches: list[CheckpointBatch]
    rows: bytes | None
    commands: list[bytes]


@dataclass
class Folded:
    """A batch folded on a copy of its students, not yet checkpointed (memory unchanged)."""

    folded: FoldedBatch
    loaded: dict[str, StudentState]
    skipped: int
    began: float


class StudentShard:
    """Applies batches with the mastery engine and checkpoints them before acknowledging.

    A batch is folded (:meth:`fold`), checkpointed (:meth:`ShardStores.checkpoint`, alone or
    with other partitions' batches) and only then settled into memory (:meth:`settle`); the
    partition watermark and each student's ``applied_offset`` make every replay harmless.
    """

    def __init__(
        self,
        settings: Settings,
        partition: int,
        topic: str | None = None,
        stores: ShardStores | None = None,
    ) -> None:
        self.partition = partition
        self.topic = topic or settings.kafka.events_topic
        self._settings = settings
        self._thresholds = settings.mastery.thresholds()
        self._students: OrderedDict[str, StudentState] = OrderedDict()
        self._watermark = -1
        self._pending: dict[str, StudentState] = {}
        """States of batches folded but not yet checkpointed, newest: what the next fold
        starts from (a host folds its next read while the last one is being written)."""
        self._folded_to = -1
        """The last offset folded: the watermark, or beyond it while a batch is pending."""
        self._started = False
        self._own_stores = stores is None
        self._stores = stores or ShardStores(settings)
        self._start_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._latencies: deque[float] = deque(maxlen=settings.shards.latency_samples)
        self._counts = {"applied": 0, "skipped": 0, "dead_lettered": 0, "batches": 0}
        self._started_at = time.monotonic()
        self._next_stats = 0.0
        self._busy_s = 0.0
        self._metrics = _ShardMetrics(f"{settings.shards.name_prefix}-{partition}")
        self._lag: int | None = None
        self.feeding = False

    @property
    def lag(self) -> int | None:
        """Records on the partition after the checkpoint, as its feed last saw them."""
        return self._lag

    @lag.setter
    def lag(self, records: int | None) -> None:
        self._lag = records
        if records is not None:
            self._metrics.feed(records, self._stores.model.version, len(self._students))

    def __repr__(self) -> str:
        return (
            f"StudentShard({self.topic}[{self.partition}] resident={len(self._students)} "
            f"checkpointed={self._watermark})"
        )

    @property
    def watermark(self) -> int:
        """The last offset of this partition saved in both stores."""
        return self._watermark

    async def fold(self, records: list[Record]) -> Folded | None:
        """Fold the records above the last folded offset on copies of their students (loading
        those not resident), on top of any batch folded but not yet settled; ``None`` if every
        record was applied before. One caller (the host's feed), after :meth:`start`; batches
        are settled in the order they were folded, or all dropped by :meth:`discard`."""
        began = time.perf_counter()
        fresh = [record for record in records if record[0] > self._folded_to]
        if not fresh:
            self._counts["skipped"] += len(records)
            return None
        parsed = parse_batch(fresh)
        pending, resident = self._pending, self._students
        loaded = await self._stores.redis.load(
            [s for s in parsed.students() if s not in pending and s not in resident]
        )

        def known(student: str) -> StudentState | None:
            return pending.get(student) or resident.get(student) or loaded.get(student)

        folded = fold_batch(
            self.topic, self.partition, parsed, known, self._stores.model, self._thresholds
        )
        pending.update(folded.checkpoint.states)
        self._folded_to = folded.checkpoint.last_offset
        return Folded(folded, loaded, len(records) - len(fresh) + folded.skipped, began)

    def discard(self) -> None:
        """Forget the batches folded and not settled (their checkpoint failed or never ran):
        the next fold starts from the checkpoint again."""
        self._pending.clear()
        self._folded_to = self._watermark

    def checkpointed(self, seconds: float) -> None:
        self._metrics.checkpoint_seconds(seconds)

    def settle(self, prepared: Folded) -> BatchResult:
        """Move memory on to a batch whose checkpoint is saved."""
        folded = prepared.folded
        batch, working = folded.checkpoint, folded.checkpoint.states
        for student, state in prepared.loaded.items():
            if student not in working:
                self._students[student] = state
        pending = self._pending
        for student, state in working.items():
            self._students[student] = state
            self._students.move_to_end(student)
            if pending.get(student) is state:  # no later batch changed the student since
                del pending[student]
        self._watermark = batch.last_offset
        self._evict()
        now_ms = time.time() * 1000.0
        self._latencies.extend(now_ms - ts for ts in folded.timestamps_ms if ts > 0)
        applied, dead = len(batch.applied), folded.dead
        self._counts["applied"] += applied
        self._counts["skipped"] += prepared.skipped
        self._counts["dead_lettered"] += len(dead)
        self._counts["batches"] += 1
        self._busy_s += time.perf_counter() - prepared.began
        self._metrics.batch(applied, len(dead))
        return BatchResult(self.partition, batch.last_offset, applied, prepared.skipped, dead)

    async def notify(self) -> None:
        """Wake the reads waiting for an offset, and leave figures for operators."""
        async with self._changed:
            self._changed.notify_all()
        await self._publish_stats()

    async def get(
        self, student_id: str, min_offset: int | None = None, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """The student's mastery per component with levels.

        With ``min_offset``, first waits (at most ``timeout_s``) until this partition has
        checkpointed that offset; ``caught_up`` says whether it did.
        """
        await self.start()
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
            state = (await self._stores.redis.load([student_id])).get(student_id)
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
        await self.start()
        found = {s: self._students[s] for s in student_ids if s in self._students}
        missing = [s for s in student_ids if s not in found]
        found.update(await self._stores.redis.load(missing))
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
            "feeding": self.feeding,
            "lag": self.lag,
            "model_version": self._stores.model.version,
            **self._counts,
        }

    async def latency_samples(self, clear: bool = True) -> list[float]:
        """Produce-to-checkpointed latencies (ms) of recently applied events."""
        samples = list(self._latencies)
        if clear:
            self._latencies.clear()
        return samples

    async def close(self) -> None:
        """Release the store clients if this shard made them (a host closes the ones its
        shards share)."""
        if self._own_stores:
            await self._stores.close()
        self._started = False

    async def start(self) -> None:
        """Connect the stores and line Redis up with PostgreSQL (once per process)."""
        if self._started:
            return
        async with self._start_lock:
            if not self._started:
                await self._connect()

    async def _connect(self) -> None:
        await self._stores.connect()
        await self._stores.follow_model(force=True)  # a restarted shard: the published version
        redis_mark = await self._stores.redis.watermark(self.topic, self.partition)
        history_mark = await self._stores.history.watermark(self.topic, self.partition)
        if history_mark > redis_mark:
            await self._repair_redis(redis_mark, history_mark)
        self._watermark = self._folded_to = max(redis_mark, history_mark)
        self._pending.clear()
        self._started = True
        logger.info(
            "%s[%d] shard started: checkpointed @%d", self.topic, self.partition, self._watermark
        )

    async def _repair_redis(self, redis_mark: int, history_mark: int) -> None:
        """Redis lost writes PostgreSQL has: rebuild those students from their history."""
        history_store = self._stores.history
        students = await history_store.students_after(self.partition, redis_mark)
        logger.warning(
            "%s[%d]: Redis checkpoint @%d behind PostgreSQL @%d; rebuilding %d students",
            self.topic, self.partition, redis_mark, history_mark, len(students),
        )  # fmt: skip
        history = await history_store.history(students)
        # Each event again with the version it was applied with: the rebuilt states are the
        # ones the lost checkpoint held, whatever was published since.
        current = self._stores.model
        models = {current.version: current}
        for events in history.values():
            for item in events:
                if item.model_version not in models:
                    models[item.model_version] = await self._stored_model(item.model_version)
        states: dict[str, StudentState] = {}
        applied: list[AppliedEvent] = []
        for student, events in history.items():
            state = StudentState(student)
            for item in events:
                model = models[item.model_version]
                state = state.apply(item.event, model, self._thresholds, item.offset)
                if item.offset > redis_mark:
                    applied.append(applied_event(item.offset, item.event, state, model.version))
            states[student] = state
        version = self._stores.model.version
        batch = CheckpointBatch(self.topic, self.partition, history_mark, applied, states, version)
        await self._stores.redis.save([batch])

    async def _stored_model(self, version: int) -> ModelParameters:
        try:
            return await model_store.load(self._stores.pool, version)
        except model_store.UnknownModelVersionError:
            # Applied with a parameter file's version that was never stored: the file is what
            # the shards use now, or it is gone.
            logger.warning(
                "%s[%d]: model version %d is not stored; rebuilding with version %d",
                self.topic, self.partition, version, self._stores.model.version,
            )  # fmt: skip
            return self._stores.model

    async def _publish_stats(self) -> None:
        """Leave figures in Redis for ``learnflow status`` (at most once a second)."""
        now = time.monotonic()
        if now < self._next_stats:
            return
        self._next_stats = now + 1.0
        try:
            await self._stores.redis.publish_stats(
                self.topic, self.partition, {**self._counts, "resident": len(self._students)}
            )
        except Exception as err:  # figures for operators must never fail a batch
            logger.info("%s[%d]: stats not published: %s", self.topic, self.partition, err)

    def _evict(self) -> None:
        excess = len(self._students) - self._settings.shards.max_resident_students
        for _ in range(max(0, excess)):
            self._students.popitem(last=False)


_RECORD_EVERY_S = 1.0


class _ShardMetrics:
    """Ray metrics tagged by shard; no-ops outside a Ray worker."""

    def __init__(self, shard: str) -> None:
        self._next_record = 0.0
        self._pending_applied = self._pending_dead = 0
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
        self._lag = metrics.Gauge(
            "learnflow_consumer_lag",
            "Records on the partition after the shard's checkpoint",
            tag_keys=("shard",),
        )
        self._version = metrics.Gauge(
            "learnflow_model_version",
            "Model version the shard applies events with",
            tag_keys=("shard",),
        )
        every = (self._applied, self._dead, self._checkpoint, self._resident, self._lag,
                 self._version)  # fmt: skip
        for metric in every:
            metric.set_default_tags(tags)

    def batch(self, applied: int, dead: int) -> None:
        """Counted here, recorded with the next :meth:`feed` that is due."""
        self._pending_applied += applied
        self._pending_dead += dead

    def feed(self, lag: int, model_version: int, resident: int) -> None:
        """After every read of the partition, records the figures at most every
        ``_RECORD_EVERY_S``: each Ray metric call costs ~10 µs, and a steady feed reads a few
        hundred times a second. Ray exports a gauge's value only while it keeps being set, so
        they are all set here, not once per batch."""
        now = time.monotonic()
        if not self._enabled or now < self._next_record:
            return
        self._next_record = now + _RECORD_EVERY_S
        self._lag.set(lag)
        self._version.set(model_version)
        self._resident.set(resident)
        if self._pending_applied:
            self._applied.inc(self._pending_applied)
            self._pending_applied = 0
        if self._pending_dead:
            self._dead.inc(self._pending_dead)
            self._pending_dead = 0

    def checkpoint_seconds(self, seconds: float) -> None:
        if self._enabled:
            self._checkpoint.observe(seconds)
