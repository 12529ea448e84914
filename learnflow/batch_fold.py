"""The pure part of a shard's batch: parse, skip replays, apply, note each event's mastery.

A shard loads the states of the students a batch names, calls :func:`fold_batch`, writes the
:class:`~learnflow.batches.CheckpointBatch` it returns, and only then moves its memory on. Nothing
here does I/O, so replays can be checked exhaustively: folding a batch again from the states it
produced applies nothing, and folding any prefix and then the rest (from any earlier offset)
ends in the states and aggregates of one fold of the whole.

The aggregates follow the rules the stores apply: :func:`daily_values` is what the Redis
checkpoint writes (a day's last value per component; the fold makes a batch's as it goes, where
each event's day is known already), :func:`weekly_rows` what PostgreSQL's
``weekly_mastery`` view reads from the attempt rows (each recorded once: a checkpoint records
only the events above its partition's watermark).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import msgspec

from learnflow.batches import AppliedEvent, CheckpointBatch, DeadLetter, Record
from learnflow.bkt import ModelParameters
from learnflow.events import AttemptGraded, parse_event
from learnflow.exceptions import InvalidEventError
from learnflow.levels import LevelThresholds
from learnflow.student_state import (
    NO_OFFSET,
    ComponentMastery,
    StudentState,
    apply_attempt,
    state_holding,
    utc_day,
)
from learnflow.weekly import iso_week_of


class ParsedRecord(msgspec.Struct, frozen=True, gc=False):
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


@dataclass(slots=True)
class _Working:
    """A student's components while a batch folds them, and its last applied offset."""

    components: dict[str, ComponentMastery]
    applied_offset: int


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
    keep = parsed.append
    for offset, key, value, timestamp in records:
        try:
            event = parse_event(value)
        except InvalidEventError as err:
            dead.append(DeadLetter(offset, key, value, f"invalid event: {err.reason}"))
            continue
        if key != event.key:
            dead.append(DeadLetter(offset, key, value, "message key is not the event's student_id"))
            continue
        keep(ParsedRecord(offset, event, timestamp, value))
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
    # Each student's components are copied once per batch and changed in place by each of
    # its events: one new state per student the batch changed, not one per event.
    working: dict[str, _Working] = {}
    changed: dict[str, _Working] = {}  # in the order of their first applied event
    written: set[tuple[str, date]] = set()
    daily: dict[tuple[str, date], dict[str, float]] = {}
    applied: list[AppliedEvent] = []
    timestamps: list[int] = []
    version = model.version
    dead = list(batch.dead)
    skipped = 0
    for record in batch.records:
        event, offset = record.event, record.offset
        student = event.student_id
        entry = working.get(student)
        if entry is None:
            state = known(student)
            if state is None:
                entry = working[student] = _Working({}, NO_OFFSET)
            else:
                entry = working[student] = _Working(dict(state.components), state.applied_offset)
                latest = latest_day(state)
                if latest is not None:
                    written.add((student, latest))
        if offset <= entry.applied_offset:
            skipped += 1
            continue
        day = utc_day(event.submitted_at)
        try:
            mastery = apply_attempt(entry.components, event, model, thresholds, day)
        except Exception as err:  # a failing event is dead-lettered, the stream goes on
            dead.append(DeadLetter(offset, event.key, record.value, f"apply failed: {err!r}"))
            continue
        entry.applied_offset = offset
        changed[student] = entry
        applied.append(AppliedEvent(offset, event, version, mastery))
        timestamps.append(record.timestamp_ms)
        values = daily.get((student, day))
        if values is None:
            values = daily[student, day] = {}
        # One P(mastered) per component: strict's check would cost more than the copy.
        values.update(zip(event.components, mastery, strict=False))
    dead.sort(key=lambda letter: letter.offset)
    states = {
        student: state_holding(student, entry.components, entry.applied_offset, version)
        for student, entry in changed.items()
    }
    checkpoint = CheckpointBatch(
        topic, partition, batch.last_offset, applied, states, version, frozenset(written), daily
    )
    return FoldedBatch(checkpoint, tuple(dead), skipped, tuple(timestamps))


def applied_event(
    offset: int, event: AttemptGraded, state: StudentState, model_version: int
) -> AppliedEvent:
    """``event`` at ``offset`` as applied: ``state`` is its student's state right after it."""
    components = state.components
    mastery = tuple([components[name].p_mastered for name in event.components])
    return AppliedEvent(offset, event, model_version, mastery)


def latest_day(state: StudentState) -> date | None:
    """The UTC day of the student's latest attempt (``None``: no attempt yet)."""
    moments = [c.last_attempt_at for c in state.components.values() if c.last_attempt_at]
    return utc_day(max(moments)) if moments else None


def daily_values(applied: Iterable[AppliedEvent]) -> dict[tuple[str, date], dict[str, float]]:
    """Each (student, UTC day)'s last P(mastered) per component among ``applied`` (in order)."""
    days: dict[tuple[str, date], dict[str, float]] = {}
    for item in applied:
        event = item.event
        values = days.setdefault((event.student_id, utc_day(event.submitted_at)), {})
        values.update(zip(event.components, item.mastery, strict=True))
    return days


WeeklyKey = tuple[str, str, int, int]
"""(student_id, component, iso_year, iso_week)."""


@dataclass(frozen=True, slots=True)
class WeeklyRow:
    attempts: int
    correct: int
    p_mastered: float
    last_offset: int


def weekly_rows(applied: Iterable[AppliedEvent]) -> dict[WeeklyKey, WeeklyRow]:
    """The weekly aggregates of a partition's recorded events (each once, any order), as the
    ``weekly_mastery`` view makes them: per (student, component, UTC ISO week) the attempts,
    the correct ones, and the P(mastered) of the one with the highest offset."""
    rows: dict[WeeklyKey, WeeklyRow] = {}
    for item in applied:
        offset, event = item.offset, item.event
        year, week = iso_week_of(utc_day(event.submitted_at))
        for component, p in zip(event.components, item.mastery, strict=True):
            key = (event.student_id, component, year, week)
            row = rows.get(key)
            if row is None:
                rows[key] = WeeklyRow(1, int(event.passed), p, offset)
                continue
            last = (p, offset) if offset > row.last_offset else (row.p_mastered, row.last_offset)
            rows[key] = WeeklyRow(row.attempts + 1, row.correct + event.passed, *last)
    return rows
