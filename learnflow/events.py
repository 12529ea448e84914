"""The wire contract of ``learning.events``: versioned, strictly validated event models.

A Kafka value is the JSON of one model below; its key is the ``student_id`` as UTF-8, so every event
of a student lands on one partition, in order. :func:`parse_event` is the one way in from bytes:
it either returns a model or raises :class:`~learnflow.exceptions.InvalidEventError` naming the
offending fields, which the ingest sends to the dead-letter topic.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal
from uuid import UUID, uuid5

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from learnflow.exceptions import InvalidEventError
from learnflow.students import StudentId

MAX_EVENT_BYTES: Final = 64 * 1024
"""Values larger than this are rejected before they are parsed."""

ExerciseId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
]
ComponentId = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")
]


class AttemptGraded(BaseModel):
    """A student's exercise attempt, graded: the event every mastery update starts from.

    ``event_id`` is :func:`attempt_event_id` of the student and the request's idempotency key,
    so a retried submit can never be counted twice, and no student's key can collide with
    another student's attempt.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    event_type: Literal["attempt.graded"] = "attempt.graded"
    event_id: UUID
    student_id: StudentId
    exercise_id: ExerciseId
    components: tuple[ComponentId, ...] = Field(min_length=1, max_length=16)
    passed: bool
    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    tests_total: int = Field(ge=1, le=1000)
    tests_passed: int = Field(ge=0, le=1000)
    duration_ms: int = Field(ge=0, le=3_600_000)
    submitted_at: AwareDatetime

    @field_validator("components")
    @classmethod
    def _components_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("components must not repeat")
        return value

    @field_validator("tests_passed")
    @classmethod
    def _passed_within_total(cls, value: int, info: ValidationInfo) -> int:
        total = info.data.get("tests_total")
        if total is not None and value > total:
            raise ValueError(f"tests_passed ({value}) exceeds tests_total ({total})")
        return value

    @property
    def key(self) -> bytes:
        """The Kafka message key: the student id, UTF-8."""
        return self.student_id.encode()

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


_ATTEMPT_IDS: Final = UUID("6f1c2b0e-5a0d-4f43-9d55-2d1f6c1e8a71")


def attempt_event_id(student_id: str, idempotency_key: UUID) -> UUID:
    """The event id of a student's submit: a UUIDv5 of (student, key).

    Keys are chosen by clients, so a key alone is only unique per student; two students using
    the same key (by chance or on purpose) still make two distinct events.
    """
    return uuid5(_ATTEMPT_IDS, f"{student_id}/{idempotency_key}")


LearningEvent = AttemptGraded
"""Every event type on ``learning.events`` (one so far)."""

_REQUIRED_ON_WIRE: Final = ("schema_version", "event_type")


def parse_event(raw: bytes | None) -> LearningEvent:
    """Validate one Kafka value; raise ``InvalidEventError`` naming the bad fields."""
    if raw is None:
        raise InvalidEventError("event value is empty (null)", ("<value>",))
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEventError(
            f"event value is {len(raw)} bytes, over the {MAX_EVENT_BYTES}-byte limit", ("<value>",)
        )
    try:
        event = AttemptGraded.model_validate_json(raw)
    except ValidationError as err:
        raise invalid_event_from(err) from err
    missing = [name for name in _REQUIRED_ON_WIRE if name not in event.model_fields_set]
    if missing:
        raise InvalidEventError(
            "; ".join(f"{name}: Field required" for name in missing), tuple(missing)
        )
    return event


def invalid_event_from(err: ValidationError) -> InvalidEventError:
    """Map pydantic's error list to one ``InvalidEventError`` with dotted field paths."""
    fields: list[str] = []
    reasons: list[str] = []
    for item in err.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "<value>"
        fields.append(path)
        reasons.append(f"{path}: {item['msg']}")
    return InvalidEventError("; ".join(reasons), tuple(dict.fromkeys(fields)))
