"""The PostgreSQL history store (L3): attempt history, weekly aggregates, partition watermarks."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from learnflow.batches import AppliedEvent, CheckpointBatch
from learnflow.events import AttemptGraded
from learnflow.settings import PostgresSettings

# A checkpoint is one transaction of three statements. The first locks the watermark of each of
# its partitions (made at -1 if new) and reads it: every event at or below it is recorded,
# because rows and watermark are only ever written together. The rest of the checkpoint (rows
# copied in, watermarks moved on) is what lies above, so a replay from any earlier offset
# records nothing twice, without a unique index on event_id. Weekly aggregates are a view of
# the rows (migration 0008): nothing to upsert per event. A checkpoint of a few rows takes the
# same steps in one call of the function ``record_checkpoint`` (migration 0009).
_LOCK_WATERMARKS = """
INSERT INTO partition_checkpoints AS c (topic, partition, kafka_offset)
SELECT $1, p, -1 FROM unnest($2::int[]) AS p
ON CONFLICT (topic, partition) DO UPDATE SET kafka_offset = c.kafka_offset
RETURNING partition, kafka_offset
"""


class _AttemptRow(msgspec.Struct, gc=False):
    """An attempt row as a checkpoint writes it: ``record_checkpoint`` reads its fields by name,
    ``COPY`` in this order."""

    event_id: UUID
    student_id: str
    exercise_id: str
    components: tuple[str, ...]
    passed: bool
    score: float
    tests_passed: int
    tests_total: int
    duration_ms: int
    submitted_at: datetime
    kafka_partition: int
    kafka_offset: int
    model_version: int
    mastery: tuple[float, ...]


ATTEMPT_COLUMNS: tuple[str, ...] = _AttemptRow.__struct_fields__

_RECORD_SMALL = "SELECT record_checkpoint($1, $2, $3, $4)"
SMALL_CHECKPOINT_ROWS = 256
"""Checkpoints of at most this many rows are recorded by one call of ``record_checkpoint``
(migration 0009): one round trip instead of the six of the ``COPY`` transaction, whose lower
cost per row pays off only for a backlog's large checkpoints."""

_MOVE_WATERMARKS = """
UPDATE partition_checkpoints AS c SET kafka_offset = m.kafka_offset, updated_at = now()
FROM unnest($2::int[], $3::bigint[]) AS m(partition, kafka_offset)
WHERE c.topic = $1 AND c.partition = m.partition AND c.kafka_offset < m.kafka_offset
"""


def connection_args(settings: PostgresSettings) -> dict[str, Any]:
    """asyncpg keyword arguments for the configured database (password included)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password.get_secret_value(),
        "database": settings.database,
        "ssl": settings.ssl_context(),
    }


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to undo on release: the stores never change session state (no SET, LISTEN,
    advisory locks or cursors), so the round trip of asyncpg's reset query is skipped."""


@contextlib.asynccontextmanager
async def connection(settings: PostgresSettings) -> AsyncIterator[asyncpg.Connection]:
    """One connection, closed after use: for a command or a job that reads through a cursor."""
    conn: asyncpg.Connection = await asyncpg.connect(
        **connection_args(settings), timeout=settings.connect_timeout_s
    )
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def session(settings: PostgresSettings) -> AsyncIterator[asyncpg.Pool]:
    """A pool of one connection, closed after use: for a command's few statements."""
    pool = await connect(settings, 1)
    try:
        yield pool
    finally:
        await pool.close()


async def connect(settings: PostgresSettings, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        **connection_args(settings),
        min_size=1,
        max_size=size,
        timeout=settings.connect_timeout_s,
        command_timeout=60,
        reset=_keep_session,
    )
    if pool is None:  # pragma: no cover - asyncpg returns None only when not awaited
        raise RuntimeError("asyncpg returned no pool")
    return pool


class PostgresHistoryStore:
    """One transaction per checkpoint, guarded by the partition watermarks it moves on."""

    def __init__(self, pool: asyncpg.Pool, small_rows: int = SMALL_CHECKPOINT_ROWS) -> None:
        self._pool = pool
        self._small_rows = small_rows
        """Checkpoints of at most this many rows are recorded in one round trip."""

    def rows(self, batches: Sequence[CheckpointBatch]) -> bytes | None:
        """Every attempt row of the batches in ``COPY`` format, made ahead of :meth:`record`
        (which sends them when every row lies above its partition's watermark, as it does but
        after a failure); ``None`` for a checkpoint small enough for one round trip."""
        if sum(len(batch.applied) for batch in batches) <= self._small_rows:
            return None
        return copy_data([(batch.partition, applied) for batch in batches
                          for applied in batch.applied])  # fmt: skip

    async def record(self, batches: Sequence[CheckpointBatch], rows: bytes | None = None) -> None:
        if not batches:
            return
        topic = batches[0].topic
        if any(batch.topic != topic for batch in batches):
            raise ValueError("one checkpoint is of one topic")
        partitions = [batch.partition for batch in batches]
        if len(set(partitions)) != len(partitions):
            raise ValueError("one checkpoint has one batch per partition")
        last_offsets = [batch.last_offset for batch in batches]
        if sum(len(batch.applied) for batch in batches) <= self._small_rows:
            await self._pool.execute(
                _RECORD_SMALL, topic, partitions, last_offsets, json_rows(batches)
            )
            return
        async with self._pool.acquire() as conn, conn.transaction():
            marks = {
                row["partition"]: row["kafka_offset"]
                for row in await conn.fetch(_LOCK_WATERMARKS, topic, partitions)
            }
            # A batch's rows are in offset order: all lie above the watermark if its first does.
            replayed = any(batch.applied and batch.applied[0].offset <= marks[batch.partition]
                           for batch in batches)  # fmt: skip
            if rows is None or replayed:
                above = [(batch.partition, applied) for batch in batches
                         for applied in batch.applied
                         if applied.offset > marks[batch.partition]]  # fmt: skip
                rows = copy_data(above) if above else None
            if rows is not None:
                await conn.copy_to_table(
                    "attempts", source=_once(rows), columns=ATTEMPT_COLUMNS, format="binary"
                )
            await conn.execute(_MOVE_WATERMARKS, topic, partitions, last_offsets)

    async def close(self) -> None:
        await self._pool.close()

    async def watermark(self, topic: str, partition: int) -> int:
        value = await self._pool.fetchval(
            "SELECT kafka_offset FROM partition_checkpoints WHERE topic = $1 AND partition = $2",
            topic,
            partition,
        )
        return int(value) if value is not None else -1

    async def history(self, student_ids: Sequence[str]) -> dict[str, list[AppliedEvent]]:
        rows = await self._pool.fetch(
            "SELECT * FROM attempts WHERE student_id = ANY($1::text[]) "
            "ORDER BY student_id, kafka_offset",
            list(student_ids),
        )
        found: dict[str, list[AppliedEvent]] = {}
        for row in rows:
            found.setdefault(row["student_id"], []).append(
                AppliedEvent(
                    int(row["kafka_offset"]),
                    _event(row),
                    row["model_version"],
                    tuple(row["mastery"] or ()),
                )
            )
        return found

    async def weekly(
        self, student_id: str, since_year: int, since_week: int
    ) -> Sequence[asyncpg.Record]:
        """The student's weekly aggregates from ISO week (``since_year``, ``since_week``) on,
        newest first: component, iso_year, iso_week, attempts, correct, p_mastered."""
        rows: Sequence[asyncpg.Record] = await self._pool.fetch(
            "SELECT component, iso_year, iso_week, attempts, correct, p_mastered "
            "FROM weekly_mastery WHERE student_id = $1 AND (iso_year, iso_week) >= ($2, $3) "
            "ORDER BY iso_year DESC, iso_week DESC, component",
            student_id,
            since_year,
            since_week,
        )
        return rows

    async def students_after(self, partition: int, offset: int) -> list[str]:
        """Students with events recorded on ``partition`` above ``offset``."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT student_id FROM attempts "
            "WHERE kafka_partition = $1 AND kafka_offset > $2",
            partition,
            offset,
        )
        return [row["student_id"] for row in rows]


_json = msgspec.json.Encoder()


def json_rows(batches: Sequence[CheckpointBatch]) -> str:
    """The batches' attempt rows as the JSON array ``record_checkpoint`` takes."""
    return _json.encode(
        [
            _AttemptRow(
                e.event_id, e.student_id, e.exercise_id, e.components, e.passed, e.score,
                e.tests_passed, e.tests_total, e.duration_ms, e.submitted_at, batch.partition,
                applied.offset, applied.model_version, applied.mastery,
            )
            for batch in batches
            for applied in batch.applied
            for e in (applied.event,)
        ]
    ).decode()  # fmt: skip


# PostgreSQL's binary COPY format, written here for the attempt rows (ATTEMPT_COLUMNS, in order):
# asyncpg's row encoder checks each array column against abstract classes, about twice the
# Python this takes. A row is its field count, then each field's length and bytes, big-endian.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_ROW_START = struct.pack("!hi", len(ATTEMPT_COLUMNS), 16)  # then the event id's 16 bytes
_LENGTH = struct.Struct("!i").pack
_MIDDLE = struct.Struct("!i?idiiiiiiiqiiiqii").pack
"""passed, score, tests_passed, tests_total, duration_ms, submitted_at, partition, offset,
model_version: each a length and a value."""
_ARRAY_HEAD = struct.Struct("!iiIii").pack  # dimensions, has nulls, element type, length, base
_TEXT_OID, _FLOAT8_OID = 25, 701
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_text_arrays: dict[tuple[str, ...], bytes] = {}
_float_arrays: dict[int, Callable[..., bytes]] = {}


def copy_data(rows: Sequence[tuple[int, AppliedEvent]]) -> bytes:
    """(partition, applied event) pairs as attempt rows in PostgreSQL's binary COPY format."""
    parts = [_COPY_HEADER]
    for partition, applied in rows:
        event = applied.event
        student, exercise = event.student_id.encode(), event.exercise_id.encode()
        at = (event.submitted_at - _PG_EPOCH) // _MICROSECOND
        parts += (
            _ROW_START, event.event_id.int.to_bytes(16, "big"), _LENGTH(len(student)), student,
            _LENGTH(len(exercise)), exercise, _text_array(event.components),
            _MIDDLE(1, event.passed, 8, event.score, 4, event.tests_passed, 4,
                    event.tests_total, 4, event.duration_ms, 8, at, 4, partition, 8,
                    applied.offset, 4, applied.model_version),
            _float_array(applied.mastery),
        )  # fmt: skip
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


def _text_array(values: tuple[str, ...]) -> bytes:
    """A ``text[]`` field (length included); events name few distinct component lists."""
    found = _text_arrays.get(values)
    if found is None:
        parts = [_ARRAY_HEAD(1, 0, _TEXT_OID, len(values), 1)]
        for value in values:
            encoded = value.encode()
            parts += (_LENGTH(len(encoded)), encoded)
        body = b"".join(parts)
        found = _text_arrays[values] = _LENGTH(len(body)) + body
    return found


def _float_array(values: tuple[float, ...]) -> bytes:
    """A ``float8[]`` field (length included)."""
    count = len(values)
    packer = _float_arrays.get(count)
    if packer is None:  # the array's head goes in with each count's packer
        packer = _float_arrays[count] = partial(
            struct.Struct("!iiiIii" + "id" * count).pack, 20 + 12 * count, 1, 0, _FLOAT8_OID,
            count, 1,
        )  # fmt: skip
    # Each value is its length (8) and its bytes; most events name one or two components.
    if count == 1:
        return packer(8, values[0])
    if count == 2:
        return packer(8, values[0], 8, values[1])
    return packer(*[part for p in values for part in (8, p)])


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _event(row: asyncpg.Record) -> AttemptGraded:
    submitted: datetime = row["submitted_at"]
    return AttemptGraded(
        # asyncpg's own UUID type would reach the Redis writer, whose JSON encoder refuses it.
        event_id=UUID(bytes=row["event_id"].bytes),
        student_id=row["student_id"],
        exercise_id=row["exercise_id"],
        components=tuple(row["components"]),
        passed=row["passed"],
        score=row["score"],
        tests_total=row["tests_total"],
        tests_passed=row["tests_passed"],
        duration_ms=row["duration_ms"],
        submitted_at=submitted,
    )
