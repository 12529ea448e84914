"""The ``attempt.graded`` wire contract: every valid event round-trips, every malformed one is
rejected with an error that names the offending field."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from learnflow import events
from learnflow.events import MAX_EVENT_BYTES, AttemptGraded, parse_event
from learnflow.exceptions import InvalidEventError
from tests.strategies import attempt_events

REQUIRED = [
    "schema_version",
    "event_type",
    "event_id",
    "student_id",
    "exercise_id",
    "components",
    "passed",
    "score",
    "tests_total",
    "tests_passed",
    "duration_ms",
    "submitted_at",
]
WRONG_TYPES: dict[str, list[Any]] = {
    "event_id": [123, "not-a-uuid", None],
    "student_id": [42, ["s1"], None],
    "exercise_id": [3.5, {"id": "x"}],
    "components": ["loops", [1, 2], None],
    "passed": ["true", 1, None],
    "score": ["0.5", None, [0.5]],
    "tests_total": ["3", 2.5, True],
    "tests_passed": ["1", 0.5, False],
    "duration_ms": ["10", 1.5, None],
    "submitted_at": [1_700_000_000, "yesterday", None],
    "schema_version": ["1", None, [1]],
}
STRING_LIMITS = {"student_id": 64, "exercise_id": 64}


def as_wire(event: AttemptGraded) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(event.to_json())
    return data


def rejected_fields(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(InvalidEventError) as info:
        parse_event(json.dumps(data).encode())
    return info.value.fields


@given(attempt_events())
def test_every_valid_event_round_trips(event: AttemptGraded) -> None:
    parsed = parse_event(event.to_json())

    assert parsed == event
    assert parsed.key == event.student_id.encode()


@given(attempt_events(), st.sampled_from(REQUIRED))
def test_missing_field_is_named(event: AttemptGraded, field: str) -> None:
    data = as_wire(event)
    del data[field]

    assert field in rejected_fields(data)


@given(attempt_events(), st.sampled_from(sorted(WRONG_TYPES)), st.data())
def test_wrong_type_is_named(event: AttemptGraded, field: str, data: st.DataObject) -> None:
    wire = as_wire(event)
    wire[field] = data.draw(st.sampled_from(WRONG_TYPES[field]))

    fields = rejected_fields(wire)

    assert any(name == field or name.startswith(f"{field}.") for name in fields), fields


@given(
    attempt_events(),
    st.one_of(
        st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
        st.floats(min_value=1 + 1e-9, allow_nan=False, allow_infinity=False),
    ),
)
def test_out_of_range_score_is_named(event: AttemptGraded, score: float) -> None:
    data = as_wire(event)
    data["score"] = score

    assert rejected_fields(data) == ("score",)


@given(attempt_events())
def test_naive_timestamp_is_named(event: AttemptGraded) -> None:
    data = as_wire(event)
    data["submitted_at"] = event.submitted_at.replace(tzinfo=None).isoformat()

    assert rejected_fields(data) == ("submitted_at",)


@given(attempt_events(), st.sampled_from(sorted(STRING_LIMITS)), st.integers(1, 500))
def test_oversize_string_is_named(event: AttemptGraded, field: str, extra: int) -> None:
    data = as_wire(event)
    data[field] = "a" * (STRING_LIMITS[field] + extra)

    assert rejected_fields(data) == (field,)


@given(attempt_events(), st.integers(1, 50))
def test_oversize_component_is_named(event: AttemptGraded, extra: int) -> None:
    data = as_wire(event)
    data["components"] = ["c" * (32 + extra)]

    assert "components.0" in rejected_fields(data)


@given(attempt_events())
def test_tests_passed_cannot_exceed_total(event: AttemptGraded) -> None:
    data = as_wire(event)
    data["tests_passed"] = data["tests_total"] + 1

    assert rejected_fields(data) == ("tests_passed",)


def test_repeated_component_is_refused() -> None:
    data = {**_valid(), "components": ["loops", "loops"]}

    assert rejected_fields(data) == ("components",)


def test_a_component_repeated_among_three_is_refused() -> None:
    data = {**_valid(), "components": ["loops", "lists", "loops"]}

    assert rejected_fields(data) == ("components",)


@pytest.mark.parametrize(
    ("field", "bad", "named"),
    [
        ("student_id", "student 1", "student_id"),
        ("exercise_id", "Sum-List", "exercise_id"),
        ("components", ["loops", "Lists"], "components.1"),
    ],
)
def test_a_bad_id_beside_ids_seen_before_is_still_refused(
    field: str, bad: object, named: str
) -> None:
    assert parse_event(json.dumps(_valid()).encode()).components == ("loops",)

    assert rejected_fields({**_valid(), field: bad}) == (named,)


def test_ids_seen_before_are_checked_again_once_too_many_are_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "_KNOWN_MAX", 3)
    for n in range(5):
        parse_event(json.dumps({**_valid(), "student_id": f"student-{n}"}).encode())

    assert len(events._KNOWN_STUDENTS) <= 3
    assert rejected_fields({**_valid(), "student_id": "student 9"}) == ("student_id",)


def test_unknown_schema_version_is_named() -> None:
    assert rejected_fields({**_valid(), "schema_version": 2}) == ("schema_version",)


def test_unknown_field_is_named() -> None:
    assert rejected_fields({**_valid(), "grade": "A"}) == ("grade",)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "Invalid JSON"),
        (b"[]", "Expected `object`, got `array`"),
        (None, "empty"),
        (b" " * (MAX_EVENT_BYTES + 1), "over the"),
    ],
)
def test_unparseable_values_are_refused(raw: bytes | None, needle: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        parse_event(raw)

    assert needle in info.value.reason
    assert info.value.fields


def _valid() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_type": "attempt.graded",
        "event_id": "0b5c3c5e-3a43-4a35-9a8f-3c4a3f1f4e10",
        "student_id": "student-1",
        "exercise_id": "sum-list",
        "components": ["loops"],
        "passed": True,
        "score": 1.0,
        "tests_total": 3,
        "tests_passed": 3,
        "duration_ms": 120,
        "submitted_at": "2026-11-27T10:00:00+00:00",
    }


def test_the_hand_written_example_is_valid() -> None:
    assert parse_event(json.dumps(_valid()).encode()).student_id == "student-1"


@given(attempt_events())
def test_an_invalid_event_never_reaches_the_wire(event: AttemptGraded) -> None:
    unfit = msgspec.structs.replace(event, score=event.score + 1.5)

    with pytest.raises(InvalidEventError, match="score"):
        unfit.to_json()


def test_rules_between_fields_hold_on_construction() -> None:
    data = {**_valid(), "tests_passed": 4, "components": ("loops",)}

    with pytest.raises(ValueError, match="exceeds tests_total"):
        AttemptGraded(
            **{k: v for k, v in data.items() if k not in ("schema_version", "event_type")}
        )


def test_an_event_without_components_cannot_be_made() -> None:
    data = {**_valid(), "components": ()}
    del data["schema_version"], data["event_type"]

    with pytest.raises(ValueError, match="components"):
        AttemptGraded(**data)
