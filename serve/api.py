"""The HTTP API as a plain FastAPI app: the same app runs under Ray Serve and under uvicorn.

Versioned under ``/api/v1``; OpenAPI at ``/openapi.json``. Every error is JSON
``{"detail": <reason>}`` with a 4xx status for anything the client can fix. The routes live in
``serve/routes/`` (one router per resource), their bodies in ``serve/wire.py``, their
dependencies in ``serve/deps.py``; this module composes them.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ingest.exceptions import DeliveryError
from learnflow import __version__
from learnflow.settings import Settings
from serve.auth import AuthError
from serve.exceptions import (
    GraderBusyError,
    IdempotencyConflictError,
    NotFoundError,
    OffsetBeyondEndError,
    RateLimitedError,
)
from serve.fast_reads import ProgressReads
from serve.grading import catalog
from serve.grading.sandbox import SandboxUnavailableError
from serve.request_size import RequestSizeLimit
from serve.routes import attempts, dev, exercises, operations, progress
from serve.services import Grading, LocalGrading, Services
from serve.static import WebEditorFiles
from serve.wire import ERRORS

logger = logging.getLogger(__name__)


def create_api(settings: Settings, grading: Grading | None = None) -> FastAPI:
    """Build the app; its lifespan opens and closes the backing clients."""

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
    api.state.exercises = catalog.load()
    _install_error_handlers(api)
    api.add_middleware(ProgressReads)
    api.add_middleware(RequestSizeLimit)

    api.include_router(operations.router)
    v1 = APIRouter(prefix="/api/v1", responses=ERRORS)
    v1.include_router(operations.router)
    v1.include_router(exercises.router)
    v1.include_router(attempts.router)
    v1.include_router(progress.router)
    if settings.auth.dev_tokens:
        v1.include_router(dev.router)
    api.include_router(v1)
    _mount_frontend(api, settings.serve.frontend_dir)
    return api


def _fail(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": reason}, status_code=status, headers=headers)


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
        return _fail(503, str(err), {"Retry-After": str(err.retry_after_s)})

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
