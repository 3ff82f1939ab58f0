"""Paths and query strings are checked before routing: control characters, excess length or an
integer past 64 bits are a 422.

Every id, name, filter and page offset of the API that arrives in the URL reaches a database
query; PostgreSQL cannot even hold a NUL character, no id or filter needs a control character,
and no database takes an integer past 64 bits. One check here covers every route, present and
future, with the API's validation error shape (routes declare their own, tighter bounds too).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_body

MAX_PATH_CHARS = 2048
MAX_QUERY_BYTES = 8192
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_INT64 = 2**63 - 1


def _has_control_character(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def problem(scope: Scope) -> tuple[str, str] | None:
    """(where, what is wrong) for a path or query string the API refuses, else None."""
    path: str = scope.get("path", "")
    if len(path) > MAX_PATH_CHARS:
        return "path", f"longer than {MAX_PATH_CHARS} characters"
    if _has_control_character(path):
        return "path", "contains a control character (NUL, newline, ...)"
    raw: bytes = scope.get("query_string", b"")
    if len(raw) > MAX_QUERY_BYTES:
        return "query", f"query string longer than {MAX_QUERY_BYTES} bytes"
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return "query", "not valid UTF-8 once percent-decoded"
    for name, value in pairs:
        if _has_control_character(name) or _has_control_character(value):
            return name or "query", "contains a control character (NUL, newline, ...)"
        if _INTEGER.fullmatch(value) and abs(int(value)) > _INT64:
            return name, f"integer out of range (at most {_INT64})"
    return None


class CleanRequestsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = problem(scope)
            if found is not None:
                where, what = found
                body = error_body("validation_error", f"invalid request: {where}: {what}",
                                  [{"field": where, "message": what, "type": "value_error"}])
                await JSONResponse(body, status_code=422)(scope, receive, send)
                return
        await self.app(scope, receive, send)
