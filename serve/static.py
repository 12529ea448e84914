"""The built web editor, served as a browser should get it.

- Hashed assets (``/assets/*``: their names change with their content) go out precompressed,
  brotli or gzip as the request accepts (``npm run build`` writes ``.br`` and ``.gz`` beside
  each), with ``Cache-Control: public, max-age=31536000, immutable``: a reload fetches none.
- ``index.html`` (and every other path) says ``no-cache``: the browser revalidates it each time,
  so a new build is picked up at once.
"""

from __future__ import annotations

import mimetypes
import os
from typing import Final

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "no-cache"
_ENCODINGS: Final = (("br", ".br"), ("gzip", ".gz"))


class WebEditorFiles(StaticFiles):
    """``StaticFiles`` with precompressed hashed assets and the caching rules above."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.startswith("assets/") and scope["method"] in ("GET", "HEAD"):
            compressed = self._compressed(path, Headers(scope=scope))
            if compressed is not None:
                return compressed
        response = await super().get_response(path, scope)
        immutable = path.startswith("assets/") and response.status_code == 200
        response.headers["Cache-Control"] = IMMUTABLE if immutable else REVALIDATE
        return response

    def _compressed(self, path: str, headers: Headers) -> Response | None:
        accepted = {
            token.split(";")[0].strip() for token in headers.get("accept-encoding", "").split(",")
        }
        for encoding, suffix in _ENCODINGS:
            if encoding not in accepted:
                continue
            full, stat = self.lookup_path(path + suffix)
            if stat is None or not os.path.isfile(full):
                continue
            media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
            return FileResponse(
                full,
                stat_result=stat,
                media_type=media_type,
                headers={
                    "Content-Encoding": encoding,
                    "Vary": "Accept-Encoding",
                    "Cache-Control": IMMUTABLE,
                },
            )
        return None
