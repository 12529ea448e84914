"""Weekly mastery aggregates per (component, ISO week): the reference for Postgres' copy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from learnflow.bkt import ModelParameters
from learnflow.events import AttemptGraded
from learnflow.levels import DEFAULT_THRESHOLDS, LevelThresholds
from learnflow.student_state import StudentState, utc_day

WeekKey = tuple[str, int, int]
"""(component, ISO year, ISO week) of the attempt's UTC time."""


@dataclass(frozen=True, slots=True)
class WeekAggregate:
    attempts: int
    correct: int
    p_mastered: float
    """P(mastered) after the last attempt of that week, in application order."""


def iso_week(moment: datetime) -> tuple[int, int]:
    return iso_week_of(utc_day(moment))


@lru_cache(maxsize=1024)
def iso_week_of(day: date) -> tuple[int, int]:
    """(ISO year, ISO week) of a UTC day (cached: a batch's events share a few days)."""
    year, week, _ = day.isocalendar()
    return year, week


def weekly_aggregates(
    student_id: str,
    events: Iterable[AttemptGraded],
    model: ModelParameters,
    thresholds: LevelThresholds = DEFAULT_THRESHOLDS,
) -> dict[WeekKey, WeekAggregate]:
    """Fold ``events`` and aggregate every component's attempts by the week they were made."""
    state = StudentState(student_id)
    weeks: dict[WeekKey, WeekAggregate] = {}
    for event in events:
        state = state.apply(event, model, thresholds)
        year, week = iso_week(event.submitted_at)
        for name in event.components:
            key = (name, year, week)
            before = weeks.get(key, WeekAggregate(0, 0, 0.0))
            weeks[key] = WeekAggregate(
                before.attempts + 1,
                before.correct + int(event.passed),
                state.components[name].p_mastered,
            )
    return weeks
