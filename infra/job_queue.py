"""The job queue as the shared layers see it: a backend that takes job ids, fed after commit.

The backends themselves (a local thread pool, Celery) are chosen and built by the process that
owns them (``app.job_backends``) and attached to its :class:`~infra.runtime.Runtime`; a job is
handed to the backend only once the transaction that created its row commits.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.orm import Session

from infra.after_commit import on_commit
from infra.db.base import utcnow
from infra.repositories import jobs as jobs_repo

if TYPE_CHECKING:
    from infra.runtime import Runtime

log = logging.getLogger("blockzoo.jobs")


class JobQueue(Protocol):
    name: str

    def enqueue(self, job_id: str) -> None: ...

    def check(self) -> None:
        """Raise if the backend cannot accept jobs now."""

    def close(self) -> None: ...


def enqueue_after_commit(session: Session, job_id: str) -> None:
    """Hand ``job_id`` to the runtime's job queue once ``session`` commits."""
    runtime: Runtime = session.info["runtime"]
    on_commit(session, lambda: _enqueue(runtime, job_id))


def _enqueue(runtime: Runtime, job_id: str) -> None:
    try:
        runtime.job_queue.enqueue(job_id)
    except Exception as exc:  # the row exists but nobody will run it: say so on the job
        log.exception("could not enqueue job %s", job_id)
        with runtime.session_factory.begin() as session:
            jobs_repo.set_fields(
                session, job_id, state="failed", finished_at=utcnow(),
                error=f"the job backend ({runtime.settings.job_backend}) could not be reached: {exc}",
            )
