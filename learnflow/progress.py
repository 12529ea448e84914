"""What a student (or the API) sees of a state: mastery and level per component."""

from __future__ import annotations

from typing import Any

from learnflow.levels import LevelThresholds
from learnflow.student_state import StudentState


def progress_view(state: StudentState, thresholds: LevelThresholds) -> dict[str, Any]:
    return {
        "student_id": state.student_id,
        "applied_offset": state.applied_offset,
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
