"""Waits, without polling, until a partition's Redis checkpoint reaches an offset.

Every Redis checkpoint of a shard publishes its partition's new offset on
``partition:{<topic>:<p>}:checkpointed`` (``actors/redis_store.py``). One subscription per API
process, opened on first use and reopened after a Redis failure, wakes the reads waiting for
read-your-writes: a student's own event at offset ``n`` counts once the partition's checkpoint is
at ``n`` or beyond.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from actors import redis_store
from learnflow import keys
from learnflow.deadline import Deadline
from learnflow.settings import RedisSettings

logger = logging.getLogger(__name__)

_RESUBSCRIBE_S = 0.5


class CheckpointWatch:
    def __init__(self, client: aioredis.Redis, settings: RedisSettings, topic: str) -> None:
        self._redis = client
        self._notifications = redis_store.connect(settings, read_timeout=False)
        self._topic = topic
        self._latest: dict[int, int] = {}
        self._waiters: dict[int, list[tuple[int, asyncio.Future[None]]]] = defaultdict(list)
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def wait(self, partition: int, offset: int, deadline: Deadline) -> bool:
        """Whether ``topic[partition]`` was checkpointed to ``offset`` before ``deadline``."""
        if self._latest.get(partition, -1) >= offset:
            return True
        self._ensure_listening()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (offset, waiter)
        self._waiters[partition].append(entry)
        try:
            # Subscribed first, then read: a checkpoint either is in what is read, or is
            # announced after it and wakes this waiter.
            await asyncio.wait_for(self._subscribed.wait(), deadline.remaining())
            saved = await self._redis.get(keys.partition_checkpoint(self._topic, partition))
            if saved is not None:
                self._advance(partition, int(saved))
            await asyncio.wait_for(waiter, deadline.remaining())
            return True
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._waiters[partition].remove(entry)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._notifications.aclose()

    def _advance(self, partition: int, offset: int) -> None:
        if offset <= self._latest.get(partition, -1):
            return
        self._latest[partition] = offset
        for wanted, waiter in self._waiters.get(partition, ()):
            if wanted <= offset and not waiter.done():
                waiter.set_result(None)

    def _ensure_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="checkpoint-watch")

    async def _listen(self) -> None:
        pattern = keys.checkpoint_channel_pattern(self._topic)
        while True:
            pubsub = self._notifications.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message["type"] != "pmessage":
                        continue
                    channel = message["channel"]
                    name = channel.decode() if isinstance(channel, bytes) else str(channel)
                    partition = int(name.rsplit(":", 2)[-2].rstrip("}"))
                    self._advance(partition, int(message["data"]))
            except (RedisError, OSError, ValueError) as err:
                logger.warning("checkpoint notifications lost (%s); resubscribing", err)
            finally:
                self._subscribed.clear()
                # A checkpoint announced while unsubscribed is read again by the next waiter.
                self._latest.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(_RESUBSCRIBE_S)
