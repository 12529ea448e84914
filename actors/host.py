"""``ShardHost``: the Ray actor that holds the :class:`~actors.shard.StudentShard` of several
partitions in one process.

``shard-<i>`` (in the fixed namespace) holds every partition ``p`` with
``p % shards.hosts == i``. One process per partition cost more than the work: at 1,000
events/s over 12 partitions, twelve shard processes used 87 % of a core where one process
holding the same twelve shards used 51 % (and 90 MiB of memory each). Each partition keeps its
own students and watermark, so a partition's events are still applied in order by one owner;
the host reads all its partitions with one consumer and saves what one read brought, of every
partition, in one checkpoint (one PostgreSQL transaction, one Redis MULTI/EXEC).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import ray

from actors.feed import POLL_S, PartitionFeed
from actors.shard import Folded, PreparedCheckpoint, ShardStores, StudentShard
from ingest.dead_letters import DeadLetterProducer
from learnflow.batches import BatchResult, DeadLetter, Record
from learnflow.deadline import Deadline
from learnflow.exceptions import LearnFlowError
from learnflow.settings import Settings
from learnflow.student_state import StudentState

logger = logging.getLogger(__name__)

_GC_THRESHOLDS = (50_000, 20, 100)

ALIVE_EVERY_S = 1.0
ALIVE_TTL_S = 3.0
"""A running host says so for its partitions every second (``keys.partition_alive``), each
time for this long: progress reads mark a partition's Redis copy stale a few seconds after its
host stopped."""


class NotHostedError(LearnFlowError):
    """A call named a partition this host does not hold."""


@dataclass(frozen=True)
class _Prepared:
    """A read's partitions, folded, and what their one checkpoint sends."""

    folds: list[tuple[StudentShard, Folded]]
    checkpoint: PreparedCheckpoint


def hosts(settings: Settings) -> int:
    """How many hosts there are (never more than partitions)."""
    return min(settings.shards.hosts, settings.kafka.partitions)


def host_of(settings: Settings, partition: int) -> int:
    """The index of the host that holds ``partition``."""
    return partition % hosts(settings)


def partitions_of(settings: Settings, index: int) -> list[int]:
    return [p for p in range(settings.kafka.partitions) if host_of(settings, p) == index]


class ShardHost:
    """Routes each call to its partition's shard; every method is as safe to run twice as the
    shard's (a restarted host re-runs this constructor with empty shards, which reload lazily
    and read their partitions again from their checkpoints)."""

    def __init__(self, settings: Settings, index: int, topic: str | None = None) -> None:
        self.index = index
        # Every event replaces its student's state with new objects and drops the old: nothing
        # a cycle keeps. At Python's default thresholds (700, 10, 10) the cyclic collector kept
        # walking every resident state, a third of a host's CPU under load.
        gc.set_threshold(*_GC_THRESHOLDS)
        self._settings = settings
        self.topic = topic or settings.kafka.events_topic
        self._stores = ShardStores(settings)
        self._shards = {
            p: StudentShard(settings, p, self.topic, self._stores)
            for p in partitions_of(settings, index)
        }
        self._started_at = time.monotonic()
        self._checkpoints = 0
        self._first_read_at: float | None = None
        """When the feed first read a record (seconds since the epoch)."""
        # A Ray actor's constructor runs on its event loop.
        self._feeding: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._feed()
        )

    def __repr__(self) -> str:
        return f"ShardHost({self.index}: partitions {sorted(self._shards)})"

    def _shard(self, partition: int) -> StudentShard:
        shard = self._shards.get(partition)
        if shard is None:
            raise NotHostedError(
                f"partition {partition} is not on shard host {self.index} "
                f"(it holds {sorted(self._shards)})"
            )
        return shard

    async def get(
        self,
        partition: int,
        student_id: str,
        min_offset: int | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        return await self._shard(partition).get(student_id, min_offset, timeout_s)

    async def state_of(self, partition: int, student_ids: list[str]) -> dict[str, StudentState]:
        return await self._shard(partition).state_of(student_ids)

    async def stats(self, partition: int) -> dict[str, Any]:
        figures = await self._shard(partition).stats()
        figures["host"] = self.index
        return figures

    async def all_stats(self) -> list[dict[str, Any]]:
        """Every hosted partition's figures, in partition order."""
        return [await self.stats(p) for p in sorted(self._shards)]

    async def figures(self) -> dict[str, Any]:
        """The host's own figures: its process and Ray node, partitions, checkpoints written
        and when it first read a record."""
        return {
            "host": self.index,
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "partitions": sorted(self._shards),
            "checkpoints": self._checkpoints,
            "first_read_at": self._first_read_at,
            "uptime_s": time.monotonic() - self._started_at,
        }

    async def latency_samples(self, clear: bool = True) -> list[float]:
        """Produce-to-checkpointed latencies (ms) of recently applied events, all partitions."""
        return [x for s in self._shards.values() for x in await s.latency_samples(clear)]

    async def pid(self) -> int:
        return os.getpid()

    async def close(self) -> None:
        """Stop the feed and release the store clients (a host living in an actor keeps them
        for its life)."""
        if self._feeding is not None:
            self._feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeding
            self._feeding = None
        for shard in self._shards.values():
            await shard.close()
        await self._stores.close()

    async def _feed(self) -> None:
        """Read the hosted partitions, each from its shard's checkpoint, and apply what each
        read brings in one checkpoint.

        A read is folded while the checkpoint of the one before is being written: PostgreSQL
        and Redis work on one while the host works on the next, instead of the host waiting on
        them. Checkpoints are written one after another, in order, and memory moves only with
        a saved one. Any failure (a store or Kafka down, a shard's first start failing) waits
        ``ingest.retry_backoff_s``, drops what was folded and not saved, and reads every
        partition again from its checkpoint: the replay is harmless. Dead letters are
        delivered before the next checkpoint is written; they are retried until the topic
        takes them.
        """
        shards = self._shards
        feed = PartitionFeed(self._settings, self.topic, sorted(shards), f"shard-host-{self.index}")
        dead_letters = DeadLetterProducer(self._settings.kafka)
        backoff_s = self._settings.ingest.retry_backoff_s
        positioned = False
        next_beat = 0.0
        writing: asyncio.Task[None] | None = None
        """The checkpoint of the last read folded, until it is saved and settled."""
        for shard in shards.values():
            shard.feeding = True
        try:
            while True:
                try:
                    if not positioned:
                        for shard in shards.values():
                            await shard.start()
                        marks = {p: shard.watermark + 1 for p, shard in shards.items()}
                        await asyncio.to_thread(feed.seek, marks)
                        for p, mark in marks.items():  # a commit lost with a crash
                            feed.checkpointed(p, mark)
                        positioned = True
                    records = await feed.read(POLL_S)
                    if records and self._first_read_at is None:
                        self._first_read_at = time.time()
                    await self._stores.follow_model()
                    prepared = await self._fold(records) if records else None
                    if writing is not None:
                        await writing
                        writing = None
                    if prepared is not None:
                        writing = asyncio.get_running_loop().create_task(
                            self._write(prepared, feed, dead_letters)
                        )
                    for p, shard in shards.items():
                        shard.lag = feed.lag(p, shard.watermark)
                    feed.commit(force=not records)
                    if time.monotonic() >= next_beat:
                        await self._stores.redis.mark_alive(self.topic, list(shards), ALIVE_TTL_S)
                        next_beat = time.monotonic() + ALIVE_EVERY_S
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    logger.warning(
                        "%s%s: feed failed, reading again from the checkpoints: %r",
                        self.topic, sorted(shards), err,
                    )  # fmt: skip
                    if writing is not None:  # saved and settled, or failed: either way done
                        with contextlib.suppress(Exception):
                            await writing
                        writing = None
                    for shard in shards.values():
                        shard.discard()
                    positioned = False
                    await asyncio.sleep(backoff_s)
        finally:
            if writing is not None:
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing
            for shard in shards.values():
                shard.feeding = False
            await asyncio.to_thread(feed.close)

    async def _fold(self, records: dict[int, list[Record]]) -> _Prepared | None:
        """Fold each partition's records (on top of what is folded and not yet saved), and
        make what their checkpoint sends; ``None`` if nothing is left to save."""
        folds: list[tuple[StudentShard, Folded]] = []
        for partition in sorted(records):
            shard = self._shard(partition)
            folded = await shard.fold(records[partition])
            if folded is not None:
                folds.append((shard, folded))
            await asyncio.sleep(0)  # the checkpoint being written goes on between partitions
        if not folds:
            return None
        checkpoint = self._stores.prepare([folded.folded.checkpoint for _, folded in folds])
        return _Prepared(folds, checkpoint)

    async def _write(
        self, prepared: _Prepared, feed: PartitionFeed, dead_letters: DeadLetterProducer
    ) -> None:
        """Save the folded partitions in one checkpoint, then settle each, wake its readers
        and deliver its dead letters."""
        began = time.perf_counter()
        await self._stores.write(prepared.checkpoint)
        seconds = time.perf_counter() - began
        self._checkpoints += 1
        results: list[BatchResult] = []
        for shard, folded in prepared.folds:
            shard.checkpointed(seconds)
            results.append(shard.settle(folded))
        for shard, _ in prepared.folds:
            await shard.notify()
        for result in results:
            if result.dead_letters:
                await self._deliver(dead_letters, result.partition, result.dead_letters)
            feed.checkpointed(result.partition, result.checkpointed_offset + 1)

    async def _deliver(
        self, producer: DeadLetterProducer, partition: int, letters: tuple[DeadLetter, ...]
    ) -> None:
        backoff_s = self._settings.ingest.retry_backoff_s
        while True:
            try:
                await asyncio.to_thread(
                    producer.send, self.topic, partition, letters, Deadline.after(30.0)
                )
                return
            except Exception as err:  # nothing past an undelivered letter goes on
                logger.warning("%s[%d]: %r; retrying", self.topic, partition, err)
                await asyncio.sleep(backoff_s)
