"""Jobs: poll state, phase, progress and ETA, follow them as server-sent events, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import OwnerDep, RuntimeDep, SessionDep
from app.errors import InvalidParameter, NotFound
from app.schemas.common import Page, PageLimit, PageOffset, errors
from app.schemas.jobs import JobOut
from app.services import job_events
from app.services import jobs as jobs_service

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[str, Path(examples=["job_8d2e41f0a7c3b9e15d60"])]


@router.get("", response_model=Page[JobOut], responses=errors(401, 422))
def list_jobs(
    owner: OwnerDep,
    session: SessionDep,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
    kind: Annotated[str | None, Query(description="Only jobs of this kind (build_zoo, score, export, search, "
                                      "finetune, ...); an unknown kind is a 422 listing the known ones.")] = None,
    zoo_id: str | None = None,
) -> Page[JobOut]:
    """Your jobs, newest first."""
    _check_kind(kind)
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


def _check_kind(kind: str | None) -> None:
    import worker.jobs  # noqa: F401  (registers the built-in kinds; imports no torch)
    from worker.registry import JOB_KINDS

    if kind is not None and kind not in JOB_KINDS:
        known = sorted(JOB_KINDS)
        raise InvalidParameter(f"kind: unknown job kind {kind!r}; known: {', '.join(known)}",
                               details=[{"field": "kind", "message": "unknown job kind", "allowed": known}])


EVENTS_EXAMPLE = (
    "retry: 2000\n\n"
    'event: job\nid: 1\ndata: {"id":"job_8d2e41f0a7c3b9e15d60","state":"running","progress":0.42,'
    '"message":"training: step 12/28 loss 1.734","phase":"training","eta_s":41.5,...}\n\n'
    ": heartbeat\n\n"
    'event: job\nid: 2\ndata: {"id":"job_8d2e41f0a7c3b9e15d60","state":"succeeded","progress":1.0,...}\n\n'
    'event: end\ndata: {"id":"job_8d2e41f0a7c3b9e15d60","state":"succeeded","progress":1.0,...}\n\n'
)


@router.get("/{job_id}/events", response_class=StreamingResponse, responses={
    200: {"description": "Server-sent events: `job` (the job's view, at once and on every change), "
                         "`: heartbeat` comments, then `end` (the final view) or `reconnect`.",
          "content": {"text/event-stream": {"schema": {"type": "string"}, "example": EVENTS_EXAMPLE}}},
    **errors(401, 404)})
async def follow_job(owner: OwnerDep, runtime: RuntimeDep, job_id: JobId) -> StreamingResponse:
    """Follow a job live: a `text/event-stream` of its state, progress, message, phase and ETA.

    An `event: job` carries the job's view (as `GET /v1/jobs/{id}`) at once and whenever it
    changes; a `: heartbeat` comment comes every 15 s without news; `event: end` carries the final
    view (succeeded, failed, cancelled) and closes the stream. A stream lasts at most an hour
    (`event: reconnect`, then open a new one). Example: `curl -N -H "Authorization: Bearer $KEY"
    $URL/v1/jobs/$JOB/events`.
    """
    factory = runtime.session_factory
    first = await run_in_threadpool(job_events.read_view, factory, owner.id, job_id)
    if first is None:
        raise NotFound(f"no job {job_id!r}; GET /v1/jobs lists yours")
    events = job_events.stream(factory, owner.id, job_id, first, poll_s=job_events.POLL_INTERVAL_S,
                               heartbeat_s=job_events.HEARTBEAT_INTERVAL_S, max_s=job_events.MAX_STREAM_S)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
