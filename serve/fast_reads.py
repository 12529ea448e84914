"""``GET /api/v1/progress`` without FastAPI's routing, dependency solving and response models.

Progress is the read every student's page makes every few seconds. Profiled on a replica at 600
reads/s, route matching, dependency solving, two response-model validations and the middleware
layers of FastAPI cost several times the read itself (one Redis round trip and a JSON dump). This
ASGI middleware answers that one path directly: the same checks (``serve.access.admit``), the
same answer (``Services.progress``) and the same errors (the app's own exception handlers) as
the documented route in ``serve/routes/progress.py``, which stays for OpenAPI and takes every
request this path does not (a query it would refuse, for instance, so the route's 422 explains
it).
"""

from __future__ import annotations

import math
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from serve.access import admit

PATH: Final = "/api/v1/progress"
_JSON: Final = [(b"content-type", b"application/json")]


class ProgressReads:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        query = _query(scope.get("query_string", b""))
        if query is None:
            await self.app(scope, receive, send)
            return
        min_offset, timeout_s = query
        api = scope["app"]
        services = api.state.services
        try:
            access = await admit(
                services, _bearer(scope["headers"]), "progress:read", services.progress_keys
            )
            view = await services.progress(
                access.principal.student_id,
                access.reads,
                min_offset,
                timeout_s or services.settings.serve.progress_timeout_s,
            )
        except Exception as err:
            handler = _handler_for(api.exception_handlers, err)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), err)
            await response(scope, receive, send)
            return
        body = orjson.dumps(view)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials:
                return credentials.strip()
            return None
    return None


def _query(raw: bytes) -> tuple[int | None, float | None] | None:
    """``(min_offset, timeout_s)`` when the query is one the route accepts as is; None for
    anything else (the route then answers, with its validation message if it refuses)."""
    min_offset: int | None = None
    timeout_s: float | None = None
    if not raw:
        return None, None
    for pair in raw.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == b"min_offset" and min_offset is None and value.isdigit():
            min_offset = int(value)
        elif name == b"timeout_s" and timeout_s is None:
            try:
                timeout_s = float(value)
            except ValueError:
                return None
            if not (math.isfinite(timeout_s) and 0 < timeout_s <= 10):
                return None
        else:
            return None
    return min_offset, timeout_s


def _handler_for(handlers: dict[Any, Any], err: Exception) -> Any:
    for kind in type(err).__mro__:
        if kind in handlers:
            return handlers[kind]
    return None
