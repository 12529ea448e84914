"""The batch fold replays safely: a duplicate batch applies nothing, and any prefix followed by a
redelivery from any earlier offset (Kafka's at-least-once) ends in the states, daily values and
weekly aggregates of one fold of the whole partition, each event counted once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from learnflow.batch_fold import (
    FoldedBatch,
    WeeklyKey,
    WeeklyRow,
    daily_values,
    fold_batch,
    parse_batch,
    weekly_rows,
)
from learnflow.batches import AppliedEvent, Record
from learnflow.bkt import BKTParams, ModelParameters
from learnflow.events import AttemptGraded, parse_event
from learnflow.exceptions import InvalidEventError
from learnflow.levels import DEFAULT_THRESHOLDS
from learnflow.student_state import StudentState, fold
from learnflow.weekly import weekly_aggregates
from tests.strategies import make_attempt, partition_records

MODEL = ModelParameters(components={"loops": BKTParams(0.2, 0.3, 0.2, 0.1, 0.05)})


class Partition:
    """What a shard and its stores hold for one partition, written the way they write."""

    def __init__(self) -> None:
        self.states: dict[str, StudentState] = {}
        self.daily: dict[tuple[str, object], dict[str, float]] = {}
        self.recorded: list[AppliedEvent] = []
        self.dead: set[int] = set()
        self.watermark = -1

    def deliver(self, records: Sequence[Record]) -> FoldedBatch:
        folded = fold_batch(
            "t", 0, parse_batch(records), self.states.get, MODEL, DEFAULT_THRESHOLDS
        )
        self.write(folded)
        return folded

    def write(self, folded: FoldedBatch) -> None:
        batch = folded.checkpoint
        # PostgreSQL records the attempt rows above the partition's watermark, which moves on
        # in the same transaction; its weekly aggregates are a view of those rows.
        self.recorded += [a for a in batch.applied if a.offset > self.watermark]
        self.watermark = max(self.watermark, batch.last_offset)
        # The days a batch says were written before need no new expiry: they must be keys an
        # earlier checkpoint made. Any other day of the batch gets one.
        assert batch.days_written <= set(self.daily)
        # The fold makes the batch's daily values as it goes: those of its applied events.
        assert batch.daily == daily_values(batch.applied)
        for day, values in daily_values(batch.applied).items():
            self.daily.setdefault(day, {}).update(values)
        self.states.update(batch.states)
        self.dead.update(letter.offset for letter in folded.dead)

    @property
    def weekly(self) -> dict[WeeklyKey, WeeklyRow]:
        return weekly_rows(self.recorded)

    @property
    def attempts(self) -> list[str]:
        return [str(a.event.event_id) for a in self.recorded]


def events_of(records: Sequence[Record]) -> list[AttemptGraded]:
    found = []
    for _, key, value, _ in records:
        try:
            event = parse_event(value)
        except InvalidEventError:
            event = None
        if event is not None and key == event.key:
            found.append(event)
    return found


def reference(records: Sequence[Record]) -> Partition:
    whole = Partition()
    whole.deliver(records)
    return whole


def assert_same(got: Partition, want: Partition) -> None:
    assert got.states == want.states
    assert got.daily == want.daily
    assert got.weekly == want.weekly
    assert sorted(got.attempts) == sorted(want.attempts)
    assert got.dead == want.dead


@given(partition_records())
def test_one_fold_matches_the_reference_fold_and_weekly_aggregates(
    records: list[Record],
) -> None:
    whole = reference(records)
    events = events_of(records)
    students = {e.student_id for e in events}

    assert set(whole.states) == students
    for student in students:
        mine = [e for e in events if e.student_id == student]
        assert whole.states[student].components == fold(student, mine, MODEL).components
        weeks = weekly_aggregates(student, mine, MODEL)
        assert {
            (component, year, week): (row.attempts, row.correct, row.p_mastered)
            for (s, component, year, week), row in whole.weekly.items()
            if s == student
        } == {key: (w.attempts, w.correct, w.p_mastered) for key, w in weeks.items()}
    assert sorted(whole.attempts) == sorted(str(e.event_id) for e in events)
    assert whole.dead <= {o for o, *_ in records} and len(whole.dead) == len(records) - len(events)


@given(partition_records())
def test_a_duplicate_batch_applies_nothing(records: list[Record]) -> None:
    partition = reference(records)
    before = (dict(partition.states), dict(partition.weekly), len(partition.attempts))

    again = partition.deliver(records)

    assert again.checkpoint.applied == []
    assert again.checkpoint.states == {}
    assert again.skipped == len(events_of(records))
    assert {letter.offset for letter in again.dead} == partition.dead
    assert (partition.states, partition.weekly, len(partition.attempts)) == before


@given(partition_records(), st.data())
def test_any_prefix_then_a_redelivery_from_an_earlier_offset_ends_as_one_fold(
    records: list[Record], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=1, max_value=len(records)))
    replay_from = data.draw(st.integers(min_value=0, max_value=cut))
    partition = Partition()

    partition.deliver(records[:cut])
    if replay_from < len(records):
        partition.deliver(records[replay_from:])

    assert_same(partition, reference(records))


@given(partition_records(), st.data())
def test_a_replay_from_states_that_lost_a_checkpoint_counts_nothing_twice(
    records: list[Record], data: st.DataObject
) -> None:
    """Redis lost the second batch's write while PostgreSQL kept it: the shard folds that batch
    again from the older states, and PostgreSQL's partition watermark keeps it from counting
    twice."""
    first = data.draw(st.integers(min_value=1, max_value=len(records)))
    second = data.draw(st.integers(min_value=first, max_value=len(records)))
    partition = Partition()
    partition.deliver(records[:first])
    saved_states, saved_daily = (
        dict(partition.states),
        {day: dict(values) for day, values in partition.daily.items()},
    )
    if second > first:
        partition.deliver(records[first:second])

    partition.states, partition.daily = saved_states, saved_daily  # Redis lost that write
    if first < len(records):
        partition.deliver(records[first:])

    assert_same(partition, reference(records))


@given(partition_records(), st.data())
def test_weekly_rows_do_not_depend_on_the_order_rows_are_read_in(
    records: list[Record], data: st.DataObject
) -> None:
    """The view groups rows in whatever order PostgreSQL reads them."""
    folded = fold_batch("t", 0, parse_batch(records), {}.get, MODEL, DEFAULT_THRESHOLDS)
    applied = list(folded.checkpoint.applied)
    shuffled = data.draw(st.permutations(applied))

    assert weekly_rows(shuffled) == weekly_rows(applied)


def test_applied_events_carry_each_components_mastery_after_them() -> None:
    records = [
        (0, b"s1", _event("s1", ("loops", "lists"), True).to_json(), 1),
        (1, b"s1", _event("s1", ("loops",), False).to_json(), 2),
    ]
    folded = fold_batch("t", 0, parse_batch(records), {}.get, MODEL, DEFAULT_THRESHOLDS)
    applied: Sequence[AppliedEvent] = folded.checkpoint.applied
    state = folded.checkpoint.states["s1"]

    assert [(a.offset, a.event.components, len(a.mastery)) for a in applied] == [
        (0, ("loops", "lists"), 2),
        (1, ("loops",), 1),
    ]
    assert applied[-1].mastery == (state.components["loops"].p_mastered,)
    assert applied[0].mastery[1] == state.components["lists"].p_mastered
    assert applied[0].mastery[0] != applied[1].mastery[0]
    assert folded.timestamps_ms == (1, 2) and state.applied_offset == 1


def test_a_batch_is_folded_and_labelled_with_one_model_version() -> None:
    records = [(n, b"s1", _event("s1", ("loops",), n % 2 == 0).to_json(), n) for n in range(4)]
    newer = ModelParameters(version=4, components={"loops": BKTParams(0.6, 0.3, 0.2, 0.1)})

    old = fold_batch("t", 0, parse_batch(records), {}.get, MODEL, DEFAULT_THRESHOLDS)
    new = fold_batch("t", 0, parse_batch(records), {}.get, newer, DEFAULT_THRESHOLDS)

    assert (old.checkpoint.model_version, new.checkpoint.model_version) == (0, 4)
    assert new.checkpoint.states["s1"].model_version == 4
    old_p = old.checkpoint.states["s1"].components["loops"].p_mastered
    assert new.checkpoint.states["s1"].components["loops"].p_mastered != old_p


def _event(student: str, components: tuple[str, ...], passed: bool) -> AttemptGraded:

    return make_attempt(student, components, passed, datetime(2026, 11, 2, 9, tzinfo=UTC))
