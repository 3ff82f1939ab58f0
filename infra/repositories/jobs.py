"""Jobs: creation, owner-scoped reads and the state transitions the runner makes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
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


def claim(session: Session, job_id: str) -> bool:
    """Move a queued (or redelivered running) job to running; False if it is finished or gone."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(ACTIVE), Job.cancel_requested.is_(False))
        .values(state="running", attempts=Job.attempts + 1, started_at=utcnow(), updated_at=utcnow(),
                message="started", error=None)
    )
    return result.rowcount == 1


def set_fields(session: Session, job_id: str, **values: Any) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow(), **values))


def request_cancel(session: Session, job_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE)).values(cancel_requested=True))


def cancel_if_queued(session: Session, job_id: str) -> bool:
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued")
        .values(state="cancelled", cancel_requested=True, finished_at=utcnow(), message="cancelled before it started")
    )
    return result.rowcount == 1


def cancel_requested(session: Session, job_id: str) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def requeue(session: Session, job_ids: Iterable[str], message: str) -> None:
    ids = list(job_ids)
    if ids:
        session.execute(
            update(Job).where(Job.id.in_(ids), Job.state == "running").values(state="queued", message=message)
        )
