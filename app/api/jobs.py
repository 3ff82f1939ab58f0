"""Jobs: poll state and progress, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api.deps import OwnerDep, SessionDep
from app.schemas.common import Page, errors
from app.schemas.jobs import JobOut
from app.services import jobs as jobs_service

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[str, Path(examples=["job_8d2e41f0a7c3b9e15d60"])]


@router.get("", response_model=Page[JobOut], responses=errors(401))
def list_jobs(
    owner: OwnerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    kind: str | None = None,
    zoo_id: str | None = None,
) -> Page[JobOut]:
    """Your jobs, newest first."""
    items, total = jobs_service.list_page(session, owner, limit, offset, kind, zoo_id)
    return Page(items=[JobOut.model_validate(j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut, responses=errors(401, 404))
def get_job(owner: OwnerDep, session: SessionDep, job_id: JobId) -> JobOut:
    """A job's state (queued|running|succeeded|failed|cancelled), progress 0–1, message and error."""
    return JobOut.model_validate(jobs_service.get(session, owner, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=errors(401, 404, 409))
def cancel_job(owner: OwnerDep, session: SessionDep, job_id: JobId) -> JobOut:
    """Cancel a job: a queued one at once, a running one at its next safe point (finished work is kept)."""
    return JobOut.model_validate(jobs_service.cancel(session, owner, job_id))
