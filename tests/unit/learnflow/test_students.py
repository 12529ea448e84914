"""One student-id rule: the event model, token minting and the checker agree on every id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from learnflow import keyring, students
from learnflow.events import AttemptGraded, attempt_event_id, parse_event
from learnflow.exceptions import InvalidEventError
from learnflow.settings import AuthSettings

GOOD = ["alice", "a", "Ada.Lovelace", "s-1_2:3@x", "9" * 64]
BAD = ["\u0430lice", "alice ", " alice", "alice\n", "{alice}", "a" * 65, "", "-alice", "al ice"]


def event_json(student_id: str) -> bytes:
    event = AttemptGraded(
        event_id=uuid.uuid4(), student_id=student_id, exercise_id="sum-to-n",
        components=("loops",), passed=True, score=1.0, tests_total=1, tests_passed=1,
        duration_ms=5, submitted_at=datetime.now(UTC),
    )  # fmt: skip
    return msgspec.json.encode(event)  # unchecked: the ids under test may be invalid


@pytest.mark.parametrize("student_id", GOOD)
def test_good_ids_pass_everywhere(student_id: str, tmp_path: Path) -> None:
    assert students.is_valid(student_id)
    assert parse_event(event_json(student_id)).student_id == student_id
    auth = AuthSettings(keys_dir=tmp_path)
    keyring.init(tmp_path)
    assert keyring.mint(keyring.load(tmp_path), auth, student_id)[1]["sub"] == student_id


@pytest.mark.parametrize("student_id", BAD, ids=repr)
def test_bad_ids_are_refused_everywhere(student_id: str, tmp_path: Path) -> None:
    assert not students.is_valid(student_id)
    with pytest.raises(InvalidEventError, match="student_id"):
        parse_event(event_json(student_id))
    auth = AuthSettings(keys_dir=tmp_path)
    keyring.init(tmp_path)
    with pytest.raises(keyring.KeyRingError, match="not valid"):
        keyring.mint(keyring.load(tmp_path), auth, student_id)


def test_event_ids_are_per_student_and_stable() -> None:
    key = uuid.uuid4()
    assert attempt_event_id("alice", key) == attempt_event_id("alice", key)
    assert attempt_event_id("alice", key) != attempt_event_id("bob", key)
    assert attempt_event_id("alice", key) != key
