"""ASGI middleware of the API: request guards and response headers (docs/reliability.md).

``install_middleware(app, settings)`` adds, outermost first:

- ``security_headers``: nosniff, frame denial, a CSP for API responses, ``no-store`` on ``/v1``;
- ``liveness``: ``GET /health`` answered before routing (never queued behind other requests);
- ``clean_requests``: control characters or oversized paths and query strings are a 422;
- ``body_limit``: request bodies past ``max_json_body_bytes`` are a 413 (uploads have their own cap).
"""

from __future__ import annotations

from fastapi import FastAPI

from app.middleware.body_limit import BodyLimitMiddleware, mark_streamed, streams_its_body
from app.middleware.clean_requests import CleanRequestsMiddleware
from app.middleware.liveness import LivenessMiddleware
from app.middleware.security_headers import SecurityHeadersMiddleware
from infra.settings import Settings

__all__ = ["install_middleware", "mark_streamed", "streams_its_body"]


def install_middleware(app: FastAPI, settings: Settings) -> None:
    # add_middleware puts each new one outside the previous: the last added runs first.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_json_body_bytes)
    app.add_middleware(CleanRequestsMiddleware)
    app.add_middleware(LivenessMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
