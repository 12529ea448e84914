"""A shard host's own Kafka feed: its partitions, each from its shard's checkpoint.

The host reads its partitions itself, each from the offset after its shard's watermark, so
offsets live with the state (as in Flink or Bytewax) and no Ray call stands between Kafka and
the fold: at low load an event is checkpointed as soon as it arrives; under load, everything
that came while a checkpoint was being written is the next one. The checkpointed offsets are
committed to the ingest's consumer group (at most every ``COMMIT_EVERY_S``) only so that lag
shows where operators look for it; a restarted host starts from its shards' checkpoints, not
from those commits.

Blocking calls (the wait for a record, seek, close, the dead-letter producer's flush) run in a
worker thread: a host's event loop also answers progress reads.
"""

from __future__ import annotations

import asyncio
import logging
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from ingest.topics import consumer_config
from learnflow.batches import Record
from learnflow.settings import Settings

logger = logging.getLogger(__name__)

COMMIT_EVERY_S = 1.0
"""Each commit is a write to ``__consumer_offsets``: with a feed per partition, per-batch
commits would cost the broker more than the events."""
POLL_S = 1.0
"""How long an idle feed waits for a record before it looks again (a record ends the wait)."""
BUSY_S = 0.1
"""A record within this long of the last one means records keep coming: the feed lingers."""


class PartitionFeed:
    """Records of several partitions of one topic, each in offset order, from positions the
    shards set; one consumer (one fetch per round trip to the broker) for all of them."""

    def __init__(self, settings: Settings, topic: str, partitions: list[int], name: str) -> None:
        self.topic = topic
        self.partitions = list(partitions)
        self._settings = settings.ingest
        # The group only takes the lag commits: assigned, not subscribed, so never in a
        # rebalance. The broker answers a fetch as soon as one record is there (min bytes 1), so
        # the longest wait only sets how often an idle feed asks again; it fetches ahead while
        # its shards checkpoint, a few batches and no more.
        self._consumer = Consumer(
            consumer_config(
                settings.kafka,
                settings.ingest.group_id,
                name,
                **{
                    "fetch.min.bytes": 1,
                    "fetch.wait.max.ms": 500,
                    "queued.max.messages.kbytes": 32 * 1024,
                },
            )
        )
        self._to_commit: dict[int, int] = {}
        self._next_commit = 0.0
        self._last_record = 0.0

    def seek(self, offsets: dict[int, int]) -> None:
        """Read each partition next from its offset (after a start, or to replay what failed):
        the assignment is replaced whole, so nothing fetched before is handed out after."""
        self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in offsets.items()])

    async def read(self, timeout_s: float) -> dict[int, list[Record]]:
        """Every record already fetched, by partition, or the first to come within
        ``timeout_s``; while records keep coming, first wait ``ingest.linger_ms`` for more.

        Records already fetched are taken on the event loop (a non-blocking call); only the
        wait for one goes to a worker thread, whose hand-off costs more than a small batch's
        fold."""
        limit = self._settings.max_batch
        messages = self._consumer.consume(limit, timeout=0)
        if not messages:
            first = await asyncio.to_thread(self._consumer.poll, timeout_s)
            if first is None:
                return {}
            messages = [first]
        now = time.monotonic()
        busy = now - self._last_record < BUSY_S
        self._last_record = now
        if busy and len(messages) < limit and self._settings.linger_ms > 0:
            await asyncio.sleep(self._settings.linger_ms / 1000)
            messages += self._consumer.consume(limit - len(messages), timeout=0)
        records: dict[int, list[Record]] = {}
        # A fetch brings each partition's records in runs: its list is looked up once a run.
        current, into = None, None
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("%s: consume error: %s", self.topic, err)
                continue
            offset, partition = msg.offset(), msg.partition()
            if offset is None or partition is None:  # never, for a record
                continue
            if partition != current or into is None:
                current, into = partition, records.setdefault(partition, [])
            into.append((offset, msg.key(), msg.value(), msg.timestamp()[1]))
        return records

    def checkpointed(self, partition: int, offset: int) -> None:
        """Note that everything of ``partition`` below ``offset`` is saved; :meth:`commit`
        sends it."""
        self._to_commit[partition] = offset

    def commit(self, force: bool = False) -> None:
        """Commit the noted offsets if ``COMMIT_EVERY_S`` has passed since the last commit (or
        ``force``). Asynchronous: it only queues the request."""
        now = time.monotonic()
        if not self._to_commit or (not force and now < self._next_commit):
            return
        offsets, self._to_commit = self._to_commit, {}
        self._next_commit = now + COMMIT_EVERY_S
        try:
            self._consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                asynchronous=True,
            )
        except KafkaException as err:  # the lag figure is late, nothing else
            logger.info("%s: lag commit failed: %s", self.topic, err)

    def lag(self, partition: int, checkpointed: int) -> int | None:
        """Records on the partition after ``checkpointed`` (from the last fetch's figures)."""
        try:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), cached=True
            )
        except KafkaException:
            return None
        return max(0, high - checkpointed - 1) if high >= 0 else None

    def close(self) -> None:
        self.commit(force=True)
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError):
            pass

    def __repr__(self) -> str:
        return f"PartitionFeed({self.topic}{self.partitions})"
