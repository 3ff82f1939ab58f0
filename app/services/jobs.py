"""Jobs: submit (enqueued after commit), read, list, cancel, wait, and recovery at start."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict, NotFound
from infra.db.base import new_id
from infra.db.models import Job, Owner
from infra.job_queue import enqueue_after_commit
from infra.repositories import jobs as jobs_repo
from infra.repositories import zoos as zoos_repo
from infra.repositories.common import get_owned, paginate


def submit(session: Session, *, owner_id: str, kind: str, payload: dict[str, Any], zoo_id: str | None = None) -> Job:
    """Add a queued job; it is handed to the job backend only once the session commits."""
    job = Job(
        id=new_id("job"), owner_id=owner_id, zoo_id=zoo_id, kind=kind, payload=payload, state="queued",
        progress=0.0, message="queued", cancel_requested=False, attempts=0,
    )
    jobs_repo.add(session, job)
    enqueue_after_commit(session, job.id)
    return job


def get(session: Session, owner: Owner, job_id: str) -> Job:
    job = get_owned(session, Job, owner.id, job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}; GET /v1/jobs lists yours")
    return job


def list_page(session: Session, owner: Owner, limit: int, offset: int, kind: str | None = None,
              zoo_id: str | None = None) -> tuple[list[Job], int]:
    return paginate(session, jobs_repo.list_for_owner(owner.id, kind, zoo_id), limit, offset)


def cancel(session: Session, owner: Owner, job_id: str) -> Job:
    job = get(session, owner, job_id)
    if job.state in jobs_repo.TERMINAL:
        raise Conflict(f"job {job_id!r} already finished ({job.state}); nothing to cancel")
    if jobs_repo.cancel_if_queued(session, job_id):
        if job.kind == "build_zoo" and job.zoo_id:
            # Cancelled before it started: no build will come, so the zoo is failed now (as the
            # runner's failure hook does for a build cancelled while running).
            zoos_repo.mark_build_failed(session, job.zoo_id, "the build job was cancelled before it started")
    else:
        # Running: the runner checks this flag between steps and stops at a safe point.
        jobs_repo.request_cancel(session, job_id)
    return jobs_repo.get(session, job_id)  # type: ignore[return-value]


def wait(factory: sessionmaker[Session], job_id: str, timeout_s: float) -> Job:
    """Poll the job row until it finishes or ``timeout_s`` passes; the same state a client polls."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        with factory() as session:
            job = jobs_repo.get(session, job_id)
            assert job is not None
            if job.state in jobs_repo.TERMINAL or time.monotonic() >= deadline:
                return job
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)


def recover_local_jobs(session: Session) -> list[str]:
    """At start of the local backend: jobs of a process that died are re-queued (jobs resume)."""
    ids = jobs_repo.active_ids(session)
    jobs_repo.requeue(session, ids, "re-queued: the process that ran it stopped; resuming")
    return ids
