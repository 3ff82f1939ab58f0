"""``run_job(job_id)``: the one entry point of every job, on every backend.

Loads the job row, claims it (queued -> running), dispatches by kind, and records the outcome
(succeeded with a result, failed with an error, cancelled, or re-queued when the process is
shutting down). Safe to call twice for the same id: a finished job is left alone, and a
redelivered running job resumes (job functions persist finished work as they go).
"""

from __future__ import annotations

import logging
import traceback

from infra.db.base import utcnow
from infra.repositories import jobs as jobs_repo
from infra.runtime import Runtime
from worker.context import JobContext
from worker.registry import get_kind

log = logging.getLogger("blockzoo.worker")


def run_job(job_id: str, runtime: Runtime) -> str:
    """Run job ``job_id`` to completion; returns its final state."""
    from blockzoo.allocator import keep_freed_memory
    from blockzoo.progress import Cancelled

    keep_freed_memory()  # jobs churn through large tensors: keep freed memory for reuse (idempotent)

    with runtime.session_factory() as session:
        job = jobs_repo.get(session, job_id)
        if job is None:
            log.warning("job %s: no such row (deleted?); skipping", job_id)
            return "missing"
        if job.state in jobs_repo.TERMINAL:
            return job.state
        ctx = JobContext(job_id=job.id, kind=job.kind, owner_id=job.owner_id, zoo_id=job.zoo_id,
                         payload=dict(job.payload or {}), runtime=runtime)
        if job.cancel_requested:
            _finish(runtime, job_id, "cancelled", message="cancelled before it started")
            try:
                on_failure = get_kind(ctx.kind).on_failure
            except LookupError:
                on_failure = None
            if on_failure:
                _safe(on_failure, ctx, "cancelled before it started")
            return "cancelled"
        if not jobs_repo.claim(session, job_id):
            session.rollback()
            return jobs_repo.get(session, job_id).state  # type: ignore[union-attr]
        session.commit()

    log.info("job %s (%s): started", job_id, ctx.kind)
    try:
        kind = get_kind(ctx.kind)
    except LookupError as exc:
        _finish(runtime, job_id, "failed", error=str(exc))
        return "failed"
    try:
        result = kind.run(ctx)
    except Cancelled:
        if runtime.stopping.is_set() and not _cancel_requested(runtime, job_id):
            with runtime.session_factory() as session:
                jobs_repo.requeue(session, [job_id], "interrupted by shutdown; resumes at next start")
                session.commit()
            log.info("job %s: interrupted by shutdown, re-queued", job_id)
            return "queued"
        _finish(runtime, job_id, "cancelled", message="cancelled on request")
        if kind.on_failure:
            _safe(kind.on_failure, ctx, "cancelled on request")
        return "cancelled"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.error("job %s (%s) failed: %s\n%s", job_id, ctx.kind, error, traceback.format_exc())
        _finish(runtime, job_id, "failed", error=error, message="failed")
        if kind.on_failure:
            _safe(kind.on_failure, ctx, error)
        return "failed"
    _finish(runtime, job_id, "succeeded", result=result, message="done", progress=1.0)
    log.info("job %s (%s): succeeded", job_id, ctx.kind)
    return "succeeded"


def _finish(runtime: Runtime, job_id: str, state: str, **values: object) -> None:
    with runtime.session_factory() as session:
        jobs_repo.set_fields(session, job_id, state=state, finished_at=utcnow(), **values)
        session.commit()


def _cancel_requested(runtime: Runtime, job_id: str) -> bool:
    with runtime.session_factory() as session:
        return jobs_repo.cancel_requested(session, job_id)


def _safe(fn, ctx: JobContext, error: str) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(ctx, error)
    except Exception:
        log.exception("job %s: failure hook raised", ctx.job_id)
