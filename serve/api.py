"""The HTTP API as a plain FastAPI app: the same app runs under Ray Serve and under uvicorn.

Versioned under ``/api/v1``; OpenAPI at ``/openapi.json``. Every error is JSON
``{"detail": <reason>}`` with a 4xx status for anything the client can fix.
"""

from __future__ import annotations

import logging
import mimetypes
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, Field

from ingest.exceptions import DeliveryError
from learnflow import __version__, keyring
from learnflow.events import AttemptGraded, attempt_event_id
from learnflow.exceptions import LearnFlowError
from learnflow.settings import Settings
from learnflow.students import StudentId
from serve.access import RateLimitedError, admit
from serve.auth import AuthError, Principal
from serve.fast_reads import ProgressReads
from serve.grading import catalog
from serve.grading.sandbox import SandboxUnavailableError
from serve.limits import IdempotencyConflictError
from serve.request_size import RequestSizeLimit
from serve.services import (
    GraderBusyError,
    Grading,
    LocalGrading,
    OffsetBeyondEndError,
    Services,
)
from serve.static import WebEditorFiles

logger = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="RS256 JWT from `learnflow token`")


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
    applied_offset: int
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


def _fail(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": reason}, status_code=status, headers=headers)


def authorized(
    permission: str, reads: Callable[[Services], Callable[[str], Sequence[str]]] | None = None
) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the verified, permitted, not revoked, not rate-limited caller.

    ``reads`` names Redis keys (for the caller's student id) to read in the same round trip as
    the revocation and rate-limit checks; their values land in ``request.state.reads``.
    """

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        services: Services = request.app.state.services
        token = credentials.credentials if credentials is not None else None
        access = await admit(services, token, permission, reads(services) if reads else None)
        request.state.rate_remaining = access.remaining
        request.state.reads = access.reads
        return access.principal

    dependency.__name__ = f"requires_{permission.replace(':', '_')}"
    return dependency


Submitter = Annotated[Principal, Depends(authorized("exercise:submit"))]
Reader = Annotated[Principal, Depends(authorized("progress:read"))]
ProgressReader = Annotated[
    Principal, Depends(authorized("progress:read", reads=lambda s: s.progress_keys))
]


def create_api(settings: Settings, grading: Grading | None = None) -> FastAPI:
    """Build the app; its lifespan opens and closes the backing clients."""
    exercises = catalog.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services(settings, grading or LocalGrading(settings))
        try:
            yield
        finally:
            await app.state.services.close()

    api = FastAPI(
        title="LearnFlow",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        description="Programming exercises, sandboxed grading and live mastery per skill.",
    )
    _install_error_handlers(api)
    api.add_middleware(ProgressReads)
    api.add_middleware(RequestSizeLimit)
    v1 = APIRouter(prefix="/api/v1", responses=ERRORS)

    @api.get("/healthz", tags=["operations"])
    @v1.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Says nothing about the backing services."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["operations"], responses={503: {"model": ErrorBody}})
    @v1.get("/readyz", tags=["operations"], responses={503: {"model": ErrorBody}})
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: 200 when Kafka, Redis and PostgreSQL answer, else 503 naming what is down."""
        checks = await request.app.state.services.readiness.check()
        down = [check.name for check in checks if not check.ok]
        body = {
            "status": "ready" if not down else "unavailable",
            "down": down,
            "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
        }
        if down:
            body["reason"] = f"not ready: {', '.join(down)} unreachable"
            body["detail"] = body["reason"]
        return JSONResponse(body, status_code=503 if down else 200)

    @v1.get("/exercises", tags=["exercises"])
    async def list_exercises() -> ExerciseList:
        """Every exercise: id, title, components, kind and how many hidden tests it has."""
        return ExerciseList(
            exercises=[ExerciseSummary.model_validate(e.public()) for e in exercises.values()]
        )

    @v1.get("/exercises/{exercise_id}", tags=["exercises"])
    async def get_exercise(exercise_id: str) -> ExerciseDetail:
        """Statement, starter code and components; never the hidden tests."""
        exercise = exercises.get(exercise_id)
        if exercise is None:
            raise NotFoundError(f"no exercise {exercise_id!r}")
        return ExerciseDetail.model_validate(exercise.public())

    @v1.post(
        "/attempts",
        tags=["attempts"],
        status_code=201,
        responses={200: {"model": AttemptResponse, "description": "a retried submit"}},
    )
    async def submit(
        body: AttemptRequest,
        request: Request,
        response: Response,
        principal: Submitter,
        idempotency_key: Annotated[
            uuid.UUID,
            Header(
                description="A fresh random UUID per submit (not the nil UUID); a retry with the "
                "same key returns the first answer. The attempt's event_id is derived from it "
                "and the student."
            ),
            AfterValidator(_not_nil),
        ],
    ) -> AttemptResponse:
        """Grade the code in the sandbox, record the attempt, return per-test results and the
        event's partition and offset (for ``GET /progress?min_offset=``)."""
        services: Services = request.app.state.services
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
        # From here an event may exist: the claim stays (for as long as an answer would), so
        # no retry can grade and send this key again.
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

    @v1.get("/attempts", tags=["attempts"])
    async def attempt_history(
        request: Request,
        principal: Reader,
        exercise_id: Annotated[str, Query(min_length=1, max_length=64)],
    ) -> AttemptHistory:
        """The caller's latest attempts at one exercise, newest first."""
        services: Services = request.app.state.services
        found = await services.attempts(principal.student_id, exercise_id)
        return AttemptHistory(
            exercise_id=exercise_id,
            attempts=[AttemptSummary.model_validate(item) for item in found],
        )

    @v1.get("/progress", tags=["progress"])
    async def progress(
        request: Request,
        principal: ProgressReader,
        min_offset: Annotated[
            int | None,
            Query(ge=0, description="Wait (bounded) until the attempt at this offset counts."),
        ] = None,
        timeout_s: Annotated[float | None, Query(gt=0, le=10)] = None,
    ) -> ProgressResponse:
        """Mastery and level per component, as checkpointed (Redis); with ``min_offset``, once
        that offset counts or the wait ends (``caught_up``)."""
        services: Services = request.app.state.services
        view = await services.progress(
            principal.student_id,
            request.state.reads,
            min_offset,
            timeout_s or settings.serve.progress_timeout_s,
        )
        return ProgressResponse.model_validate(view)

    @v1.get("/progress/history", tags=["progress"])
    async def progress_history(
        request: Request,
        principal: Reader,
        weeks: Annotated[int, Query(ge=1, le=520)] = 12,
    ) -> HistoryResponse:
        """Weekly mastery aggregates (attempts, correct, P(mastered) at week's end)."""
        services: Services = request.app.state.services
        rows = await services.weekly(principal.student_id, weeks)
        return HistoryResponse(
            student_id=principal.student_id,
            weeks=[WeekRow.model_validate(dict(row)) for row in rows],
        )

    if settings.auth.dev_tokens:

        @v1.post("/dev/token", tags=["development"])
        async def dev_token(body: DevTokenRequest, request: Request) -> TokenResponse:
            """Development only: a token for any student id (the web editor's login)."""
            ring = request.app.state.services.signing_ring()
            token, claims = keyring.mint(ring, settings.auth, body.student_id)
            return TokenResponse(token=token, student_id=body.student_id, expires_at=claims["exp"])

    api.include_router(v1)
    _mount_frontend(api, settings.serve.frontend_dir)
    return api


class NotFoundError(LearnFlowError):
    """No such resource (404)."""


def _not_nil(key: uuid.UUID) -> uuid.UUID:
    if key.int == 0:
        raise ValueError("the nil UUID is not an idempotency key: send a fresh random UUID")
    return key


def _install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(AuthError)
    async def auth_failed(request: Request, err: AuthError) -> JSONResponse:
        headers = None
        if err.status == 401:
            reason = err.reason.replace('"', "'")
            headers = {
                "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'
            }
        return _fail(err.status, err.reason, headers)

    @api.exception_handler(RateLimitedError)
    async def rate_limited(request: Request, err: RateLimitedError) -> JSONResponse:
        return _fail(
            429,
            f"rate limit of {request.app.state.services.settings.serve.rate_limit_per_minute} "
            f"requests per minute reached; retry in {err.retry_after_s} s",
            {"Retry-After": str(err.retry_after_s)},
        )

    @api.exception_handler(IdempotencyConflictError)
    async def conflict(request: Request, err: IdempotencyConflictError) -> JSONResponse:
        headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s else None
        return _fail(409, err.reason, headers)

    @api.exception_handler(OffsetBeyondEndError)
    async def beyond_end(request: Request, err: OffsetBeyondEndError) -> JSONResponse:
        return _fail(422, str(err))

    @api.exception_handler(NotFoundError)
    async def not_found(request: Request, err: NotFoundError) -> JSONResponse:
        return _fail(404, str(err))

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        return _fail(422, f"invalid request: {problems}")

    @api.exception_handler(GraderBusyError)
    async def grader_busy(request: Request, err: GraderBusyError) -> JSONResponse:
        return _fail(503, str(err), {"Retry-After": "1"})

    @api.exception_handler(SandboxUnavailableError)
    async def no_sandbox(request: Request, err: SandboxUnavailableError) -> JSONResponse:
        return _fail(503, f"grading unavailable: {err}", {"Retry-After": "30"})

    @api.exception_handler(DeliveryError)
    async def not_recorded(request: Request, err: DeliveryError) -> JSONResponse:
        return _fail(503, f"attempt graded but not recorded, retry with the same key: {err}")

    @api.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        # The API promises JSON errors everywhere, its own faults included.
        logger.exception("%s %s failed", request.method, request.url.path)
        return _fail(500, "internal error; it has been logged")


def _mount_frontend(api: FastAPI, directory: Path | None) -> None:
    mimetypes.add_type("application/wasm", ".wasm")  # whatever the host's mime.types says
    if directory is not None and (directory / "index.html").exists():
        api.mount("/", WebEditorFiles(directory=directory, html=True), name="frontend")
