"""The HTTP API as a plain FastAPI app: the same app runs under Ray Serve and under uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from learnflow import __version__
from learnflow.settings import Settings
from serve.readiness import Readiness


def create_api(settings: Settings) -> FastAPI:
    """Build the app; its lifespan opens and closes the backing clients."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.readiness = Readiness(settings)
        try:
            yield
        finally:
            await app.state.readiness.close()

    api = FastAPI(
        title="LearnFlow",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )

    @api.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Says nothing about the backing services."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: 200 when Kafka, Redis and PostgreSQL answer, else 503 naming what is down."""
        checks = await request.app.state.readiness.check()
        down = [check.name for check in checks if not check.ok]
        body = {
            "status": "ready" if not down else "unavailable",
            "down": down,
            "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
        }
        if down:
            body["reason"] = f"not ready: {', '.join(down)} unreachable"
        return JSONResponse(body, status_code=503 if down else 200)

    return api
