"""What a browser gets from the API process: the dashboard, offline API docs, dataset previews.

Everything is served by the API itself from files installed with the project: no CDN, no
separate web server, no network at run time, no build step (docs/ui.md).
"""

from __future__ import annotations

from fastapi import FastAPI

from app.ui.api_docs import install_api_docs
from app.ui.dashboard import install_dashboard
from app.ui.previews_api import router as previews_router


def install_ui(app: FastAPI) -> None:
    """Mount the dashboard (``/``, ``/ui``), ``/docs`` and ``/redoc``, and the preview endpoints."""
    app.include_router(previews_router, prefix="/v1")
    install_api_docs(app)
    install_dashboard(app)
