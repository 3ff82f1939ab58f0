"""Request bodies are capped: past ``max_json_body_bytes`` a request is a 413 before it is parsed.

JSON bodies are small (the largest, 10,000 architectures to cost, is a few hundred kB), so the
cap stops a client from making the server read and parse hundreds of megabytes. A request whose
body is read under its own cap (an upload: ``app.services.uploads``) is marked with
:func:`mark_streamed` before its first read, or its route with :func:`streams_its_body`, and left
alone. A declared ``Content-Length`` past the cap is refused
before a byte is read; a body without one is counted as it arrives. The 413 is raised where the
route reads its body (the route is known by then) and answered by the error handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

F = TypeVar("F", bound=Callable[..., Any])
_STREAMED = "blockzoo.streamed_body"


def mark_streamed(scope: Scope) -> None:
    """Say, before reading it, that this request's body is read under its own size cap."""
    scope[_STREAMED] = True


def streams_its_body(endpoint: F) -> F:
    """Mark a route that reads its body itself under its own size cap (the same as `mark_streamed`)."""
    endpoint.streams_its_body = True  # type: ignore[attr-defined]
    return endpoint


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes HTTP exceptions through to the error handlers."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return (f"request body larger than {self.max_bytes} bytes; JSON requests are capped (the server's "
                "max_json_body_bytes): send fewer items per request; files go to the upload endpoints")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            exempt = scope.get(_STREAMED) or getattr(scope.get("endpoint"), "streams_its_body", False)
            if not exempt and declared is not None and declared > self.max_bytes:
                raise _BodyTooLarge(self._message())  # before a byte is read
            message = await receive()
            if message["type"] == "http.request" and not exempt:
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self._message())
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
