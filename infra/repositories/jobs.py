"""Jobs: creation, owner-scoped reads and the state transitions of runs, reapers and cancels.

Every write a run makes is conditional on its ``run_token`` still owning the job, so a run that
lost the job (cancelled, or re-queued after its heartbeat stopped) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from infra.db.base import utcnow
from infra.db.models import Job

ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")


def add(session: Session, job: Job) -> Job:
    session.add(job)
    return job


def get(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id, populate_existing=True)


def list_for_owner(owner_id: str, kind: str | None = None, zoo_id: str | None = None):  # -> Select
    query = select(Job).where(Job.owner_id == owner_id).order_by(Job.created_at.desc(), Job.id)
    if kind:
        query = query.where(Job.kind == kind)
    if zoo_id:
        query = query.where(Job.zoo_id == zoo_id)
    return query


def active_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Job.id).where(Job.state.in_(ACTIVE)).order_by(Job.created_at)))


def claim(session: Session, job_id: str, token: str, runner: str) -> bool:
    """queued -> running, owned by the run ``token``; False if it runs elsewhere, is finished or gone.

    One conditional UPDATE: of two deliveries of the same job exactly one claims it. A running
    job is claimed only after :mod:`infra.liveness` found its run dead and put it back in the queue.
    """
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued", Job.cancel_requested.is_(False))
        .values(state="running", run_token=token, runner=runner[:200], attempts=Job.attempts + 1,
                started_at=now, heartbeat_at=now, updated_at=now, message="started", error=None)
    )
    return result.rowcount == 1


def _owned(job_id: str, token: str):  # noqa: ANN202 - a WHERE clause
    return (Job.id == job_id) & (Job.run_token == token) & (Job.state == "running")


def owned_by(session: Session, job_id: str, token: str) -> bool:
    """The run ``token`` still owns the running job."""
    return session.scalar(select(Job.id).where(_owned(job_id, token))) is not None


def beat(session: Session, job_id: str, token: str) -> bool:
    """The run ``token`` is alive; False once it no longer owns the job (cancelled, re-queued, finished)."""
    # updated_at stays: it is the last change of what a client sees (state, progress, message).
    result = session.execute(update(Job).where(_owned(job_id, token))
                             .values(heartbeat_at=utcnow(), updated_at=Job.updated_at))
    return result.rowcount == 1


def report_progress(session: Session, job_id: str, token: str, fraction: float, message: str) -> bool:
    """Progress of the run ``token``; it never goes backwards (a resumed run restarts its phases)."""
    fraction = round(min(1.0, max(0.0, fraction)), 4)
    result = session.execute(
        update(Job).where(_owned(job_id, token))
        .values(progress=case((Job.progress > fraction, Job.progress), else_=fraction), message=message[:500],
                updated_at=utcnow())
    )
    return result.rowcount == 1


def finish(session: Session, job_id: str, token: str, state: str, **values: Any) -> bool:
    """The outcome of the run ``token``, written only while it still owns the job."""
    now = utcnow()
    result = session.execute(
        update(Job).where(_owned(job_id, token)).values(state=state, finished_at=now, updated_at=now, **values)
    )
    return result.rowcount == 1


def release(session: Session, job_id: str, token: str, message: str) -> bool:
    """The run ``token`` gives the job back to the queue (its process is shutting down)."""
    result = session.execute(
        update(Job).where(_owned(job_id, token))
        .values(state="queued", run_token=None, runner=None, message=message, updated_at=utcnow())
    )
    return result.rowcount == 1


def stale_running(session: Session, heartbeat_before: datetime) -> list[Job]:
    """Running jobs whose heartbeat is older than ``heartbeat_before`` (or was never written)."""
    return list(session.scalars(
        select(Job).where(Job.state == "running",
                          or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < heartbeat_before))
        .order_by(Job.created_at)
    ))


def end_run(session: Session, job: Job, state: str, heartbeat_before: datetime | None, **values: Any) -> bool:
    """Move a running ``job`` whose run is dead to ``state``, if that same run still holds it.

    Compare-and-set on the run token seen in ``job`` (and on its heartbeat still being older
    than ``heartbeat_before``): of two reapers, or a reaper and a late heartbeat, one wins.
    """
    now = utcnow()
    same_run = Job.run_token.is_(None) if job.run_token is None else Job.run_token == job.run_token
    query = update(Job).where(Job.id == job.id, Job.state == "running", same_run)
    if heartbeat_before is not None:
        query = query.where(or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < heartbeat_before))
    if state == "queued":
        values = {"run_token": None, "runner": None, **values}
    else:
        values = {"finished_at": now, **values}
    result = session.execute(query.values(state=state, updated_at=now, **values))
    return result.rowcount == 1


def unqueue_unsent(session: Session, job_id: str, attempts: int, heartbeat_at: datetime | None) -> bool:
    """Undo a re-queue whose message could not be sent: running again with its stale heartbeat, so
    that the next sweep retries; unless a run claimed the job meanwhile (a late delivery)."""
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.state == "queued", Job.run_token.is_(None),
                          Job.attempts == attempts)
        .values(state="running", heartbeat_at=heartbeat_at, message="re-queue pending: the job backend was "
                "unreachable", updated_at=utcnow())
    )
    return result.rowcount == 1


def fail_queued(session: Session, job_id: str, error: str) -> bool:
    """A queued job that no run will ever take (e.g. its message never reached the broker)."""
    now = utcnow()
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.state == "queued")
        .values(state="failed", error=error, message="failed", finished_at=now, updated_at=now)
    )
    return result.rowcount == 1


def set_fields(session: Session, job_id: str, **values: Any) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow(), **values))


def request_cancel(session: Session, job_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE))
                    .values(cancel_requested=True, updated_at=utcnow()))


def cancel_if_queued(session: Session, job_id: str) -> bool:
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued")
        .values(state="cancelled", cancel_requested=True, finished_at=utcnow(), updated_at=utcnow(),
                message="cancelled before it started")
    )
    return result.rowcount == 1


def cancel_requested(session: Session, job_id: str) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def requeue(session: Session, job_ids: Iterable[str], message: str) -> None:
    ids = list(job_ids)
    if ids:
        session.execute(
            update(Job).where(Job.id.in_(ids), Job.state == "running")
            .values(state="queued", run_token=None, runner=None, message=message, updated_at=utcnow())
        )
