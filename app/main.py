"""The FastAPI application: ``create_app(settings)`` and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from app.api import api_router
from app.api.query_params import reject_unknown_query_params
from app.api.health import router as health_router
from app.errors import install_error_handlers
from app.job_backends import make_job_queue
from app.middleware import install_middleware
from app.services import jobs as jobs_service
from app.ui import install_ui
from infra import data_lock
from infra.orphans import remove_orphans
from infra.runtime import Runtime
from infra.settings import Settings

log = logging.getLogger("blockzoo.api")

DESCRIPTION = """\
Score neural architectures on demand with **parameter remapping and few-batch block
distillation**: import a dataset, build a block zoo once, then ask for the proxy accuracy,
MACs and parameters of any architecture of the space.

Authenticate with `Authorization: Bearer <api key>` (create one with `blockzoo create-key`).
Long work runs as jobs: poll `GET /v1/jobs/{id}` or follow its server-sent events at
`GET /v1/jobs/{id}/events` (phase, progress, ETA). Every error is
`{"error": {"code": "...", "message": "..."}}`.
"""

TAGS = [
    {"name": "spaces", "description": "Search-space presets and their architectures."},
    {"name": "cost", "description": "Analytic MACs and parameters, no zoo needed."},
    {"name": "datasets",
     "description": "Built-in datasets and uploads (NPZ, IDX, ImageFolder zip/tar.gz, CIFAR binary)."},
    {"name": "zoos", "description": "Block zoos: a trained reference and its distilled candidate blocks."},
    {"name": "scores", "description": "Proxy accuracy of architectures, distilling missing blocks on demand."},
    {"name": "searches", "description": "Best architectures under a budget."},
    {"name": "latency", "description": "Latency tables measured on the target device, for latency budgets."},
    {"name": "finetunes", "description": "Train a picked architecture from its zoo weights and download it."},
    {"name": "jobs", "description": "Background work: state, phase, progress and ETA, live events, cancel."},
    {"name": "keys", "description": "Your API keys: list, create another, revoke."},
    {"name": "links", "description": "Signed, expiring links that open plots and weights in a browser."},
    {"name": "health", "description": "Probes."},
]


def _operation_id(route: APIRoute) -> str:
    return route.name  # readable, unique: list_zoos, create_zoo, score_architectures, ...


def _install_openapi(app: FastAPI) -> None:
    """FastAPI documents its own 422 body; ours is the common error shape, so say that instead."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            ours = {"$ref": "#/components/schemas/ErrorResponse"}
            for item in spec.get("paths", {}).values():
                for op in item.values():
                    if len(op.get("tags", [])) > 1:  # one section per operation: the route's own tag
                        op["tags"] = op["tags"][-1:]
                    response = op.get("responses", {}).get("422")
                    if response:
                        response["description"] = ("Invalid request: a body field, a query parameter or an "
                                                   "architecture (the message names it).")
                        response["content"] = {"application/json": {"schema": ours}}
                    if "requestBody" in op:  # every body is capped (app.middleware.body_limit)
                        op["responses"].setdefault("413", {
                            "description": "Request body larger than the server's limit (max_json_body_bytes; "
                                           "uploads: max_upload_bytes).",
                            "content": {"application/json": {"schema": ours}}})
            schemas = spec.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        local = settings.job_backend == "local"
        if local:  # this process runs the folder's jobs: one such server per data folder
            data_lock.acquire(settings.data_dir, host=settings.host, port=settings.port)
        runtime = Runtime(settings)
        remove_orphans(settings.data_dir, settings.orphan_file_age_s)  # leftovers of killed uploads and writes
        if settings.auto_migrate:
            runtime.migrate()
        runtime.attach_job_queue(make_job_queue(runtime))
        app.state.runtime = runtime
        if settings.job_backend == "local":
            # This process is the only runner: whatever a previous process left active resumes.
            with runtime.session_factory.begin() as session:
                recovered = jobs_service.recover_local_jobs(session)
            for job_id in recovered:
                runtime.job_queue.enqueue(job_id)
        reaper = jobs_service.start_reaper(runtime)  # celery: jobs whose worker died come back
        log.info("BlockZoo API ready (database %s, jobs %s, data %s)",
                 runtime.engine.dialect.name, settings.job_backend, settings.data_dir)
        try:
            yield
        finally:
            if reaper is not None:
                reaper.stop()
            runtime.close()
            if local:
                data_lock.release(settings.data_dir)

    from blockzoo import __version__

    app = FastAPI(
        title="BlockZoo",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served offline by app.ui (install_ui below)
        generate_unique_id_function=_operation_id,
        dependencies=[Depends(reject_unknown_query_params)],  # every API route: an unknown ?param is a 422
    )
    install_error_handlers(app)
    install_middleware(app, settings)  # body cap, URL hygiene, security headers (docs/reliability.md)
    app.include_router(health_router)
    app.include_router(api_router)
    install_ui(app)
    _install_openapi(app)
    return app
