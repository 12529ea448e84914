"""The API's wire models: request and response bodies as OpenAPI shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from learnflow.students import StudentId


class ErrorBody(BaseModel):
    detail: str


class ExerciseSummary(BaseModel):
    id: str
    title: str
    components: list[str]
    kind: Literal["function", "program"]
    tests: int


class ExerciseDetail(ExerciseSummary):
    statement: str
    starter: str


class ExerciseList(BaseModel):
    exercises: list[ExerciseSummary]


class AttemptRequest(BaseModel):
    exercise_id: str = Field(min_length=1, max_length=64)
    code: str = Field(max_length=64 * 1024)


class TestOutcome(BaseModel):
    name: str
    passed: bool
    message: str


class EventPosition(BaseModel):
    event_id: str
    topic: str
    partition: int
    offset: int


class AttemptResponse(BaseModel):
    exercise_id: str
    passed: bool
    status: str
    message: str
    score: float
    tests_passed: int
    tests_total: int
    tests: list[TestOutcome]
    stdout: str
    duration_ms: int
    event: EventPosition


class ComponentProgress(BaseModel):
    p_mastered: float
    level: str
    attempts: int
    correct: int
    last_attempt_at: str | None


class ProgressResponse(BaseModel):
    student_id: str
    components: dict[str, ComponentProgress]
    """Every component of the course; one not started shows its prior (level ``not_started``)."""
    applied_offset: int
    model_version: int
    """The BKT parameter version the last attempt was applied with (for a student without
    attempts, the version of the priors shown)."""
    partition: int
    partition_offset: int | None
    caught_up: bool
    source: Literal["shard", "redis"]
    stale: bool


class WeekRow(BaseModel):
    component: str
    iso_year: int
    iso_week: int
    attempts: int
    correct: int
    p_mastered: float


class HistoryResponse(BaseModel):
    student_id: str
    weeks: list[WeekRow]


class AttemptSummary(BaseModel):
    event_id: str
    passed: bool
    score: float
    tests_passed: int
    tests_total: int
    submitted_at: str
    offset: int


class AttemptHistory(BaseModel):
    exercise_id: str
    attempts: list[AttemptSummary]


class DevTokenRequest(BaseModel):
    student_id: StudentId


class TokenResponse(BaseModel):
    token: str
    student_id: str
    expires_at: int


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422, 429, 503)
}
