"""What a progress answer shows: attempted components as folded, the rest at the model's prior."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from learnflow.bkt import BKTParams, ModelParameters
from learnflow.events import AttemptGraded
from learnflow.levels import DEFAULT_THRESHOLDS
from learnflow.progress import progress_view, with_priors
from learnflow.student_state import StudentState

MODEL = ModelParameters(
    version=7,
    components={
        "loops": BKTParams(0.3, 0.2, 0.2, 0.1),
        "recursion": BKTParams(0.05, 0.1, 0.2, 0.1),
    },
    default=BKTParams(0.12, 0.15, 0.2, 0.1),
)
COURSE = ("functions", "loops", "recursion")


def attempt(components: tuple[str, ...], passed: bool) -> AttemptGraded:
    return AttemptGraded(
        event_id=uuid4(), student_id="ada", exercise_id="ex", components=components,
        passed=passed, score=1.0 if passed else 0.0, tests_passed=1 if passed else 0,
        tests_total=1, duration_ms=10, submitted_at=datetime(2026, 12, 1, tzinfo=UTC),
    )  # fmt: skip


def test_a_student_without_attempts_sees_every_prior_as_not_started() -> None:
    view = progress_view(StudentState("ada"), DEFAULT_THRESHOLDS)

    with_priors(view, MODEL, COURSE)

    assert list(view["components"]) == list(COURSE)
    shown = {name: c["p_mastered"] for name, c in view["components"].items()}
    assert shown == {"functions": 0.12, "loops": 0.3, "recursion": 0.05}
    assert {c["level"] for c in view["components"].values()} == {"not_started"}
    assert all(c["attempts"] == 0 for c in view["components"].values())
    assert view["model_version"] == 7


def test_attempted_components_keep_their_state_and_version() -> None:
    older = ModelParameters(version=2, components=MODEL.components, default=MODEL.default)
    state = StudentState("ada").apply(attempt(("loops",), True), older, DEFAULT_THRESHOLDS, 5)
    view = progress_view(state, DEFAULT_THRESHOLDS)
    folded = view["components"]["loops"]

    with_priors(view, MODEL, COURSE)

    assert view["components"]["loops"] == folded
    assert folded["attempts"] == 1 and folded["p_mastered"] > 0.3
    assert view["components"]["recursion"]["level"] == "not_started"
    assert view["model_version"] == 2  # the version its attempt was applied with
