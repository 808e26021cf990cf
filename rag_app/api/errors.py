"""Error responses that never echo hostile input, and a body-size guard that answers before reading."""
from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response


async def validation_error(request: Request, exc: Exception) -> Response:
    """422 with each error's location and message. FastAPI's default echoes the offending input: a
    megabyte-long question back to the client, or a lone surrogate that cannot be encoded (a 500)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    # ensure_ascii: whatever a message quotes, the body is always encodable.
    body = json.dumps({"detail": errors})
    return Response(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


async def client_error(request: Request, exc: Exception) -> Response:
    """The service's refusals as HTTP: not found (or not yours) 404, not allowed 403, a bad value 422
    (a name already taken 409). The message is the service's own, written for the user."""
    if isinstance(exc, LookupError):
        code = status.HTTP_404_NOT_FOUND
    elif isinstance(exc, PermissionError):
        code = status.HTTP_403_FORBIDDEN
    elif "already exists" in str(exc):
        code = status.HTTP_409_CONFLICT
    else:
        code = status.HTTP_422_UNPROCESSABLE_CONTENT
    return JSONResponse({"detail": str(exc)}, status_code=code)


class DeclaredSizeLimit:
    """ASGI middleware: 413 for a POST to ``path`` (``*`` matches one path segment) whose
    Content-Length is over ``limit``."""

    def __init__(self, app: Any, path: str, limit: int, message: str) -> None:
        self.app, self.limit, self.message = app, limit, message
        self.path = re.compile("^" + re.escape(path).replace(r"\*", "[^/]+") + "$")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and self.path.match(scope["path"]):
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limit:
                response = JSONResponse({"detail": self.message}, status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
