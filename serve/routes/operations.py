"""Liveness and readiness, at the root and under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serve.deps import ServicesDep
from serve.wire import ErrorBody

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Says nothing about the backing services."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: 200 when Kafka, Redis and PostgreSQL answer, else 503 naming what is down."""
    checks = await services.readiness.check()
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
