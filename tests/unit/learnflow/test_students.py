"""One student-id rule: the event model, token minting and the checker agree on every id."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from learnflow import keyring, students
from learnflow.events import AttemptGraded, attempt_event_id, parse_event
from learnflow.exceptions import InvalidEventError
from learnflow.settings import AuthSettings
from tests.strategies import make_attempt

GOOD = ["alice", "a", "Ada.Lovelace", "s-1_2:3@x", "9" * 64]
BAD = ["\u0430lice", "alice ", " alice", "alice\n", "{alice}", "a" * 65, "", "-alice", "al ice"]


def event_json(student_id: str) -> bytes:
    event = AttemptGraded(
        event_id=uuid.uuid4(), student_id="placeholder", exercise_id="sum-to-n",
        components=("loops",), passed=True, score=1.0, tests_total=1, tests_passed=1,
        duration_ms=5, submitted_at=datetime.now(UTC),
    )  # fmt: skip
    # By hand: an event with an invalid id cannot be made.
    return json.dumps({**json.loads(event.to_json()), "student_id": student_id}).encode()


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
    with pytest.raises(ValueError, match="student_id"):
        make_attempt(student_id, ("loops",), True, datetime.now(UTC))
    auth = AuthSettings(keys_dir=tmp_path)
    keyring.init(tmp_path)
    with pytest.raises(keyring.KeyRingError, match="not valid"):
        keyring.mint(keyring.load(tmp_path), auth, student_id)


def test_event_ids_are_per_student_and_stable() -> None:
    key = uuid.uuid4()
    assert attempt_event_id("alice", key) == attempt_event_id("alice", key)
    assert attempt_event_id("alice", key) != attempt_event_id("bob", key)
    assert attempt_event_id("alice", key) != key
