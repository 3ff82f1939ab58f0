"""Headers every response carries, so that a browser never treats an API answer as a page.

- ``X-Content-Type-Options: nosniff``: the declared type is the type (no script from JSON);
- ``X-Frame-Options: DENY``: no page of this server in someone else's frame;
- ``Referrer-Policy: no-referrer``;
- ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`` on everything but HTML
  (the dashboard and the docs pages set their own);
- ``Cache-Control: no-store`` on ``/v1`` answers (scores, keys, weights are per owner), unless
  the route chose its own.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path", "").startswith("/v1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if not headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", API_CSP)
                if api:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
