"""A student's mastery state and the fold that builds it from ``attempt.graded`` events.

``fold(events)`` from an empty state is the reference: shards, Redis copies and Postgres rebuilds
must all equal it. Each event updates every component it is tagged with, in O(1) per component.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType

import msgspec

from learnflow.bkt import ModelParameters
from learnflow.events import AttemptGraded
from learnflow.levels import DEFAULT_THRESHOLDS, Level, LevelThresholds

NO_OFFSET = -1


class ComponentMastery(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One (student, component): P(mastered) and what the level ladder needs to know.

    A struct made in C: one is made per component of every event, and every resident student
    holds a few. It holds no containers, so the cyclic garbage collector never needs to walk
    it (``gc=False``); in JSON it is an array of its fields, in order.
    """

    p_mastered: float
    attempts: int = 0
    correct: int = 0
    last_attempt_at: datetime | None = None
    proficient_since: date | None = None
    """UTC day of the attempt that first reached proficient (reset on falling below it)."""
    confirmed_on: date | None = None
    """UTC day of a correct attempt after ``proficient_since``: the proof that mastery holds."""

    def level(self, thresholds: LevelThresholds) -> Level:
        p = self.p_mastered
        if self.attempts == 0:
            return Level.NOT_STARTED
        if p >= thresholds.mastered and self.confirmed_on is not None:
            return Level.MASTERED
        if p >= thresholds.proficient:
            return Level.PROFICIENT
        if p >= thresholds.familiar:
            return Level.FAMILIAR
        return Level.ATTEMPTED


def utc_day(moment: datetime) -> date:
    """The UTC day of ``moment``: the day levels, daily mastery and ISO weeks count in."""
    return moment.date() if moment.tzinfo is UTC else moment.astimezone(UTC).date()


@dataclass(frozen=True, slots=True)
class StudentState:
    """Everything LearnFlow knows about one student's mastery; immutable.

    ``applied_offset`` is the Kafka offset of the last event applied (``-1``: none); an event at
    or below it is a replay and changes nothing.
    """

    student_id: str
    components: Mapping[str, ComponentMastery] = field(default_factory=dict)
    applied_offset: int = NO_OFFSET
    model_version: int = 0
    """The parameter version the last applied event was applied with."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", MappingProxyType(dict(self.components)))

    def component(self, name: str, model: ModelParameters) -> ComponentMastery:
        found = self.components.get(name)
        return found if found is not None else initial(name, model)

    def apply(
        self,
        event: AttemptGraded,
        model: ModelParameters,
        thresholds: LevelThresholds = DEFAULT_THRESHOLDS,
        offset: int | None = None,
    ) -> StudentState:
        """The state after ``event``; unchanged if ``offset`` was applied already."""
        if event.student_id != self.student_id:
            raise ValueError(f"event of {event.student_id} applied to {self.student_id}")
        if offset is not None and offset <= self.applied_offset:
            return self
        updated = dict(self.components)
        apply_attempt(updated, event, model, thresholds, utc_day(event.submitted_at))
        return state_holding(
            self.student_id,
            updated,
            self.applied_offset if offset is None else offset,
            model.version,
        )

    def levels(self, thresholds: LevelThresholds) -> dict[str, Level]:
        return {name: state.level(thresholds) for name, state in self.components.items()}


def apply_attempt(
    components: dict[str, ComponentMastery],
    event: AttemptGraded,
    model: ModelParameters,
    thresholds: LevelThresholds,
    day: date,
) -> tuple[float, ...]:
    """Apply ``event`` to a working copy of a student's ``components``, in place, all of its
    components or none (``day``: :func:`utc_day` of the event's ``submitted_at``); return the
    P(mastered) each of them has after it, in the event's order.

    Each component's P(mastered) takes the BKT update; the level ladder's days move with it:
    ``proficient_since`` is the day it first reached proficient (reset below it), and
    ``confirmed_on`` the day of a correct attempt after that one.
    """
    # One body for every component, inline: it runs for each component of every event.
    at, correct, names = event.submitted_at, event.passed, event.components
    proficient = thresholds.proficient
    updated: list[ComponentMastery] = []
    for name in names:
        state = components.get(name)
        if state is None:
            state = initial(name, model)
        p = model.for_component(name).update(state.p_mastered, correct)
        proficient_since, confirmed_on = state.proficient_since, state.confirmed_on
        if p < proficient:
            proficient_since, confirmed_on = None, None
        elif proficient_since is None:
            proficient_since = day
        elif correct and confirmed_on is None and day > proficient_since:
            confirmed_on = day
        # Positional: one of these is made per component of every event.
        updated.append(ComponentMastery(
            p, state.attempts + 1, state.correct + correct, at, proficient_since, confirmed_on
        ))  # fmt: skip
    components.update(zip(names, updated, strict=False))  # one length: no check per event
    return tuple([component.p_mastered for component in updated])


def state_holding(
    student_id: str,
    components: dict[str, ComponentMastery],
    applied_offset: int,
    model_version: int,
) -> StudentState:
    """A state holding ``components`` itself (a dict nothing else refers to and nothing will
    change), without the constructor's copy: :meth:`StudentState.apply` makes one per event,
    a batch fold one per student it changed."""
    state = object.__new__(StudentState)
    object.__setattr__(state, "student_id", student_id)
    object.__setattr__(state, "components", MappingProxyType(components))
    object.__setattr__(state, "applied_offset", applied_offset)
    object.__setattr__(state, "model_version", model_version)
    return state


def initial(component: str, model: ModelParameters) -> ComponentMastery:
    return ComponentMastery(p_mastered=model.for_component(component).p_init)


def fold(
    student_id: str,
    events: Iterable[AttemptGraded],
    model: ModelParameters,
    thresholds: LevelThresholds = DEFAULT_THRESHOLDS,
) -> StudentState:
    """Apply ``events`` in the given order to an empty state: the reference state."""
    state = StudentState(student_id)
    for event in events:
        state = state.apply(event, model, thresholds)
    return state
