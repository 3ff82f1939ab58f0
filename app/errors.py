"""One error shape for every failure: ``{"error": {"code", "message", "details"?}}``.

Services raise :class:`ServiceError` subclasses with a message a person can act on (what was
wrong and what is accepted); the handlers below turn them, FastAPI's validation errors and
Starlette's HTTP errors into that shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from infra.db.errors import RETRY_AFTER_S, first_line, is_unavailable

log = logging.getLogger("blockzoo.api")


class ServiceError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers


class InvalidInput(ServiceError):
    status_code, code = 400, "invalid_input"


class Unauthorized(ServiceError):
    status_code, code = 401, "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(ServiceError):
    status_code, code = 404, "not_found"


class Conflict(ServiceError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(ServiceError):
    status_code, code = 413, "payload_too_large"


class InvalidArchitecture(ServiceError):
    status_code, code = 422, "invalid_architecture"


class InvalidSpace(ServiceError):
    status_code, code = 422, "invalid_space"


class InvalidParameter(ServiceError):
    """A query parameter with a value outside the accepted ones (the message lists them)."""

    status_code, code = 422, "validation_error"


class InvalidRecipe(ServiceError):
    """A recipe that cannot work with the request's data (e.g. more KD images than the dataset has)."""

    status_code, code = 422, "invalid_recipe"


class Unavailable(ServiceError):
    status_code, code = 503, "unavailable"


class RateLimitExceeded(ServiceError):
    """Too many expensive requests from one API key; ``Retry-After`` says when the next is accepted."""

    status_code, code = 429, "rate_limited"


class QuotaExceeded(ServiceError):
    """An owner has as many jobs running or queued as the server allows (the message says which)."""

    status_code, code = 429, "quota_exceeded"


class LimitExceeded(ServiceError):
    """A request asks for more work than the server's configured limit allows (the message names it)."""

    status_code, code = 422, "limit_exceeded"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "too_many_requests",
}


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "request"


async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=exc.status_code, headers=exc.headers
    )


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [f"{_location(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
    details = [{"field": _location(tuple(e["loc"])), "message": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse(
        error_body("validation_error", "invalid request: " + "; ".join(problems), details), status_code=422
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no endpoint {request.method} {request.url.path}; see /docs for the API"
    if exc.status_code == 400 and message == "There was an error parsing the body":
        # FastAPI's answer to a body that is not even text (bytes that are not UTF-8); any other
        # malformed JSON is already a 422, so this one is too.
        what = "not valid JSON (the body must be UTF-8 JSON text)"
        return JSONResponse(error_body("validation_error", f"invalid request: body: {what}",
                                       [{"field": "body", "message": what, "type": "json_invalid"}]), status_code=422)
    if exc.status_code == 405:
        allowed = _allowed_methods(request, (headers or {}).get("Allow", ""))
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {', '.join(allowed)}"
    return JSONResponse(
        error_body(_HTTP_CODES.get(exc.status_code, "error"), message),
        status_code=exc.status_code,
        headers=headers,
    )


def _allowed_methods(request: Request, fallback: str) -> list[str]:
    """Every method the API documents at this path (Starlette's 405 names only the first route's)."""
    import re

    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods.update(m.upper() for m in operations if m in ("get", "put", "post", "delete", "patch"))
    if not methods:  # a page outside the API document
        methods = {m.strip() for m in fallback.split(",") if m.strip()}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def unavailable_response(message: str) -> JSONResponse:
    """503 with ``Retry-After``: a dependency (database, job backend) is away; the request may be repeated."""
    return JSONResponse(error_body("unavailable", message), status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER_S)})


async def _database_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
    if not is_unavailable(exc):  # a bug or a value the database refused: not the client's to retry
        return await _unexpected_error(request, exc)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, first_line(exc))
    return unavailable_response(f"the database is unavailable ({first_line(exc)}); nothing was changed; "
                                f"retry in {RETRY_AFTER_S} s")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body("internal_error", "internal server error; the server log has the details"), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(SQLAlchemyError, _database_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
