"""Judging and the catalog, without running any code."""

from __future__ import annotations

from pathlib import Path

import pytest

from learnflow.settings import GraderSettings
from serve.grading import catalog
from serve.grading.grader import judge, same
from serve.grading.sandbox import Run


@pytest.mark.parametrize(
    ("value", "expected", "equal"),
    [
        (1, 1, True),
        (True, 1, False),
        (1, True, False),
        (0.1 + 0.2, 0.3, True),
        (2, 2.0, True),
        ([1, [2]], [1, [2]], True),
        ([1, 2], [2, 1], False),
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ("1", 1, False),
        (None, None, True),
        ({"__repr__": "<object>"}, None, False),
    ],
)
def test_same(value: object, expected: object, equal: bool) -> None:
    assert same(value, expected) is equal


def test_catalog_files_are_valid_and_never_show_tests() -> None:
    exercises = catalog.load()
    for exercise in exercises.values():
        public = exercise.public()
        assert set(public) == {"id", "title", "components", "kind", "statement", "starter", "tests"}


def test_a_malformed_exercise_names_its_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('id = "Bad Id"\ntitle = "x"\n')
    with pytest.raises(catalog.CatalogError, match=r"bad\.toml: id:"):
        catalog.load_file(path)


EXERCISE = catalog.load()["sum-to-n"]


def test_duplicate_answers_mean_tampering() -> None:
    run = Run(
        results=[
            {"load": True},
            {"i": 0, "ok": True, "value": 6},
            {"i": 0, "ok": True, "value": 6},
        ]
    )
    assert judge(GraderSettings(), EXERCISE, run).status == "tampered"


def test_a_program_killed_before_loading_fails_every_test_with_the_limit() -> None:
    graded = judge(GraderSettings(), EXERCISE, Run(limit="time", signal="SIGKILL"))
    assert graded.status == "time limit exceeded"
    assert all("time limit exceeded" in t.message for t in graded.tests)
    assert graded.tests_passed == 0
