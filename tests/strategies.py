"""Hypothesis strategies shared by the test suite."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from learnflow.events import AttemptGraded

student_ids = st.text(
    alphabet=string.ascii_letters + string.digits + "_.:@-", min_size=0, max_size=63
).map(lambda rest: "s" + rest)
exercise_ids = st.text(
    alphabet=string.ascii_lowercase + string.digits + "_.-", min_size=0, max_size=63
).map(lambda rest: "e" + rest)
component_ids = st.text(
    alphabet=string.ascii_lowercase + string.digits + "_-", min_size=0, max_size=31
).map(lambda rest: "c" + rest)
aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)
).flatmap(
    lambda moment: st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ).map(lambda tz: moment.replace(tzinfo=tz))
)


@st.composite
def attempt_events(draw: st.DrawFn) -> AttemptGraded:
    """Any valid ``attempt.graded`` event."""
    total = draw(st.integers(min_value=1, max_value=1000))
    return AttemptGraded(
        event_id=draw(st.uuids()),
        student_id=draw(student_ids),
        exercise_id=draw(exercise_ids),
        components=tuple(draw(st.lists(component_ids, min_size=1, max_size=16, unique=True))),
        passed=draw(st.booleans()),
        score=draw(st.floats(min_value=0.0, max_value=1.0, allow_nan=False)),
        tests_total=total,
        tests_passed=draw(st.integers(min_value=0, max_value=total)),
        duration_ms=draw(st.integers(min_value=0, max_value=3_600_000)),
        submitted_at=draw(aware_datetimes),
    )
