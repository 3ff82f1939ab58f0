"""Jobs: submit (enqueued after commit), read, list, cancel, wait, and recovery (at start, and the reaper)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict, NotFound, Unavailable
from app.services.quotas import check_job_quota
from infra import liveness
from infra.db.base import new_id
from infra.db.errors import RETRY_AFTER_S
from infra.db.models import Job, Owner
from infra.job_queue import enqueue_after_commit, enqueue_failures
from infra.liveness import Reaper
from infra.repositories import jobs as jobs_repo
from infra.repositories.common import get_owned, paginate
from infra.runtime import Runtime


def submit(session: Session, *, owner_id: str, kind: str, payload: dict[str, Any], zoo_id: str | None = None) -> Job:
    """Add a queued job; it is handed to the job backend only once the session commits.

    The backend is checked first: while it is unreachable the request fails with 503 and rolls
    back, so no zoo or job is left that nothing will run.
    """
    _check_backend(session)
    check_job_quota(session, session.info["runtime"].settings, owner_id)  # 429 past the owner's quotas
    job = Job(
        id=new_id("job"), owner_id=owner_id, zoo_id=zoo_id, kind=kind, payload=payload, state="queued",
        progress=0.0, message="queued", cancel_requested=False, attempts=0,
    )
    jobs_repo.add(session, job)
    enqueue_after_commit(session, job.id)
    return job


def _check_backend(session: Session) -> None:
    runtime: Runtime = session.info["runtime"]
    try:
        runtime.job_queue.check()
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unavailable(f"the job backend ({runtime.settings.job_backend}) is unreachable ({reason}); nothing "
                          f"was created; retry in {RETRY_AFTER_S} s",
                          headers={"Retry-After": str(RETRY_AFTER_S)}) from None


def raise_if_not_enqueued(session: Session) -> None:
    """After a commit: 503 if the backend refused a job this session submitted (the job was ended as failed)."""
    failed = enqueue_failures(session)
    if failed:
        raise Unavailable(f"the job backend became unreachable while job(s) {', '.join(failed)} were submitted; "
                          f"they were recorded as failed and never ran; retry in {RETRY_AFTER_S} s",
                          details={"job_ids": failed}, headers={"Retry-After": str(RETRY_AFTER_S)})


def get(session: Session, owner: Owner, job_id: str) -> Job:
    job = get_owned(session, Job, owner.id, job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}; GET /v1/jobs lists yours")
    return job


def list_page(session: Session, owner: Owner, limit: int, offset: int, kind: str | None = None,
              zoo_id: str | None = None) -> tuple[list[Job], int]:
    return paginate(session, jobs_repo.list_for_owner(owner.id, kind, zoo_id), limit, offset)


def cancel(session: Session, owner: Owner, job_id: str) -> Job:
    """Cancel a job: at once if no run holds it (queued, or its heartbeat stopped), else at its next safe point."""
    settings = session.info["runtime"].settings
    job = get(session, owner, job_id)
    if job.state in jobs_repo.TERMINAL:
        raise Conflict(f"job {job_id!r} already finished ({job.state}); nothing to cancel")
    if jobs_repo.cancel_if_queued(session, job_id):
        liveness.end_build(session, job, "the build job was cancelled before it started")
    else:
        jobs_repo.request_cancel(session, job_id)  # the run checks this flag between steps
        session.flush()
        job = jobs_repo.get(session, job_id)  # type: ignore[assignment]
        cutoff = liveness.heartbeat_cutoff(settings, settings.cancel_orphan_after_s)
        if job.state == "running" and (job.heartbeat_at is None or job.heartbeat_at < cutoff):
            # No run beats for it (its worker died): nobody would see the flag, so end it here.
            liveness.recover(session, job, settings, cutoff, "no worker was running it")
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


_WAIT_POLL_THREADS = 4  # threads the waiting requests' job reads may use at once
_wait_poll_limiter: anyio.CapacityLimiter | None = None


def _read_job(factory: sessionmaker[Session], job_id: str) -> Job:
    with factory() as session:
        job = jobs_repo.get(session, job_id)
        assert job is not None
        return job


async def wait_async(factory: sessionmaker[Session], job_id: str, timeout_s: float) -> Job:
    """``wait`` for async routes: the request sleeps on the event loop, not in a worker thread.

    Only each short read of the job row takes a thread (from a small pool of its own), so any
    number of waiting requests leaves the threadpool to the rest of the API (``/health``, reads).
    """
    global _wait_poll_limiter
    if _wait_poll_limiter is None:
        _wait_poll_limiter = anyio.CapacityLimiter(_WAIT_POLL_THREADS)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        job = await anyio.to_thread.run_sync(_read_job, factory, job_id, limiter=_wait_poll_limiter)
        if job.state in jobs_repo.TERMINAL or time.monotonic() >= deadline:
            return job
        await anyio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)


def recover_local_jobs(session: Session) -> list[str]:
    """At start of the local backend: jobs of a process that died are re-queued (jobs resume)."""
    ids = jobs_repo.active_ids(session)
    jobs_repo.requeue(session, ids, "re-queued: the process that ran it stopped; resuming")
    return ids


def start_reaper(runtime: Runtime) -> Reaper | None:
    """Celery backend: jobs whose worker died are re-queued now and every ``reaper_interval_s`` after."""
    if runtime.settings.job_backend != "celery":
        return None  # the local backend is its own runner: recover_local_jobs covers it at start
    reaper = Reaper(runtime.session_factory, runtime.settings, send=lambda job_id: runtime.job_queue.enqueue(job_id))
    reaper.sweep()
    reaper.start()
    return reaper
