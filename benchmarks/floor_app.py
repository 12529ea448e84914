"""The floor for ``GET /api/v1/progress``: the least any server can do for that read here.

A bare Starlette app on uvicorn (uvloop, httptools, one process) that verifies the same bearer
token with the same cached verifier and makes the same one Redis round trip (revocation, rate
limit, the student's state and its partition's checkpoint), then answers the state's JSON.
No FastAPI, no validation, no Serve, no proxy. Usage: ``python -m benchmarks.floor_app PORT``.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors import redis_store
from learnflow import keys
from learnflow.partitioning import partition_for_student
from learnflow.settings import Settings
from serve.auth import AuthError, TokenVerifier
from serve.limits import RequestGuard


def build(settings: Settings) -> Starlette:
    verifier = TokenVerifier(settings.auth)
    client = redis_store.connect(settings.redis, max_connections=64)  # as the API
    guard = RequestGuard(client, settings.serve.rate_limit_per_minute)
    topic, partitions = settings.kafka.events_topic, settings.kafka.partitions

    async def progress(request: Request) -> Response:
        try:
            principal = verifier.verify(request.headers["authorization"].removeprefix("Bearer "))
        except (AuthError, KeyError):
            return JSONResponse({"detail": "unauthorized"}, status_code=401)
        student = principal.student_id
        reads = (
            keys.state(student),
            keys.partition_checkpoint(topic, partition_for_student(student, partitions)),
        )
        admission = await guard.admit(student, principal.jti, reads)
        if not admission.admitted:
            return JSONResponse({"detail": "refused"}, status_code=429)
        state, mark = admission.reads
        body = b'{"student_id": "%s", "state": %s, "partition_offset": %s}' % (
            student.encode(),
            state or b"null",
            mark or b"null",
        )
        return Response(body, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/api/v1/progress", progress), Route("/healthz", healthz)])


def main() -> None:
    uvicorn.run(
        build(Settings()),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
