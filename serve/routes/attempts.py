"""Submitting an attempt (graded in the sandbox, recorded as an event) and reading past ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import AfterValidator

from learnflow.events import AttemptGraded, attempt_event_id
from serve.deps import Catalog, Reader, ServicesDep, Submitter
from serve.exceptions import NotFoundError
from serve.wire import AttemptHistory, AttemptRequest, AttemptResponse, AttemptSummary

router = APIRouter(tags=["attempts"])


def _not_nil(key: uuid.UUID) -> uuid.UUID:
    if key.int == 0:
        raise ValueError("the nil UUID is not an idempotency key: send a fresh random UUID")
    return key


IdempotencyKey = Annotated[
    uuid.UUID,
    Header(
        description="A fresh random UUID per submit (not the nil UUID); a retry with the "
        "same key returns the first answer. The attempt's event_id is derived from it "
        "and the student."
    ),
    AfterValidator(_not_nil),
]


@router.post(
    "/attempts",
    status_code=201,
    responses={200: {"model": AttemptResponse, "description": "a retried submit"}},
)
async def submit(
    body: AttemptRequest,
    response: Response,
    principal: Submitter,
    services: ServicesDep,
    exercises: Catalog,
    idempotency_key: IdempotencyKey,
) -> AttemptResponse:
    """Grade the code in the sandbox, record the attempt, return per-test results and the
    event's partition and offset (for ``GET /progress?min_offset=``)."""
    key = idempotency_key
    exercise = exercises.get(body.exercise_id)
    if exercise is None:
        raise NotFoundError(f"no exercise {body.exercise_id!r}")
    fingerprint = services.idempotency.fingerprint(body.model_dump())
    first = await services.idempotency.claim(principal.student_id, str(key), fingerprint)
    if first is not None:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
        return AttemptResponse.model_validate(first)
    try:
        async with services.submits.admit():
            grade = await services.grading.grade(exercise, body.code)
    except BaseException:
        await services.idempotency.release(principal.student_id, str(key))
        raise
    event = AttemptGraded(
        event_id=attempt_event_id(principal.student_id, key),
        student_id=principal.student_id,
        exercise_id=exercise.id,
        components=exercise.components,
        passed=grade["passed"],
        score=grade["score"],
        tests_total=grade["tests_total"],
        tests_passed=grade["tests_passed"],
        duration_ms=grade["duration_ms"],
        submitted_at=datetime.now(UTC),
    )
    # From here an event may exist: the claim stays (for as long as an answer would), so no
    # retry can grade and send this key again.
    delivery = await services.producer.publish(event, timeout_s=10.0)
    answer = AttemptResponse.model_validate(
        {
            **grade,
            "exercise_id": exercise.id,
            "event": {
                "event_id": str(event.event_id),
                "topic": delivery.topic,
                "partition": delivery.partition,
                "offset": delivery.offset,
            },
        }
    )
    await services.idempotency.store(
        principal.student_id, str(key), fingerprint, answer.model_dump(mode="json")
    )
    return answer


@router.get("/attempts")
async def attempt_history(
    principal: Reader,
    services: ServicesDep,
    exercise_id: Annotated[str, Query(min_length=1, max_length=64)],
) -> AttemptHistory:
    """The caller's latest attempts at one exercise, newest first."""
    found = await services.attempts(principal.student_id, exercise_id)
    return AttemptHistory(
        exercise_id=exercise_id,
        attempts=[AttemptSummary.model_validate(item) for item in found],
    )
