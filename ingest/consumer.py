"""The ingest loop: Kafka → one shard call per partition batch → commit what is checkpointed.

Runs in its own thread (a blocking poll must never hold a Serve replica's event loop). Per
partition at most ``max_in_flight_per_partition`` batches are in flight (records arriving
meanwhile wait and go as the next batch); results are taken in order. A batch's offset is
committed only after its shard has checkpointed it and its dead letters are on the DLQ. Any
failure (shard restarting, a store down, a rejected batch) rewinds the partition to its last
commit: the shards' watermarks make the replay harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import ray
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from actors import registry
from ingest.dead_letters import DeadLetterProducer
from ingest.topics import consumer_config
from learnflow.batches import BatchResult, Record
from learnflow.deadline import Deadline
from learnflow.settings import Settings

logger = logging.getLogger(__name__)

_BATCH_TIMEOUT_S = 120.0


@dataclass(slots=True)
class InFlight:
    ref: Any
    first: int
    last: int


class IngestLoop:
    """One consumer in group ``settings.ingest.group_id``; start it, stop it, ask if alive."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self._settings = settings
        self.topic = topic or settings.kafka.events_topic
        self._config = settings.ingest
        self._consumer = Consumer(
            consumer_config(
                settings.kafka,
                self._config.group_id,
                "ingest",
                **{
                    "partition.assignment.strategy": "cooperative-sticky",
                    "session.timeout.ms": 15000,
                    "heartbeat.interval.ms": 1000,
                    "max.poll.interval.ms": 300000,
                    # Let the broker gather up to 10 ms of records per fetch instead of
                    # answering every single message: far fewer requests at a bounded cost in
                    # latency.
                    "fetch.min.bytes": 64 * 1024,
                    "fetch.wait.max.ms": self._config.fetch_wait_ms,
                },
            )
        )
        self._dead_letters = DeadLetterProducer(settings.kafka)
        self._shards: dict[int, Any] = {}
        self._in_flight: dict[int, deque[InFlight]] = defaultdict(deque)
        self._pending: dict[int, list[Record]] = defaultdict(list)
        self._pending_since: dict[int, float] = {}
        self._to_commit: dict[int, int] = {}
        self._previous: dict[int, int | None] = {}
        self._committed: dict[int, int] = {}
        self._epoch: dict[int, int] = defaultdict(int)
        self._assigned: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="learnflow-ingest", daemon=True)
        self.error: BaseException | None = None
        self.counts = {"batches": 0, "applied": 0, "dead_lettered": 0, "rewinds": 0}
        self.peak_in_flight = 0
        """The most shard calls that were in flight at once."""
        self._lag: dict[int, int] = {}
        self._metrics = _IngestMetrics()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish in-flight batches, commit them, leave the group."""
        self._stop.set()
        if self._thread.ident is not None:  # it was started
            self._thread.join(timeout_s)

    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def stats(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            # Copies first: the loop thread changes these while another thread asks.
            "assigned": sorted(set(self._assigned)),
            "lag": dict(sorted(dict(self._lag).items())),
            "committed": dict(sorted(dict(self._committed).items())),
            "alive": self.alive(),
            "error": None if self.error is None else repr(self.error),
            "peak_in_flight": self.peak_in_flight,
            **self.counts,
        }

    def _run(self) -> None:
        try:
            self._consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )  # fmt: skip
            next_lag = next_commit = 0.0
            while not self._stop.is_set():
                self._dispatch(self._poll(min(self._wake_at(), next_commit, next_lag)))
                self._harvest()
                self._send_ready()
                now = time.monotonic()
                if now >= next_commit:
                    self._flush_commits()
                    next_commit = now + self._config.commit_interval_s
                if now >= next_lag:
                    self._update_lag()
                    next_lag = now + 1.0
            for partition in list(self._in_flight):
                self._drain(partition)
        except BaseException as err:
            self.error = err
            logger.exception("ingest loop on %s died", self.topic)
        finally:
            try:
                self._consumer.close()
            except RuntimeError:
                pass

    def _poll(self, until: float) -> list[Any]:
        """Wait at most until ``until`` (monotonic) for a record, then take every one queued.

        ``consume`` would wait out its whole timeout unless the batch filled up; ``poll``
        returns with the first record, and ``consume(timeout=0)`` adds what came with it.
        """
        first = self._consumer.poll(max(0.0, until - time.monotonic()))
        if first is None:
            return []
        return [first, *self._consumer.consume(num_messages=self._config.max_batch, timeout=0)]

    def _wake_at(self) -> float:
        """When the loop must look again even if no record comes (monotonic seconds)."""
        now = time.monotonic()
        if any(self._in_flight.values()):
            return now + self._config.busy_poll_s
        lingering = [
            self._pending_since.get(partition, now) + self._config.linger_s
            for partition, pending in self._pending.items()
            if pending
        ]
        return min([now + self._config.poll_timeout_s, *lingering])

    def _dispatch(self, messages: list[Any]) -> None:
        now = time.monotonic()
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consume error on %s: %s", self.topic, err)
                continue
            pending = self._pending[msg.partition()]
            if not pending:
                self._pending_since[msg.partition()] = now
            pending.append((msg.offset(), msg.key(), msg.value(), msg.timestamp()[1]))
        self._send_ready()

    def _send_ready(self) -> None:
        """Send each partition's pending records as one batch once it has a free slot.

        Records wait while the partition's shard is busy, so batches grow with the load: a busy
        shard gets everything that came meanwhile. An idle one gets its records once the first
        has waited ``linger_s`` or ``linger_records`` have come, whichever is sooner.

        At most ``max_in_flight_total`` calls are in flight across all partitions, and the
        partition whose records have waited longest goes first. Every call has a fixed CPU cost
        besides what its events cost, so on a busy machine more calls at once would only queue
        for the CPU; held back, records join their partition's next batch and the calls pace
        themselves. A partition with a full batch waiting still goes (the backpressure below).
        """
        limit = self._config.max_in_flight_per_partition
        cap = self._config.max_in_flight_total or None
        linger_until = time.monotonic() - self._config.linger_s
        waiting = [p for p, pending in self._pending.items() if pending]
        waiting.sort(key=lambda p: self._pending_since.get(p, 0.0))
        for partition in waiting:
            pending = self._pending[partition]
            in_flight = self._calls_in_flight()
            if cap is not None and in_flight >= cap and len(pending) < self._config.max_batch:
                continue
            if (
                len(pending) < self._config.linger_records
                and self._pending_since.get(partition, 0.0) > linger_until
            ):
                continue
            if len(self._in_flight[partition]) >= limit:
                if len(pending) < self._config.max_batch:
                    continue
                # Backpressure: a full batch is waiting, so wait for the oldest in flight.
                epoch = self._epoch[partition]
                self._finalize_head(partition)
                if self._epoch[partition] != epoch or not pending:
                    continue
            if partition not in self._assigned:
                pending.clear()
                continue
            records = pending[: self._config.max_batch]
            del pending[: self._config.max_batch]
            self._pending_since[partition] = time.monotonic()
            handle = self._shard(partition)
            ref = handle.apply_batch.remote(partition, records, self._previous.get(partition))
            self._in_flight[partition].append(InFlight(ref, records[0][0], records[-1][0]))
            self._previous[partition] = records[-1][0]
            self.peak_in_flight = max(self.peak_in_flight, self._calls_in_flight())

    def _calls_in_flight(self) -> int:
        return sum(len(queue) for queue in self._in_flight.values())

    def _harvest(self) -> bool:
        """Finish every partition whose oldest batch is done, without blocking."""
        heads = {queue[0].ref: p for p, queue in self._in_flight.items() if queue}
        finished = False
        while heads:
            ready, _ = ray.wait(list(heads), num_returns=len(heads), timeout=0)
            if not ready:
                break
            finished = True
            next_heads = {}
            for ref in ready:
                partition = heads[ref]
                self._finalize_head(partition)
                queue = self._in_flight[partition]
                if queue:
                    next_heads[queue[0].ref] = partition
            heads = next_heads
        return finished

    def _finalize_head(self, partition: int) -> None:
        """Wait for the partition's oldest batch; commit it, or rewind on any failure."""
        item = self._in_flight[partition].popleft()
        try:
            result: BatchResult = ray.get(item.ref, timeout=_BATCH_TIMEOUT_S)
        except (RayActorError, GetTimeoutError, RayError) as err:
            self._rewind(partition, f"batch @{item.first}-{item.last} failed: {err!r}")
            return
        if result.rejected:
            self._rewind(partition, "shard rejected a batch that did not follow its checkpoint")
            return
        if result.dead_letters:
            try:
                self._dead_letters.send(
                    self.topic, partition, result.dead_letters, Deadline.after(30.0)
                )
            except Exception as err:  # nothing may be committed past an undelivered letter
                self._rewind(partition, f"dead letters not delivered: {err!r}")
                return
        self._commit(partition, result.checkpointed_offset + 1)
        self.counts["batches"] += 1
        self.counts["applied"] += result.applied
        self.counts["dead_lettered"] += len(result.dead_letters)

    def _commit(self, partition: int, offset: int) -> None:
        """Note a checkpointed offset; :meth:`_flush_commits` sends them together."""
        if offset > self._committed.get(partition, -1):
            self._committed[partition] = offset
            self._to_commit[partition] = offset

    def _flush_commits(self) -> None:
        """One asynchronous commit for every partition that moved: a commit lost in a crash
        only means a harmless replay, so they need not go one by one."""
        if not self._to_commit:
            return
        offsets = [TopicPartition(self.topic, p, o) for p, o in self._to_commit.items()]
        self._to_commit.clear()
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as err:
            logger.warning("%s: commit failed (will replay): %s", self.topic, err)

    def _rewind(self, partition: int, reason: str) -> None:
        """Drop the partition's in-flight batches and read again from its last commit."""
        self._in_flight[partition].clear()
        self._pending[partition].clear()
        self._previous[partition] = None
        self._epoch[partition] += 1
        self._shards.pop(partition, None)
        self.counts["rewinds"] += 1
        target = self._committed.get(partition)
        if target is None:
            target = self._broker_committed(partition)
        logger.warning("%s[%d]: %s; rewinding to @%d", self.topic, partition, reason, target)
        time.sleep(self._config.retry_backoff_s)
        if partition in self._assigned:
            try:
                self._consumer.seek(TopicPartition(self.topic, partition, target))
            except KafkaException as err:
                logger.warning("%s[%d]: seek failed: %s", self.topic, partition, err)

    def _broker_committed(self, partition: int) -> int:
        (committed,) = self._consumer.committed(
            [TopicPartition(self.topic, partition)], timeout=10.0
        )
        return committed.offset if committed.offset >= 0 else OFFSET_BEGINNING

    def _drain(self, partition: int) -> None:
        """Finish every in-flight batch of the partition and commit synchronously."""
        while self._in_flight[partition]:
            self._finalize_head(partition)
        self._to_commit.pop(partition, None)
        committed = self._committed.get(partition)
        if committed is not None:
            try:
                self._consumer.commit(
                    offsets=[TopicPartition(self.topic, partition, committed)],
                    asynchronous=False,
                )
            except KafkaException as err:
                logger.warning("%s[%d]: final commit failed: %s", self.topic, partition, err)

    def _shard(self, partition: int) -> Any:
        handle = self._shards.get(partition)
        if handle is None:
            handle = registry.shard(self._settings, partition, self.topic)
            self._shards[partition] = handle
        return handle

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._assigned.add(tp.partition)
            self._previous[tp.partition] = None
            self._committed.pop(tp.partition, None)
        logger.info("%s: assigned %s", self.topic, sorted(tp.partition for tp in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._drain(tp.partition)
            self._forget(tp.partition)
        logger.info("%s: revoked %s", self.topic, sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._in_flight[tp.partition].clear()
            self._forget(tp.partition)
        logger.warning("%s: lost %s", self.topic, sorted(tp.partition for tp in partitions))

    def _forget(self, partition: int) -> None:
        self._assigned.discard(partition)
        self._in_flight.pop(partition, None)
        self._pending.pop(partition, None)
        self._to_commit.pop(partition, None)
        self._previous.pop(partition, None)
        self._committed.pop(partition, None)
        self._lag.pop(partition, None)
        self._epoch[partition] += 1

    def _update_lag(self) -> None:
        for partition in list(self._assigned):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), cached=True
                )
            except KafkaException:
                continue
            committed = self._committed.get(partition)
            if high < 0 or committed is None:
                continue
            self._lag[partition] = max(0, high - committed)
            self._metrics.lag(partition, self._lag[partition])


class _IngestMetrics:
    def __init__(self) -> None:
        from ray.util import metrics

        self._lag = metrics.Gauge(
            "learnflow_consumer_lag",
            "Messages behind the end of the partition (by committed offset)",
            tag_keys=("partition",),
        )

    def lag(self, partition: int, value: int) -> None:
        self._lag.set(value, tags={"partition": str(partition)})
