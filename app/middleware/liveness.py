"""``GET /health`` answered before routing: liveness never queues behind other requests.

Every API route runs its dependencies (the key check, the query-parameter check) in the
threadpool; when the threadpool is busy (many clients, a build in the same process), a
liveness probe routed like any request would wait its turn and a healthy server would look
dead. The answer is the route's own (``{"status": "ok"}``; the route stays in the API
document), given here without a thread, a dependency or the database.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


class LivenessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope.get("path") == "/health" and scope.get("method") in ("GET", "HEAD")
                and not scope.get("query_string")):
            await JSONResponse({"status": "ok"})(scope, receive, send)
            return
        await self.app(scope, receive, send)
