"""The reference fold and the level ladder."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given

from learnflow.bkt import BKTParams, ModelParameters
from learnflow.events import AttemptGraded
from learnflow.levels import Level, LevelThresholds
from learnflow.student_state import StudentState, fold
from tests.strategies import make_attempt as attempt
from tests.strategies import student_histories

MODEL = ModelParameters(
    version=1,
    components={
        "loops": BKTParams(0.2, 0.3, 0.2, 0.1),
        "lists": BKTParams(0.3, 0.1, 0.25, 0.05, p_forget=0.02),
    },
)
THRESHOLDS = LevelThresholds()


@given(student_histories())
def test_fold_is_deterministic(events: list[AttemptGraded]) -> None:
    student = events[0].student_id

    assert fold(student, events, MODEL) == fold(student, events, MODEL)


@given(student_histories())
def test_fold_depends_on_answers_and_order_not_on_identifiers(events: list[AttemptGraded]) -> None:
    student = events[0].student_id
    relabelled = [
        msgspec.structs.replace(e, event_id=uuid.uuid4(), exercise_id="other", duration_ms=999)
        for e in events
    ]

    assert fold(student, relabelled, MODEL) == fold(student, events, MODEL)


@given(student_histories())
def test_each_component_follows_its_own_answers_in_order(events: list[AttemptGraded]) -> None:
    state = fold(events[0].student_id, events, MODEL)

    for name, mastery in state.components.items():
        params = MODEL.for_component(name)
        p = params.p_init
        mine = [e for e in events if name in e.components]
        for event in mine:
            p = params.update(p, event.passed)
        assert mastery.p_mastered == p
        assert mastery.attempts == len(mine)
        assert mastery.correct == sum(e.passed for e in mine)
        assert mastery.last_attempt_at == mine[-1].submitted_at


def test_order_matters() -> None:
    day = datetime(2026, 11, 2, 9, tzinfo=UTC)
    right = attempt("s1", ("lists",), True, day)
    wrong = attempt("s1", ("lists",), False, day + timedelta(minutes=1))

    forward = fold("s1", [right, wrong], MODEL).components["lists"].p_mastered
    backward = fold("s1", [wrong, right], MODEL).components["lists"].p_mastered

    assert forward != backward


def test_replayed_offsets_change_nothing() -> None:
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    state = StudentState("s1").apply(attempt("s1", ("loops",), True, at), MODEL, offset=10)

    again = state.apply(attempt("s1", ("loops",), False, at), MODEL, offset=10)
    older = state.apply(attempt("s1", ("loops",), False, at), MODEL, offset=3)

    assert again is state
    assert older is state
    assert state.applied_offset == 10


def test_mastered_needs_a_correct_answer_on_a_later_day() -> None:
    monday = datetime(2026, 11, 2, 9, tzinfo=UTC)
    same_day = [attempt("s1", ("loops",), True, monday + timedelta(minutes=m)) for m in range(8)]
    state = fold("s1", same_day, MODEL)

    assert state.components["loops"].p_mastered >= THRESHOLDS.mastered
    assert state.levels(THRESHOLDS)["loops"] is Level.PROFICIENT

    tuesday = attempt("s1", ("loops",), True, monday + timedelta(days=1))
    assert state.apply(tuesday, MODEL).levels(THRESHOLDS)["loops"] is Level.MASTERED


def test_the_ladder_up_and_down() -> None:
    # Forgetting keeps P(mastered) below 1, so wrong answers can bring a student down.
    responsive = ModelParameters(components={"loops": BKTParams(0.1, 0.2, 0.25, 0.15, 0.02)})
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    state = StudentState("s1")
    assert state.component("loops", responsive).level(THRESHOLDS) is Level.NOT_STARTED

    state = state.apply(attempt("s1", ("loops",), False, at), responsive)
    assert state.levels(THRESHOLDS)["loops"] is Level.ATTEMPTED

    climb = []
    for day in range(1, 4):
        for minute in range(4):
            moment = at + timedelta(days=day, minutes=minute)
            state = state.apply(attempt("s1", ("loops",), True, moment), responsive)
            climb.append(state.levels(THRESHOLDS)["loops"])
    assert climb.index(Level.FAMILIAR) < climb.index(Level.PROFICIENT)
    assert climb[-1] is Level.MASTERED

    fall = []
    for minute in range(3):
        moment = at + timedelta(days=4, minutes=minute)
        state = state.apply(attempt("s1", ("loops",), False, moment), responsive)
        fall.append(state.levels(THRESHOLDS)["loops"])
    assert fall == [Level.PROFICIENT, Level.FAMILIAR, Level.ATTEMPTED]
    assert state.components["loops"].proficient_since is None
    assert state.components["loops"].confirmed_on is None


def test_a_day_is_a_utc_day() -> None:
    late = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
    state = fold(
        "s1",
        [attempt("s1", ("loops",), True, late + timedelta(minutes=m)) for m in range(8)],
        MODEL,
    )
    # 00:30 the next day in Kolkata is still 2 November in UTC: not a later day.
    kolkata = (
        datetime(2026, 11, 3, 5, 15, tzinfo=UTC)
        .astimezone(__import__("datetime").timezone(timedelta(hours=5, minutes=30)))
        .replace(hour=4, minute=59)
    )
    assert kolkata.astimezone(UTC).date() == late.date()
    same = state.apply(attempt("s1", ("loops",), True, kolkata), MODEL)
    assert same.levels(THRESHOLDS)["loops"] is Level.PROFICIENT
