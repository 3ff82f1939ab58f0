"""Liveness and readiness probes (no auth: used by compose and load balancers)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.api.deps import RuntimeDep
from app.errors import Unavailable
from app.schemas.common import errors

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    status: str = Field(examples=["ready"])
    database: str = Field(examples=["sqlite"])
    job_backend: str = Field(examples=["local"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is up (answered on the event loop: never queued behind work in the threadpool)."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses=errors(503))
def ready(runtime: RuntimeDep) -> Ready:
    """The database and the job backend are reachable."""
    problems = {}
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        problems["database"] = str(exc).splitlines()[0]
    try:
        runtime.job_queue.check()
    except Exception as exc:
        problems["job_backend"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if problems:
        raise Unavailable("not ready: " + "; ".join(f"{k}: {v}" for k, v in problems.items()), details=problems)
    return Ready(status="ready", database=runtime.engine.dialect.name, job_backend=runtime.job_queue.name)
