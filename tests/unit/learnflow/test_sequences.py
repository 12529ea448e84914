"""Reading attempt data: our events and pyBKT-style CSV, with clear errors for bad rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from learnflow.events import AttemptGraded
from learnflow.sequences import DataFormatError, from_events, read_csv, read_events_file
from tests.strategies import make_attempt

HEADER = "order_id,user_id,skill_name,correct\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def as_dict(path: Path) -> dict[tuple[str, str], list[int]]:
    seqs = read_csv(path)
    return {
        (seqs.components[seqs.seq_component[i]], seqs.students[i]): seqs.obs[
            seqs.starts[i] : seqs.starts[i + 1]
        ].tolist()
        for i in range(seqs.n_sequences)
    }


def test_rows_are_grouped_and_ordered_by_order_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "extra,order_id,user_id,skill_name,correct\n"
        "x,30,u1,loops,1\nx,10,u1,loops,0\nx,20,u2,loops,1\nx,15,u1,lists,1\nx,25,u1,loops,0\n",
    )

    assert as_dict(path) == {
        ("lists", "u1"): [1],
        ("loops", "u1"): [0, 0, 1],
        ("loops", "u2"): [1],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("\n", "is empty"),
        (HEADER, "no rows"),
        ("order_id,user,skill_name,correct\n1,u1,loops,1\n", "line 1: missing column(s) user_id"),
        (HEADER + "1,u1,loops,1\n2,u1,loops,0.5\n", "line 3: correct must be 0 or 1, got '0.5'"),
        (HEADER + "1,u1,loops,yes\n", "line 2: correct must be 0 or 1, got 'yes'"),
        (HEADER + "1,u1,loops,1\nfirst,u1,loops,1\n", "line 3: order_id 'first' is not an integer"),
        (HEADER + "1,u1,,1\n", "line 2: skill_name is empty"),
        (HEADER + "1,,loops,1\n", "line 2: user_id is empty"),
        (HEADER + "1,u1,loops\n", "line 2: 3 fields, the header has 4"),
    ],
)
def test_malformed_csv_names_the_row(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataFormatError) as info:
        read_csv(write(tmp_path, text))

    assert message in str(info.value)
    assert str(tmp_path / "data.csv") in str(info.value)


def _event(student: str, components: tuple[str, ...], passed: bool, minute: int) -> AttemptGraded:
    return make_attempt(
        student, components, passed, datetime(2026, 11, 2, tzinfo=UTC) + timedelta(minutes=minute)
    )


def test_events_count_once_per_component_in_time_order() -> None:
    events = [
        _event("s1", ("loops", "lists"), True, 5),
        _event("s1", ("loops",), False, 1),
        _event("s2", ("lists",), False, 3),
    ]

    seqs = from_events(events)

    got = {
        (seqs.components[seqs.seq_component[i]], seqs.students[i]): seqs.obs[
            seqs.starts[i] : seqs.starts[i + 1]
        ].tolist()
        for i in range(seqs.n_sequences)
    }
    assert got == {("lists", "s1"): [1], ("lists", "s2"): [0], ("loops", "s1"): [0, 1]}


def test_bad_event_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(_event("s1", ("loops",), True, 0).to_json() + b"\n{}\n")

    with pytest.raises(DataFormatError, match=r"events.jsonl, line 2: .*student_id"):
        read_events_file(path)


def test_split_keeps_each_student_on_one_side(tmp_path: Path) -> None:
    rows = "".join(f"{n},u{n % 50},{'ab'[n % 2]},{n % 3 % 2}\n" for n in range(1000))
    seqs = read_csv(write(tmp_path, HEADER + rows))

    train, test = seqs.split_by_student(0.3)

    assert set(train.students).isdisjoint(test.students)
    assert train.n_sequences + test.n_sequences == seqs.n_sequences
    assert len(train.obs) + len(test.obs) == len(seqs.obs)
    assert 5 <= len(set(test.students)) <= 25
