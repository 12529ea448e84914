"""A shard's own Kafka feed (``ingest.mode = "pull"``): its partition, from its checkpoint.

The shard reads its partition itself, from the offset after its watermark, so offsets live with
the state (as in Flink or Bytewax) and no Ray call stands between Kafka and the fold: at low load
an event is checkpointed as soon as it arrives; under load, everything that came while a batch
was being checkpointed is the next batch. The checkpointed offset is committed to the ingest's
consumer group (at most every ``COMMIT_EVERY_S``) only so that lag shows where operators look
for it; a restarted shard starts from its checkpoint, not from that commit.

Blocking calls (poll, seek, close, the dead-letter producer's flush) run in a worker thread: a
shard's event loop also answers progress reads.
"""

from __future__ import annotations

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


class PartitionFeed:
    """One partition's records in offset order, from a position the shard sets."""

    def __init__(self, settings: Settings, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self._settings = settings.ingest
        # The group only takes the lag commits: assigned, not subscribed, so never in a
        # rebalance. The broker answers a fetch as soon as one record is there (min bytes 1), so
        # the longest wait only sets how often an idle feed asks again; it fetches ahead while
        # its shard checkpoints, a few batches and no more.
        self._consumer = Consumer(
            consumer_config(
                settings.kafka,
                settings.ingest.group_id,
                f"shard-{partition}",
                **{
                    "fetch.min.bytes": 1,
                    "fetch.wait.max.ms": 500,
                    "queued.max.messages.kbytes": 16 * 1024,
                },
            )
        )
        self._assigned = False
        self._to_commit: int | None = None
        self._next_commit = 0.0

    def seek(self, offset: int) -> None:
        """Read next from ``offset`` (after a start, or to replay what failed)."""
        position = TopicPartition(self.topic, self.partition, offset)
        if not self._assigned:
            self._consumer.assign([position])
            self._assigned = True
        else:
            self._consumer.seek(position)

    def poll(self, timeout_s: float) -> list[Record]:
        """Wait at most ``timeout_s`` for a record, then take every one already fetched."""
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        messages = [first, *self._consumer.consume(self._settings.max_batch - 1, timeout=0)]
        records: list[Record] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("%s[%d]: consume error: %s", self.topic, self.partition, err)
                continue
            offset = msg.offset()
            if offset is not None:  # a record (not an error) always has one
                records.append((offset, msg.key(), msg.value(), msg.timestamp()[1]))
        return records

    def checkpointed(self, offset: int) -> None:
        """Note that everything below ``offset`` is saved; :meth:`commit` sends it."""
        self._to_commit = offset

    def commit(self, force: bool = False) -> None:
        """Commit the noted offset if ``COMMIT_EVERY_S`` has passed since the last commit (or
        ``force``). Asynchronous: it only queues the request."""
        now = time.monotonic()
        if self._to_commit is None or (not force and now < self._next_commit):
            return
        offset, self._to_commit = self._to_commit, None
        self._next_commit = now + COMMIT_EVERY_S
        try:
            self._consumer.commit(
                offsets=[TopicPartition(self.topic, self.partition, offset)], asynchronous=True
            )
        except KafkaException as err:  # the lag figure is late, nothing else
            logger.info("%s[%d]: lag commit failed: %s", self.topic, self.partition, err)

    def lag(self, checkpointed: int) -> int | None:
        """Records on the partition after ``checkpointed`` (from the last fetch's figures)."""
        try:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, self.partition), cached=True
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
        return f"PartitionFeed({self.topic}[{self.partition}])"
