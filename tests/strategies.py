"""Hypothesis strategies shared by the test suite."""

from __future__ import annotations

import string
import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from learnflow.bkt import BKTParams
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


probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
below_half = st.floats(min_value=0.0, max_value=0.49, allow_nan=False)


@st.composite
def bkt_params(draw: st.DrawFn, forget: bool = True) -> BKTParams:
    """Any valid parameters (guess and slip below one half)."""
    return BKTParams(
        p_init=draw(probabilities),
        p_learn=draw(probabilities),
        p_guess=draw(below_half),
        p_slip=draw(below_half),
        p_forget=draw(probabilities) if forget else 0.0,
    )


answers = st.lists(st.booleans(), min_size=1, max_size=60)


@st.composite
def student_histories(draw: st.DrawFn, max_events: int = 30) -> list[AttemptGraded]:
    """One student's attempts over a few days and components, in submission order."""
    student = draw(student_ids)
    components = draw(
        st.lists(
            st.sampled_from(["loops", "lists", "strings"]), min_size=1, max_size=3, unique=True
        )
    )
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    events = []
    moment = start
    for _ in range(draw(st.integers(min_value=1, max_value=max_events))):
        moment += timedelta(minutes=draw(st.integers(min_value=1, max_value=36 * 60)))
        tagged = tuple(draw(st.lists(st.sampled_from(components), min_size=1, unique=True)))
        total = draw(st.integers(min_value=1, max_value=5))
        passed_tests = draw(st.integers(min_value=0, max_value=total))
        events.append(
            AttemptGraded(
                event_id=draw(st.uuids()),
                student_id=student,
                exercise_id="ex-1",
                components=tagged,
                passed=passed_tests == total,
                score=passed_tests / total,
                tests_total=total,
                tests_passed=passed_tests,
                duration_ms=10,
                submitted_at=moment,
            )
        )
    return events


def make_attempt(
    student: str, components: tuple[str, ...], passed: bool, at: datetime
) -> AttemptGraded:
    """A one-test attempt, passed or not, at a given time."""
    return AttemptGraded(
        event_id=uuid.uuid4(),
        student_id=student,
        exercise_id="ex-1",
        components=components,
        passed=passed,
        score=1.0 if passed else 0.0,
        tests_total=1,
        tests_passed=int(passed),
        duration_ms=5,
        submitted_at=at,
    )


BAD_VALUES = (b"{not json", b"null", b'{"schema_version": 9}', b"", None)


@st.composite
def partition_records(draw: st.DrawFn) -> list[tuple[int, bytes | None, bytes | None, int]]:
    """One partition's Kafka records, in offset order (with gaps, as compaction and
    transaction markers leave): a few students' attempts interleaved, and now and then a value
    that is no event or a key that is not the event's student."""
    histories = draw(st.lists(student_histories(max_events=10), min_size=1, max_size=3))
    order = draw(st.permutations([i for i, history in enumerate(histories) for _ in history]))
    queues = [list(history) for history in histories]
    values: list[tuple[bytes | None, bytes | None]] = []
    for index in order:
        event = queues[index].pop(0)
        values.append((event.key, event.to_json()))
    for position, value in draw(
        st.lists(st.tuples(st.integers(0, len(values)), st.sampled_from(BAD_VALUES)), max_size=3)
    ):
        values.insert(position, (b"other!", value))
    for position in draw(st.sets(st.integers(0, len(values) - 1), max_size=2)):
        values[position] = (b"other!", values[position][1])
    start = draw(st.integers(min_value=0, max_value=5))
    step = draw(st.integers(min_value=1, max_value=3))
    return [
        (start + i * step, key, value, 1_700_000_000_000 + i)
        for i, (key, value) in enumerate(values)
    ]
