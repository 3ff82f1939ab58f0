"""The FastAPI application: ``create_app(settings)`` and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api import api_router
from app.api.health import router as health_router
from app.errors import install_error_handlers
from app.job_backends import make_job_queue
from app.services import jobs as jobs_service
from app.ui import install_ui
from infra.runtime import Runtime
from infra.settings import Settings

log = logging.getLogger("blockzoo.api")

DESCRIPTION = """\
Score neural architectures on demand with **parameter remapping and few-batch block
distillation**: import a dataset, build a block zoo once, then ask for the proxy accuracy,
MACs and parameters of any architecture of the space.

Authenticate with `Authorization: Bearer <api key>` (create one with `blockzoo create-key`).
Long work runs as jobs: poll `GET /v1/jobs/{id}`. Every error is
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
    {"name": "finetunes", "description": "Train a picked architecture from its zoo weights and download it."},
    {"name": "jobs", "description": "Background work: state, progress, cancel."},
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
                    response = op.get("responses", {}).get("422")
                    if response:
                        response["description"] = "Invalid request body or architecture (the message names the stage)."
                        response["content"] = {"application/json": {"schema": ours}}
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
        runtime = Runtime(settings)
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
        log.info("BlockZoo API ready (database %s, jobs %s, data %s)",
                 runtime.engine.dialect.name, settings.job_backend, settings.data_dir)
        try:
            yield
        finally:
            runtime.close()

    from blockzoo import __version__

    app = FastAPI(
        title="BlockZoo",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served offline by app.ui (install_ui below)
        generate_unique_id_function=_operation_id,
    )
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(api_router)
    install_ui(app)
    _install_openapi(app)
    return app
