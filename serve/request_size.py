"""Refuses over-long request lines and headers with a JSON 414 or 431, before any routing.

HAProxy in front accepts requests up to its buffer (``tune.bufsize``, raised by
``haproxy-loopback`` so that these limits are below it); past its buffer HAProxy 2.6 answers
with its built-in HTML page, which its ``errorfile`` settings do not replace for errors its HTTP
parser finds.
"""

from __future__ import annotations

import json
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

MAX_URL_BYTES: Final = 8 * 1024
MAX_HEADER_BYTES: Final = 16 * 1024


class RequestSizeLimit:
    """ASGI middleware: 414 for a path and query over ``MAX_URL_BYTES``, 431 for headers over
    ``MAX_HEADER_BYTES`` in all; both with ``{"detail": …}``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            url = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            headers = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if url > MAX_URL_BYTES:
                await _refuse(send, 414, f"URL too long: {url} bytes, at most {MAX_URL_BYTES}")
                return
            if headers > MAX_HEADER_BYTES:
                await _refuse(
                    send, 431, f"headers too long: {headers} bytes, at most {MAX_HEADER_BYTES}"
                )
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
