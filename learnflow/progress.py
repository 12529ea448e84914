"""What a student (or the API) sees of a state: mastery and level per component."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from learnflow.bkt import ModelParameters
from learnflow.levels import Level, LevelThresholds
from learnflow.student_state import NO_OFFSET, StudentState


def progress_view(state: StudentState, thresholds: LevelThresholds) -> dict[str, Any]:
    """The state's components; ``model_version`` is the parameter version its last attempt was
    applied with."""
    return {
        "student_id": state.student_id,
        "applied_offset": state.applied_offset,
        "model_version": state.model_version,
        "components": {
            name: {
                "p_mastered": mastery.p_mastered,
                "level": mastery.level(thresholds).value,
                "attempts": mastery.attempts,
                "correct": mastery.correct,
                "last_attempt_at": (
                    mastery.last_attempt_at.isoformat() if mastery.last_attempt_at else None
                ),
            }
            for name, mastery in sorted(state.components.items())
        },
    }


def with_priors(view: dict[str, Any], model: ModelParameters, course: Iterable[str]) -> None:
    """Add each component of ``course`` the student has not started, at its prior (the model's
    ``p_init``, what the model believes before any attempt) and labelled not started. For a
    student with no attempt yet, ``model_version`` becomes the version the priors come from."""
    components: dict[str, Any] = view["components"]
    missing = [name for name in course if name not in components]
    if missing:
        for name in missing:
            components[name] = {
                "p_mastered": model.for_component(name).p_init,
                "level": Level.NOT_STARTED.value,
                "attempts": 0,
                "correct": 0,
                "last_attempt_at": None,
            }
        view["components"] = dict(sorted(components.items()))
    if view["applied_offset"] == NO_OFFSET:
        view["model_version"] = model.version
