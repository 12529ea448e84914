"""The Redis state store: current student states (L2), daily mastery, recent attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import hiredis
import msgspec
import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from learnflow import keys, state_codec
from learnflow.batch_fold import daily_values
from learnflow.batches import CheckpointBatch
from learnflow.settings import RedisSettings, ShardSettings
from learnflow.student_state import StudentState


class PackingConnection(aioredis.Connection):
    """A TCP connection whose commands hiredis packs, in C.

    redis-py's asyncio connection packs every argument in Python (its blocking one already uses
    hiredis): about 1 µs an argument, more than Redis takes to run a checkpoint's commands.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # "SCRIPT LOAD": words go apart
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


def connect(
    settings: RedisSettings,
    socket_timeout_s: float | None = None,
    max_connections: int | None = None,
    read_timeout: bool = True,
) -> aioredis.Redis:
    """An asyncio client that survives a Redis restart: a dead pooled connection is retried.

    With ``max_connections``, a request finding every connection busy waits for one (up to the
    socket timeout) instead of failing: what a server under a burst of requests needs. Without
    ``read_timeout``, a read may wait as long as it takes (a pub/sub subscription, where a quiet
    channel is no failure).
    """
    options: dict[str, Any] = {
        "password": settings.password.get_secret_value() if settings.password else None,
        "socket_timeout": (socket_timeout_s or settings.socket_timeout_s) if read_timeout else None,
        "socket_connect_timeout": settings.socket_timeout_s,
        "health_check_interval": 5,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if settings.url.startswith("redis://"):  # TLS and unix sockets keep their own classes
        options["connection_class"] = PackingConnection
    if settings.url.startswith("rediss://") and settings.ssl_ca_certs is not None:
        options["ssl_ca_certs"] = str(settings.ssl_ca_certs)
    if max_connections is None:
        return aioredis.Redis.from_url(settings.url, **options)
    # The retry settings go to the pool's connections: a client given a pool leaves them out.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.url, max_connections=max_connections, timeout=settings.socket_timeout_s, **options
    )
    return aioredis.Redis(connection_pool=pool)


# One checkpoint (the batches of one or more partitions) in one script: atomic like MULTI/EXEC,
# but a single command on the wire. Its arguments are flat, each section prefixed by its count
# (and each key by its number of values), so Redis reads them without a decoder: a JSON document
# cost Redis more to decode (cjson, with every value escaped inside it) than the writes. A day's
# key gets its expiry when it is made (when every field written is new): most checkpoints only
# update a day's values. A student's latest attempts at an exercise are trimmed to
# ``attempts_kept`` when a checkpoint adds several, or one of the one in 16 events whose id ends
# in four zero bits (ids are hashes): about every 16th time, not every time, a call per event
# less. Readers take the newest ``attempts_kept``.
#   ttl, keep, #states, #daily, #attempts, #watermarks,
#   states:     key, state ...
#   daily:      key, n, field, value, ... (n values)
#   attempts:   key, trim (1 or 0), n, score, member, ... (n values)
#   watermarks: key, offset, channel ...
_SAVE_BATCH = """
local ttl, trim = ARGV[1], -tonumber(ARGV[2]) - 1
local states, daily, attempts, marks = tonumber(ARGV[3]), tonumber(ARGV[4]),
                                       tonumber(ARGV[5]), tonumber(ARGV[6])
local i = 7
for _ = 1, states do
    redis.call('SET', ARGV[i], ARGV[i + 1])
    i = i + 2
end
for _ = 1, daily do
    local key, n = ARGV[i], tonumber(ARGV[i + 1])
    if redis.call('HSET', key, unpack(ARGV, i + 2, i + 1 + n)) == n / 2 then
        redis.call('EXPIRE', key, ttl)  -- every field new, the key likely too
    end
    i = i + 2 + n
end
for _ = 1, attempts do
    local key, trim_now, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    redis.call('ZADD', key, unpack(ARGV, i + 3, i + 2 + n))
    if trim_now == '1' then
        redis.call('ZREMRANGEBYRANK', key, 0, trim)
    end
    i = i + 3 + n
end
for _ = 1, marks do
    redis.call('SET', ARGV[i], ARGV[i + 1])
    redis.call('PUBLISH', ARGV[i + 2], ARGV[i + 1])
    i = i + 3
end
return states
"""


class AttemptSummary(msgspec.Struct):
    """One of a student's latest attempts at an exercise, as its sorted set holds it (scored by
    offset)."""

    event_id: UUID
    passed: bool
    score: float
    tests_passed: int
    tests_total: int
    submitted_at: datetime
    offset: int


_SUMMARY_ENCODER = msgspec.json.Encoder()
_TRIM_MASK = 15


class RedisStateStore:
    """Writes a checkpoint batch atomically, in one Lua script call.

    Every write is idempotent (SET of the whole state, HSET of end-of-day values, ZADD scored by
    offset), so a batch written twice leaves Redis as written once. On Redis Cluster the same
    script would be called once per student (all of a student's keys share a hash slot).
    """

    def __init__(self, client: aioredis.Redis, settings: ShardSettings) -> None:
        self._redis = client
        self._ttl = int(timedelta(days=settings.daily_mastery_ttl_days).total_seconds())
        self._attempts_kept = settings.attempts_kept
        self._save_batch = client.register_script(_SAVE_BATCH)

    async def load(self, student_ids: Sequence[str]) -> dict[str, StudentState]:
        if not student_ids:
            return {}
        raw = await self._redis.mget([keys.state(s) for s in student_ids])
        return {
            student: state_codec.decode(value)
            for student, value in zip(student_ids, raw, strict=True)
            if value is not None
        }

    async def save(self, batches: Sequence[CheckpointBatch]) -> None:
        """Write one checkpoint (each partition's students lie on that partition only, so the
        batches never share a student)."""
        if not batches:
            return
        states: list[Any] = []
        for batch in batches:
            for student, state in batch.states.items():
                states += (keys.state(student), state_codec.encode(state))
        days = daily_values([a for batch in batches for a in batch.applied])
        daily: list[Any] = []
        for (student, day), values in days.items():
            daily += (keys.daily_mastery(student, day), 2 * len(values))
            for component, p in values.items():
                daily += (component, p)  # hiredis writes a float in its shortest exact form
        attempts: dict[str, list[Any]] = {}
        due: set[str] = set()  # the keys this checkpoint trims
        encode = _SUMMARY_ENCODER.encode
        for batch in batches:
            for applied in batch.applied:
                offset, event = applied.offset, applied.event
                key = keys.attempts(event.student_id, event.exercise_id)
                if key in attempts or event.event_id.int & _TRIM_MASK == 0:
                    due.add(key)
                summary = AttemptSummary(
                    event.event_id, event.passed, event.score, event.tests_passed,
                    event.tests_total, event.submitted_at, offset,
                )  # fmt: skip
                attempts.setdefault(key, []).extend((offset, encode(summary)))
        counts = (len(states) // 2, len(days), len(attempts), len(batches))
        args: list[Any] = [self._ttl, self._attempts_kept, *counts, *states, *daily]
        for key, members in attempts.items():
            args += (key, int(key in due), len(members), *members)
        for batch in batches:
            args += (
                keys.partition_checkpoint(batch.topic, batch.partition),
                batch.last_offset,
                keys.checkpoint_channel(batch.topic, batch.partition),
            )
        await self._save_batch(args=args)

    async def latest_attempts(self, student_id: str, exercise_id: str) -> list[dict[str, Any]]:
        """The student's latest attempts at one exercise (as the checkpoints saved them),
        newest first."""
        key = keys.attempts(student_id, exercise_id)
        raw = await self._redis.zrevrange(key, 0, self._attempts_kept - 1)
        return [orjson.loads(item) for item in raw if isinstance(item, bytes | str)]

    async def publish_stats(self, topic: str, partition: int, figures: dict[str, int]) -> None:
        await self._redis.hset(keys.partition_stats(topic, partition), mapping=figures)  # type: ignore[arg-type]

    async def watermark(self, topic: str, partition: int) -> int:
        value = await self._redis.get(keys.partition_checkpoint(topic, partition))
        return int(value) if value is not None else -1

    async def close(self) -> None:
        await self._redis.aclose()
