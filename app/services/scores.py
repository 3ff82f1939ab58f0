"""Scores: answered from the cache when complete, else by a ``score`` job (waited on up to ``wait``).

The inline answer and the polled job carry the same body, because both are the job's result
built by :func:`infra.scores.result_body` from the cached score rows.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from blockzoo.space import unique
from sqlalchemy.orm import Session

from app.errors import ServiceError
from app.schemas.scores import ScoreRequest
from app.services import jobs as jobs_service
from app.services import latency_tables as latency_service
from app.services import spaces as spaces_service
from app.services import zoos as zoos_service
from infra.db.models import Job, Owner
from infra.repositories import zoos as zoos_repo
from infra.runtime import Runtime
from infra.scores import missing, result_body


class JobFailed(ServiceError):
    status_code, code = 500, "job_failed"


async def score(session: Session, runtime: Runtime, owner: Owner, zoo_id: str,
                body: ScoreRequest) -> tuple[int, dict[str, Any] | Job]:
    """(200, result body) or (202, the job still running).

    The request's database work runs in a worker thread; the wait for the job does not hold one
    (``jobs.wait_async``), so waiting clients never starve the rest of the API.
    """
    started = await anyio.to_thread.run_sync(start, session, runtime, owner, zoo_id, body)
    if not isinstance(started, Job):
        return 200, started
    job = await jobs_service.wait_async(runtime.session_factory, started.id,
                                        min(body.wait, runtime.settings.max_wait_s))
    return settle(job)


def start(session: Session, runtime: Runtime, owner: Owner, zoo_id: str, body: ScoreRequest) -> dict[str, Any] | Job:
    """The result body when every score is cached, else the committed ``score`` job computing them."""
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    space = zoos_repo.space_of(zoo)
    archs = spaces_service.parse_architectures(space, body.architectures)
    table_id = body.latency_table_id
    latency = latency_service.table_for_zoo(session, runtime, owner, table_id, zoo) if table_id else None
    metrics = sorted(set(body.metrics))
    ids = [a.id for a in unique(archs)]
    values = zoos_repo.scores(session, zoo.id, ids)
    if not missing(values, ids, metrics):
        return result_body(zoo, space, archs, metrics, values, None, latency, table_id)
    payload: dict[str, Any] = {"architectures": [a.id for a in archs], "metrics": metrics}
    if table_id:
        payload["latency_table_id"] = table_id
    job = jobs_service.submit(session, owner_id=owner.id, kind="score", zoo_id=zoo.id, payload=payload)
    session.commit()  # the request waits on the job: it must be enqueued (committed) first
    jobs_service.raise_if_not_enqueued(session)  # 503: the backend refused it, nothing will run it
    return job


def settle(job: Job) -> tuple[int, dict[str, Any] | Job]:
    """What a waited-on score job answers: (200, its result), (202, itself) or a failure."""
    if job.state == "succeeded":
        return 200, job.result  # type: ignore[return-value]
    if job.state in ("failed", "cancelled"):
        raise JobFailed(f"scoring job {job.id} {job.state}: {job.error or job.message}",
                        details={"job_id": job.id, "error": job.error})
    return 202, job
