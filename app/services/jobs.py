"""Jobs: submit (enqueued after commit), read, cancel, wait, and recovery at start."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import new_id, utcnow
from app.db.models import Job, Owner, Zoo
from app.errors import Conflict, NotFound
from app.repositories import jobs as jobs_repo
from app.repositories.common import get_owned

log = logging.getLogger("blockzoo.jobs")

_PENDING = "blockzoo_jobs_to_enqueue"


def submit(session: Session, *, owner_id: str, kind: str, payload: dict[str, Any], zoo_id: str | None = None) -> Job:
    """Add a queued job; it is handed to the job backend only once the session commits."""
    job = Job(
        id=new_id("job"), owner_id=owner_id, zoo_id=zoo_id, kind=kind, payload=payload, state="queued",
        progress=0.0, message="queued", cancel_requested=False, attempts=0,
    )
    jobs_repo.add(session, job)
    session.info.setdefault(_PENDING, []).append(job.id)
    return job


def install_enqueue_after_commit(factory: sessionmaker[Session]) -> None:
    event.listen(factory, "after_commit", _enqueue_committed)
    event.listen(factory, "after_rollback", lambda session: session.info.pop(_PENDING, None))


def _enqueue_committed(session: Session) -> None:
    job_ids = session.info.pop(_PENDING, [])
    if not job_ids:
        return
    runtime = session.info["runtime"]
    for job_id in job_ids:
        try:
            runtime.job_queue.enqueue(job_id)
        except Exception as exc:  # the row exists but nobody will run it: say so on the job
            log.exception("could not enqueue job %s", job_id)
            with runtime.session_factory() as other:
                jobs_repo.set_fields(
                    other, job_id, state="failed", finished_at=utcnow(),
                    error=f"the job backend ({runtime.settings.job_backend}) could not be reached: {exc}",
                )
                other.commit()


def get(session: Session, owner: Owner, job_id: str) -> Job:
    job = get_owned(session, Job, owner.id, job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}; GET /v1/jobs lists yours")
    return job


def cancel(session: Session, owner: Owner, job_id: str) -> Job:
    job = get(session, owner, job_id)
    if job.state in jobs_repo.TERMINAL:
        raise Conflict(f"job {job_id!r} already finished ({job.state}); nothing to cancel")
    if jobs_repo.cancel_if_queued(session, job_id):
        _mark_zoo_of_cancelled_build(session, job)
    else:
        # Running: the runner checks this flag between steps and stops at a safe point.
        jobs_repo.request_cancel(session, job_id)
    session.commit()
    return jobs_repo.get(session, job_id)  # type: ignore[return-value]


def _mark_zoo_of_cancelled_build(session: Session, job: Job) -> None:
    """A build cancelled before it started leaves no zoo to wait for: say so on the zoo, as the
    worker does for a build cancelled while running."""
    if job.kind != "build_zoo" or not job.zoo_id:
        return
    zoo = session.get(Zoo, job.zoo_id)
    if zoo is not None and zoo.state == "building":
        zoo.state, zoo.error = "failed", "the build job was cancelled before it started"


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


def recover_local_jobs(factory: sessionmaker[Session]) -> list[str]:
    """At start of the local backend: jobs of a process that died are re-queued (jobs resume)."""
    with factory() as session:
        ids = jobs_repo.active_ids(session)
        jobs_repo.requeue(session, ids, "re-queued: the process that ran it stopped; resuming")
        session.commit()
    return ids
