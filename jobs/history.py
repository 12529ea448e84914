"""Attempt sequences read from the history in PostgreSQL through a server-side cursor.

Rows stream in pages and only each answer's bit is kept (one byte per answer and component), so
no process holds the history's rows; a reader asks only for the components it fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from learnflow import sequences
from learnflow.sequences import Sequences

_SIZES = """
SELECT c AS component, count(*) AS attempts, count(DISTINCT student_id) AS students
  FROM attempts, unnest(components) AS c
 WHERE ($1::timestamptz IS NULL OR submitted_at >= $1)
   AND ($2::text[] IS NULL OR c = ANY($2))
 GROUP BY c ORDER BY c
"""

_ATTEMPTS = """
SELECT student_id, components, passed, submitted_at
  FROM attempts
 WHERE ($1::timestamptz IS NULL OR submitted_at >= $1) AND components && $2::text[]
 ORDER BY student_id, submitted_at, kafka_offset
"""


@dataclass(frozen=True, slots=True)
class ComponentSize:
    component: str
    attempts: int
    students: int


@dataclass(frozen=True, slots=True)
class HistorySlice:
    """What one reader took from the history."""

    sequences: Sequences
    attempts: int
    """Attempts read (an attempt on two of the components counts once)."""
    first: datetime | None
    last: datetime | None


async def component_sizes(
    conn: asyncpg.Connection, since: datetime | None, components: Sequence[str] | None
) -> list[ComponentSize]:
    """Attempts and students per component in the history (from ``since``, of ``components``)."""
    rows = await conn.fetch(_SIZES, since, list(components) if components else None)
    return [ComponentSize(r["component"], r["attempts"], r["students"]) for r in rows]


async def read(
    conn: asyncpg.Connection, since: datetime | None, components: Sequence[str], page: int = 10_000
) -> HistorySlice:
    """Every student's answers on ``components``, in attempt order, ``page`` rows at a time."""
    wanted = frozenset(components)
    grouped: dict[tuple[str, str], bytearray] = {}
    attempts = 0
    first: datetime | None = None
    last: datetime | None = None
    # A cursor lives in a transaction; one snapshot makes the read consistent while events flow.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(_ATTEMPTS, since, list(components), prefetch=page):
            student, passed, at = row["student_id"], row["passed"], row["submitted_at"]
            for component in row["components"]:
                if component in wanted:
                    answers = grouped.get((component, student))
                    if answers is None:
                        answers = grouped[(component, student)] = bytearray()
                    answers.append(passed)
            attempts += 1
            first = at if first is None or at < first else first
            last = at if last is None or at > last else last
    return HistorySlice(sequences.from_grouped(grouped), attempts, first, last)
