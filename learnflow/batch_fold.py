"""The pure part of a shard's batch: parse, skip replays, apply, record each component's step.

A shard loads the states of the students a batch names, calls :func:`fold_batch`, writes the
:class:`~learnflow.batches.CheckpointBatch` it returns, and only then moves its memory on. Nothing
here does I/O, so replays can be checked exhaustively: folding a batch again from the states it
produced applies nothing, and folding any prefix and then the rest (from any earlier offset)
ends in the states and aggregates of one fold of the whole.

The aggregates follow the rules the stores apply: :func:`daily_values` is what the Redis
checkpoint writes (a day's last value per component), :func:`merge_weekly` what the PostgreSQL
checkpoint does (a step counts only above its row's ``last_offset``, which the partition's
watermark guarantees there: a checkpoint adds the :func:`weekly_sums` of the steps above it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from learnflow.batches import AppliedEvent, CheckpointBatch, ComponentStep, DeadLetter, Record
from learnflow.bkt import ModelParameters
from learnflow.events import AttemptGraded, parse_event
from learnflow.exceptions import InvalidEventError
from learnflow.levels import LevelThresholds
from learnflow.student_state import StudentState, utc_day
from learnflow.weekly import iso_week_of


class ParsedRecord(NamedTuple):
    offset: int
    event: AttemptGraded
    timestamp_ms: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """A batch's records as events, and those that are not events."""

    records: tuple[ParsedRecord, ...]
    dead: tuple[DeadLetter, ...]
    last_offset: int
    """The batch's highest offset, events or not: the partition's watermark once it is saved."""

    def students(self) -> set[str]:
        return {record.event.student_id for record in self.records}


@dataclass(frozen=True, slots=True)
class FoldedBatch:
    checkpoint: CheckpointBatch
    dead: tuple[DeadLetter, ...]
    skipped: int
    """Events at or below their student's ``applied_offset``: replays, changing nothing."""
    timestamps_ms: tuple[int, ...]
    """Producer timestamps of the applied events."""


def parse_batch(records: Sequence[Record]) -> ParsedBatch:
    """Records in offset order (at least one) as events; the rest as dead letters."""
    parsed: list[ParsedRecord] = []
    dead: list[DeadLetter] = []
    for offset, key, value, timestamp in records:
        try:
            event = parse_event(value)
        except InvalidEventError as err:
            dead.append(DeadLetter(offset, key, value, f"invalid event: {err.reason}"))
            continue
        if key != event.key:
            dead.append(DeadLetter(offset, key, value, "message key is not the event's student_id"))
            continue
        parsed.append(ParsedRecord(offset, event, timestamp, value))
    return ParsedBatch(tuple(parsed), tuple(dead), records[-1][0])


def fold_batch(
    topic: str,
    partition: int,
    batch: ParsedBatch,
    known: Callable[[str], StudentState | None],
    model: ModelParameters,
    thresholds: LevelThresholds,
) -> FoldedBatch:
    """Apply the batch's events to the students' states as ``known`` gives them (``None``: a
    new student).

    An event at or below its student's ``applied_offset`` is skipped; one the mastery engine
    cannot apply is a dead letter and the stream goes on.
    """
    working: dict[str, StudentState] = {}
    applied: list[AppliedEvent] = []
    steps: list[ComponentStep] = []
    timestamps: list[int] = []
    dead = list(batch.dead)
    skipped = 0
    for record in batch.records:
        event, offset = record.event, record.offset
        student = event.student_id
        state = working.get(student) or known(student) or StudentState(student)
        if offset <= state.applied_offset:
            skipped += 1
            continue
        try:
            day = utc_day(event.submitted_at)
            state = state.apply(event, model, thresholds, offset, day)
        except Exception as err:  # a failing event is dead-lettered, the stream goes on
            dead.append(DeadLetter(offset, event.key, record.value, f"apply failed: {err!r}"))
            continue
        working[student] = state
        applied.append(AppliedEvent(offset, event))
        steps.extend(component_steps(offset, event, state, day))
        timestamps.append(record.timestamp_ms)
    dead.sort(key=lambda letter: letter.offset)
    checkpoint = CheckpointBatch(
        topic, partition, batch.last_offset, applied, steps, working, model.version
    )
    return FoldedBatch(checkpoint, tuple(dead), skipped, tuple(timestamps))


def component_steps(
    offset: int, event: AttemptGraded, state: StudentState, day: date | None = None
) -> list[ComponentStep]:
    """The P(mastered) of each of the event's components in ``state``, right after it (``day``:
    the UTC day of its ``submitted_at``, if the caller has it)."""
    if day is None:
        day = utc_day(event.submitted_at)
    year, week = iso_week_of(day)
    student, passed, components = event.student_id, event.passed, state.components
    return [
        ComponentStep(student, name, offset, passed, components[name].p_mastered, day, year, week)
        for name in event.components
    ]


def daily_values(steps: Iterable[ComponentStep]) -> dict[tuple[str, date], dict[str, float]]:
    """Each (student, UTC day)'s last P(mastered) per component among ``steps`` (in order)."""
    days: dict[tuple[str, date], dict[str, float]] = {}
    for step in steps:
        days.setdefault((step.student_id, step.day), {})[step.component] = step.p_mastered
    return days


WeeklyKey = tuple[str, str, int, int]
"""(student_id, component, iso_year, iso_week)."""


@dataclass(frozen=True, slots=True)
class WeeklyRow:
    attempts: int
    correct: int
    p_mastered: float
    last_offset: int


def weekly_sums(steps: Iterable[ComponentStep]) -> dict[WeeklyKey, WeeklyRow]:
    """``steps`` (in offset order) summed per weekly row: what one checkpoint adds to it. The
    value and ``last_offset`` are those of the row's last step."""
    sums: dict[WeeklyKey, list[Any]] = {}
    for step in steps:
        key = (step.student_id, step.component, step.iso_year, step.iso_week)
        row = sums.get(key)
        if row is None:
            sums[key] = [1, int(step.passed), step.p_mastered, step.offset]
        else:
            row[0] += 1
            row[1] += step.passed
            row[2] = step.p_mastered
            row[3] = step.offset
    return {key: WeeklyRow(*row) for key, row in sums.items()}


def add_weekly_sums(
    rows: Mapping[WeeklyKey, WeeklyRow], sums: Mapping[WeeklyKey, WeeklyRow]
) -> dict[WeeklyKey, WeeklyRow]:
    """``rows`` with one checkpoint's :func:`weekly_sums` added, as the PostgreSQL upsert adds
    them: a sum whose ``last_offset`` its row has already counted adds nothing."""
    added = dict(rows)
    for key, part in sums.items():
        row = added.get(key)
        if row is None:
            added[key] = part
        elif row.last_offset < part.last_offset:
            added[key] = WeeklyRow(
                row.attempts + part.attempts,
                row.correct + part.correct,
                part.p_mastered,
                part.last_offset,
            )
    return added


def merge_weekly(
    rows: Mapping[WeeklyKey, WeeklyRow], steps: Iterable[ComponentStep]
) -> dict[WeeklyKey, WeeklyRow]:
    """``rows`` with ``steps`` counted in: a step at or below its row's ``last_offset`` was
    counted before (a replay) and adds nothing."""
    merged = dict(rows)
    for step in steps:
        key = (step.student_id, step.component, step.iso_year, step.iso_week)
        row = merged.get(key)
        if row is not None and step.offset <= row.last_offset:
            continue
        attempts, correct = (row.attempts, row.correct) if row is not None else (0, 0)
        merged[key] = WeeklyRow(
            attempts + 1, correct + int(step.passed), step.p_mastered, step.offset
        )
    return merged
