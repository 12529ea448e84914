"""Student state survives JSON exactly: what Redis holds must equal the fold bit for bit."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from learnflow import keys, state_codec
from learnflow.bkt import BKTParams, ModelParameters
from learnflow.events import AttemptGraded
from learnflow.student_state import StudentState, fold
from learnflow.weekly import iso_week, weekly_aggregates
from tests.strategies import student_histories

MODEL = ModelParameters(components={"loops": BKTParams(0.2, 0.3, 0.2, 0.1, 0.05)})


@given(student_histories())
def test_encode_decode_is_exact(events: list[AttemptGraded]) -> None:
    state = fold(events[0].student_id, events, MODEL)
    state = StudentState(
        state.student_id, state.components, applied_offset=len(events) * 7, model_version=3
    )

    assert state_codec.decode(state_codec.encode(state)) == state
    assert state_codec.decode(encode_v1(state)) == state
    saved = state_codec.decode(state_codec.encode(state))
    assert all(
        mine.last_attempt_at == theirs.last_attempt_at
        and mine.last_attempt_at.utcoffset() == theirs.last_attempt_at.utcoffset()
        for name, theirs in state.components.items()
        if (mine := saved.components[name]).last_attempt_at is not None
    )


@given(st.lists(student_histories(), max_size=4))
def test_states_encoded_together_are_each_encoded_alone(
    histories: list[list[AttemptGraded]],
) -> None:
    states = [fold(events[0].student_id, events, MODEL) for events in histories]

    assert state_codec.encode_many(states) == [state_codec.encode(s) for s in states]


def test_a_state_saved_before_model_versions_reads_as_the_built_in_version() -> None:
    raw = b'{"v": 1, "student_id": "ada", "applied_offset": 4, "components": {}}'

    assert state_codec.decode(raw) == StudentState("ada", applied_offset=4, model_version=0)


@given(student_histories())
def test_weekly_aggregates_add_up_to_the_fold(events: list[AttemptGraded]) -> None:
    student = events[0].student_id
    state = fold(student, events, MODEL)

    weeks = weekly_aggregates(student, events, MODEL)

    for name, mastery in state.components.items():
        mine = {key: agg for key, agg in weeks.items() if key[0] == name}
        assert sum(agg.attempts for agg in mine.values()) == mastery.attempts
        assert sum(agg.correct for agg in mine.values()) == mastery.correct
        last = max(e.submitted_at for e in events if name in e.components)
        last_week = (name, *iso_week(last))
        assert mine[last_week].p_mastered == mastery.p_mastered


def test_a_students_keys_share_one_cluster_slot() -> None:
    student = "alice@example.org"
    tagged = [
        keys.state(student),
        keys.attempts(student, "sum-list"),
        keys.idempotency(student, "r1"),
    ]

    assert all("{" + student + "}" in key for key in tagged)


def test_something_else_is_not_read_as_a_state() -> None:
    with pytest.raises(ValueError, match="not a student state"):
        state_codec.decode(b'[3, "ada", 4, 0, {}]')


def encode_v1(state: StudentState) -> bytes:
    """A state as checkpoints wrote it before version 2."""
    return orjson.dumps(
        {
            "v": 1,
            "student_id": state.student_id,
            "applied_offset": state.applied_offset,
            "model_version": state.model_version,
            "components": {
                name: {
                    "p": c.p_mastered,
                    "attempts": c.attempts,
                    "correct": c.correct,
                    "last": c.last_attempt_at,
                    "proficient_since": c.proficient_since,
                    "confirmed_on": c.confirmed_on,
                }
                for name, c in state.components.items()
            },
        }
    )
