"""The Redis state store: current student states (L2), daily mastery, recent attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import hiredis
import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
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


class TransactionError(RedisError):
    """Redis refused a checkpoint's transaction, or one of its commands."""


async def transact(client: aioredis.Redis, commands: list[bytes]) -> list[Any]:
    """Run packed ``commands`` in one MULTI/EXEC on one of the client's connections, and return
    their replies.

    The replies are read with a hiredis reader of its own, in C: redis-py's pipeline reads each
    of a transaction's QUEUED replies through Python, which cost more than Redis took to run
    them. A connection that fails mid-way is dropped (Redis discards a transaction whose EXEC
    never came), so nothing half-written is ever applied.
    """
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.connect()
        if connection._writer is None or connection._reader is None:
            raise RedisConnectionError("no connection to Redis")
        writer, stream = connection._writer, connection._reader
        writer.writelines([b"*1\r\n$5\r\nMULTI\r\n", *commands, b"*1\r\n$4\r\nEXEC\r\n"])
        expected = len(commands) + 2
        replies: list[Any] = []
        reader = hiredis.Reader()
        async with asyncio.timeout(connection.socket_timeout):
            await writer.drain()
            while len(replies) < expected:
                data = await stream.read(1 << 16)
                if not data:
                    raise RedisConnectionError("Redis closed the connection mid-transaction")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    replies.append(reply)
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
    results = replies[-1]
    if not isinstance(results, list):
        queued = [r for r in replies[1:-1] if isinstance(r, hiredis.ReplyError)]
        raise TransactionError(f"checkpoint transaction refused: {results!r} {queued[:1]!r}")
    failed = [r for r in results if isinstance(r, hiredis.ReplyError)]
    if failed:
        raise TransactionError(f"checkpoint command failed: {failed[0]}")
    return results


class AttemptSummary(msgspec.Struct, array_like=True):
    """One of a student's latest attempts at an exercise, as its sorted set holds it (scored by
    offset): a JSON array of the fields in order, small enough for Redis to keep a student's
    set as one compact listpack (``zset-max-listpack-value``)."""

    event_id: UUID
    passed: bool
    score: float
    tests_passed: int
    tests_total: int
    submitted_at: datetime
    offset: int


class _NamedSummary(AttemptSummary, array_like=False):
    """The same summary as a JSON object: how earlier checkpoints wrote it."""


_SUMMARY_ENCODER = msgspec.json.Encoder()
_SUMMARY_DECODER = msgspec.json.Decoder(AttemptSummary)
_NAMED_SUMMARY_DECODER = msgspec.json.Decoder(_NamedSummary)
_TRIM_MASK = 15
"""A student's latest attempts at an exercise are trimmed to ``attempts_kept`` for the one
event in 16 whose id (a hash) ends in four zero bits, or when a checkpoint adds more than 15 to
one set: about every 16th attempt, not every time, a command per event less, and a set never
holds more than about 16 beyond those kept. Readers take the newest ``attempts_kept``."""


def _summary(raw: bytes) -> dict[str, Any]:
    """A saved summary as JSON types, whichever way it was written."""
    try:
        values = msgspec.to_builtins(_SUMMARY_DECODER.decode(raw))
    except msgspec.ValidationError:
        return dict(msgspec.to_builtins(_NAMED_SUMMARY_DECODER.decode(raw)))
    return dict(zip(AttemptSummary.__struct_fields__, values, strict=True))


_pack: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command


def _lines(values: list[Any]) -> list[bytes]:
    """Each of ``values`` as JSON, in one call of the encoder (JSON holds no raw newline)."""
    return _SUMMARY_ENCODER.encode_lines(values).split(b"\n")[:-1]


def _interleave(first: list[Any], second: list[Any]) -> list[Any]:
    """``[first[0], second[0], first[1], second[1], …]``: a command's field-value pairs."""
    pairs: list[Any] = [None] * (2 * len(first))
    pairs[::2], pairs[1::2] = first, second
    return pairs


class RedisStateStore:
    """Writes a checkpoint batch atomically, in one MULTI/EXEC.

    Every write is idempotent (SET of the whole state, HSET of end-of-day values, ZADD scored by
    offset), so a batch written twice leaves Redis as written once. On Redis Cluster the same
    transaction would be sent once per student (all of a student's keys share a hash slot).
    """

    def __init__(self, client: aioredis.Redis, settings: ShardSettings) -> None:
        self._redis = client
        self._ttl = int(timedelta(days=settings.daily_mastery_ttl_days).total_seconds())
        self._attempts_kept = settings.attempts_kept

    async def load(self, student_ids: Sequence[str]) -> dict[str, StudentState]:
        if not student_ids:
            return {}
        raw = await self._redis.mget([keys.state(s) for s in student_ids])
        return {
            student: state_codec.decode(value)
            for student, value in zip(student_ids, raw, strict=True)
            if value is not None
        }

    async def save(
        self, batches: Sequence[CheckpointBatch], commands: list[bytes] | None = None
    ) -> None:
        """Write one checkpoint (each partition's students lie on that partition only, so the
        batches never share a student), with its :meth:`commands` if they were made ahead."""
        if batches:
            await transact(self._redis, self.commands(batches) if commands is None else commands)

    def commands(self, batches: Sequence[CheckpointBatch]) -> list[bytes]:
        """The commands of one checkpoint, packed (by hiredis, in C). The partitions' watermarks
        are set last, in the same transaction: a reader that sees them sees everything below.

        - every changed student's state: one MSET;
        - each (student, day)'s last P(mastered) per component: an HSET, with an EXPIRE when
          the key may be new (a day no earlier checkpoint of the student wrote);
        - each (student, exercise)'s new attempts: a ZADD, trimmed when due;
        - the watermarks: one MSET, and a PUBLISH per partition for readers waiting on one.
        """
        pack = _pack
        # Values are encoded by msgspec, each kind in one call, and handed to hiredis as
        # bytes: hiredis formats a float through Python (about 0.45 µs each).
        states: list[Any] = ["MSET"]
        for batch in batches:
            if batch.states:
                states += _interleave(
                    [keys.state(student) for student in batch.states],
                    state_codec.encode_many(batch.states.values()),
                )
        commands = [pack(tuple(states))] if len(states) > 1 else []
        written = frozenset().union(*(batch.days_written for batch in batches))
        ttl = self._ttl
        days = [item for batch in batches
                for item in (batch.daily if batch.daily is not None
                             else daily_values(batch.applied)).items()]  # fmt: skip
        values = _lines([p for _, day in days for p in day.values()])
        at = 0
        for student_day, day in days:
            key = keys.daily_mastery(*student_day)
            count = len(day)
            commands.append(pack(("HSET", key, *_interleave(list(day), values[at : at + count]))))
            at += count
            if student_day not in written:
                commands.append(pack(("EXPIRE", key, ttl)))
        attempts: dict[str, list[Any]] = {}
        due: set[str] = set()  # the keys this checkpoint trims
        every = [applied for batch in batches for applied in batch.applied]
        # An AttemptSummary's JSON is the array of its fields: a tuple of them encodes the same.
        summaries = _lines(
            [(e.event_id, e.passed, e.score, e.tests_passed, e.tests_total, e.submitted_at,
              a.offset) for a in every for e in (a.event,)]
        )  # fmt: skip
        for applied, summary in zip(every, summaries, strict=True):
            offset, event = applied.offset, applied.event
            key = keys.attempts(event.student_id, event.exercise_id)
            members = attempts.get(key)
            if members is None:
                members = attempts[key] = ["ZADD", key]
            elif len(members) > 2 * _TRIM_MASK:  # "ZADD", the key and 16 pairs already
                due.add(key)
            if event.event_id.int & _TRIM_MASK == 0:
                due.add(key)
            members += (offset, summary)
        keep_from = -self._attempts_kept - 1
        for key, members in attempts.items():
            commands.append(pack(tuple(members)))
            if key in due:
                commands.append(pack(("ZREMRANGEBYRANK", key, 0, keep_from)))
        marks: list[Any] = ["MSET"]
        for batch in batches:
            marks += (keys.partition_checkpoint(batch.topic, batch.partition), batch.last_offset)
        commands.append(pack(tuple(marks)))
        for batch in batches:
            channel = keys.checkpoint_channel(batch.topic, batch.partition)
            commands.append(pack(("PUBLISH", channel, batch.last_offset)))
        return commands

    async def latest_attempts(self, student_id: str, exercise_id: str) -> list[dict[str, Any]]:
        """The student's latest attempts at one exercise (as the checkpoints saved them),
        newest first."""
        key = keys.attempts(student_id, exercise_id)
        raw = await self._redis.zrevrange(key, 0, self._attempts_kept - 1)
        return [_summary(item) for item in raw if isinstance(item, bytes)]

    async def publish_stats(self, topic: str, partition: int, figures: dict[str, int]) -> None:
        await self._redis.hset(keys.partition_stats(topic, partition), mapping=figures)  # type: ignore[arg-type]

    async def mark_alive(self, topic: str, partitions: Sequence[int], ttl_s: float) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.set(keys.partition_alive(topic, partition), 1, px=int(ttl_s * 1000))
            await pipe.execute()

    async def watermark(self, topic: str, partition: int) -> int:
        value = await self._redis.get(keys.partition_checkpoint(topic, partition))
        return int(value) if value is not None else -1

    async def close(self) -> None:
        await self._redis.aclose()
