"""The PostgreSQL history store (L3): attempt history, weekly aggregates, partition watermarks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from learnflow.batches import AppliedEvent, CheckpointBatch
from learnflow.events import AttemptGraded
from learnflow.settings import PostgresSettings

# The whole PostgreSQL step of a checkpoint is one statement (one round trip, one transaction):
# attempt rows (ignored if their event_id exists), weekly aggregates and the partition watermarks
# (one checkpoint may carry batches of several partitions).
# Each student's events are ordered by offset (one partition per student), so a weekly row counts
# only steps above its last_offset: replaying a batch adds nothing twice.
_RECORD_BATCH = """
WITH inserted AS (
    INSERT INTO attempts (event_id, student_id, exercise_id, components, passed, score,
                          tests_passed, tests_total, duration_ms, submitted_at,
                          kafka_partition, kafka_offset)
    SELECT e.event_id, e.student_id, e.exercise_id, string_to_array(e.components, ','),
           e.passed, e.score, e.tests_passed, e.tests_total, e.duration_ms, e.submitted_at,
           e.kafka_partition, e.kafka_offset
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::float8[],
                $7::int[], $8::int[], $9::int[], $10::timestamptz[], $11::int[], $12::bigint[])
         AS e(event_id, student_id, exercise_id, components, passed, score, tests_passed,
              tests_total, duration_ms, submitted_at, kafka_partition, kafka_offset)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), step AS (
    SELECT * FROM unnest($13::text[], $14::text[], $15::int[], $16::int[], $17::bigint[],
                         $18::bool[], $19::float8[])
        AS s(student_id, component, iso_year, iso_week, kafka_offset, passed, p_mastered)
), fresh AS (
    -- One primary-key probe per step (LIMIT 1 keeps the planner from turning this into a hash
    -- join over the whole table, whose cost would grow with every week of history).
    SELECT step.* FROM step
    LEFT JOIN LATERAL (
        SELECT w.last_offset FROM weekly_mastery w
        WHERE w.student_id = step.student_id AND w.component = step.component
          AND w.iso_year = step.iso_year AND w.iso_week = step.iso_week
        LIMIT 1
    ) w ON true
    WHERE w.last_offset IS NULL OR step.kafka_offset > w.last_offset
), agg AS (
    SELECT student_id, component, iso_year, iso_week, count(*) AS attempts,
           count(*) FILTER (WHERE passed) AS correct, max(kafka_offset) AS last_offset,
           (array_agg(p_mastered ORDER BY kafka_offset DESC))[1] AS p_mastered
    FROM fresh GROUP BY student_id, component, iso_year, iso_week
), weekly AS (
    INSERT INTO weekly_mastery AS w (student_id, component, iso_year, iso_week, attempts,
                                     correct, p_mastered, last_offset)
    SELECT student_id, component, iso_year, iso_week, attempts, correct, p_mastered,
           last_offset
    FROM agg
    ON CONFLICT (student_id, component, iso_year, iso_week) DO UPDATE
    SET attempts = w.attempts + EXCLUDED.attempts,
        correct = w.correct + EXCLUDED.correct,
        p_mastered = EXCLUDED.p_mastered,
        last_offset = EXCLUDED.last_offset,
        updated_at = now()
    RETURNING 1
), watermark AS (
    INSERT INTO partition_checkpoints (topic, partition, kafka_offset)
    SELECT $20, m.partition, m.kafka_offset
    FROM unnest($21::int[], $22::bigint[]) AS m(partition, kafka_offset)
    ON CONFLICT (topic, partition) DO UPDATE
    SET kafka_offset = GREATEST(partition_checkpoints.kafka_offset, EXCLUDED.kafka_offset),
        updated_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM weekly),
       (SELECT count(*) FROM watermark)
"""


def connection_args(settings: PostgresSettings) -> dict[str, Any]:
    """asyncpg keyword arguments for the configured database (password included)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password.get_secret_value(),
        "database": settings.database,
    }


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to undo on release: the stores never change session state (no SET, LISTEN,
    advisory locks or cursors), so the round trip of asyncpg's reset query is skipped."""


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
    """One statement per checkpoint; idempotent on ``event_id`` and on offsets."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, batches: Sequence[CheckpointBatch]) -> None:
        if not batches:
            return
        topic = batches[0].topic
        if any(batch.topic != topic for batch in batches):
            raise ValueError("one checkpoint is of one topic")
        applied = [a for batch in batches for a in batch.applied]
        events = [a.event for a in applied]
        steps = [s for batch in batches for s in batch.steps]
        await self._pool.execute(
            _RECORD_BATCH,
            [e.event_id for e in events],
            [e.student_id for e in events],
            [e.exercise_id for e in events],
            [",".join(e.components) for e in events],
            [e.passed for e in events],
            [e.score for e in events],
            [e.tests_passed for e in events],
            [e.tests_total for e in events],
            [e.duration_ms for e in events],
            [e.submitted_at for e in events],
            [batch.partition for batch in batches for _ in batch.applied],
            [a.offset for a in applied],
            [s.student_id for s in steps],
            [s.component for s in steps],
            [s.iso_year for s in steps],
            [s.iso_week for s in steps],
            [s.offset for s in steps],
            [s.passed for s in steps],
            [s.p_mastered for s in steps],
            topic,
            [batch.partition for batch in batches],
            [batch.last_offset for batch in batches],
        )

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
                AppliedEvent(int(row["kafka_offset"]), _event(row))
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
