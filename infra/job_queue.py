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
from infra.liveness import end_build
from infra.repositories import jobs as jobs_repo

if TYPE_CHECKING:
    from infra.runtime import Runtime
    from infra.settings import Settings

log = logging.getLogger("blockzoo.jobs")

_FAILED = "blockzoo_enqueue_failed"


class JobQueue(Protocol):
    name: str

    def enqueue(self, job_id: str) -> None: ...

    def check(self) -> None:
        """Raise if the backend cannot accept jobs now."""

    def close(self) -> None: ...


def celery_queue_of(kind: str, settings: Settings) -> str | None:
    """The Celery queue a job of ``kind`` goes to, on submission and when re-sent; None: the common one.

    Measuring a latency table must run on the target device, whose worker listens on its own queue.
    """
    from infra.latency_tables import MEASURE_JOB

    return settings.latency_queue if kind == MEASURE_JOB and settings.latency_queue else None


def enqueue_after_commit(session: Session, job_id: str) -> None:
    """Hand ``job_id`` to the runtime's job queue once ``session`` commits."""
    runtime: Runtime = session.info["runtime"]
    on_commit(session, lambda: _enqueue(runtime, session, job_id))


def enqueue_failures(session: Session) -> list[str]:
    """Jobs this session committed that the backend refused (each is ended as failed); clears the list."""
    return session.info.pop(_FAILED, [])


def _enqueue(runtime: Runtime, session: Session, job_id: str) -> None:
    try:
        runtime.job_queue.enqueue(job_id)
    except Exception as exc:
        # The rows are committed but nobody will run the job: a compensating transaction ends it
        # (and a build's zoo) as failed with the reason, and the request answers 503.
        log.exception("could not enqueue job %s", job_id)
        session.info.setdefault(_FAILED, []).append(job_id)
        reason = (f"the job backend ({runtime.settings.job_backend}) could not be reached, so the job never "
                  f"ran: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; submit it again")
        with runtime.session_factory.begin() as compensation:
            job = jobs_repo.get(compensation, job_id)
            if job is not None and jobs_repo.fail_queued(compensation, job_id, reason):
                end_build(compensation, job, reason)
