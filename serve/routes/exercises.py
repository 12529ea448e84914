"""The exercise catalog: statements and starter code, never the tests."""

from __future__ import annotations

from fastapi import APIRouter

from serve.deps import Catalog
from serve.exceptions import NotFoundError
from serve.wire import ExerciseDetail, ExerciseList, ExerciseSummary

router = APIRouter(tags=["exercises"])


@router.get("/exercises")
async def list_exercises(exercises: Catalog) -> ExerciseList:
    """Every exercise: id, title, components, kind and how many hidden tests it has."""
    return ExerciseList(
        exercises=[ExerciseSummary.model_validate(e.public()) for e in exercises.values()]
    )


@router.get("/exercises/{exercise_id}")
async def get_exercise(exercise_id: str, exercises: Catalog) -> ExerciseDetail:
    """Statement, starter code and components; never the hidden tests."""
    exercise = exercises.get(exercise_id)
    if exercise is None:
        raise NotFoundError(f"no exercise {exercise_id!r}")
    return ExerciseDetail.model_validate(exercise.public())
