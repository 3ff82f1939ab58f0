"""``run_job(job_id)``: the one entry point of every job, on every backend.

Loads the job row, claims it for this run (queued -> running, ``run_token``), beats its heart
while it runs, dispatches by kind, and records the outcome (succeeded with a result, failed
with an error, cancelled, or re-queued when the process is shutting down). Safe to call any
number of times for the same id, concurrently too: a finished job is left alone, a job another
run owns is left alone (the duplicate exits without writing), a job whose worker process died
on this machine is taken over at once (one whose heartbeat went stale comes back through the
reaper, ``infra.liveness``), and every write of this run is conditional on it still owning the
job. Job functions persist finished work as they go, so a job run again resumes.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from dataclasses import dataclass
from typing import Any

from infra import liveness
from infra.repositories import jobs as jobs_repo
from infra.runtime import Runtime
from worker import db_outage
from worker.context import JobContext
from worker.heartbeat import Heartbeat
from worker.registry import JobKind, get_kind

log = logging.getLogger("blockzoo.worker")

DatabaseUnavailable = db_outage.DatabaseUnavailable
LEFT_TO_REAPER = "running"  # what run_job returns when it gave up on the database mid-run


def run_job(job_id: str, runtime: Runtime) -> str:
    """Run job ``job_id`` to completion; returns its final state as this run saw it.

    Raises :class:`DatabaseUnavailable` if the database stayed away before the job was claimed
    (nothing was changed; the caller may deliver the job again later).
    """
    from blockzoo.allocator import keep_freed_memory

    keep_freed_memory()  # jobs churn through large tensors: keep freed memory for reuse (idempotent)

    token = secrets.token_hex(16)
    started = db_outage.retry(runtime, f"job {job_id}: claim", lambda: _claim(runtime, job_id, token),
                              stop=runtime.stopping.is_set)
    if isinstance(started, str):
        return started
    ctx = started
    log.info("job %s (%s): started", job_id, ctx.kind)
    with Heartbeat(runtime, job_id, token) as heartbeat:  # from the claim on: loading the kind takes time
        ctx.lost = heartbeat.lost
        try:
            kind: JobKind | None = get_kind(ctx.kind)
        except LookupError as exc:
            kind, outcome = None, Outcome("failed", {"error": str(exc), "message": "failed"})
        else:
            outcome = _run(runtime, ctx, kind)
    if isinstance(outcome, str):
        return outcome
    return _record(runtime, ctx, kind, outcome.state, **outcome.values)  # the heartbeat has stopped


@dataclass(frozen=True)
class Outcome:
    """How the run ended, written once its heartbeat has stopped."""

    state: str
    values: dict[str, Any]


def _claim(runtime: Runtime, job_id: str, token: str) -> JobContext | str:
    """This run's context once it owns the job, else the state it found (and nothing written)."""
    with runtime.session_factory() as session:
        job = jobs_repo.get(session, job_id)
        if job is None:
            log.warning("job %s: no such row (deleted?); skipping", job_id)
            return "missing"
        if job.state in jobs_repo.TERMINAL:
            log.info("job %s: already %s; this delivery exits", job_id, job.state)
            return job.state
        if job.state == "running" and liveness.runner_process_gone(job.runner):
            # Redelivered at once after its worker child was killed: end that run, then claim the job.
            # (A stale heartbeat alone is the reaper's to judge, so that a slow run is not raced here.)
            outcome = liveness.recover(session, job, runtime.settings, None, "its worker process died")
            if outcome in ("failed", "cancelled"):
                session.commit()
                return outcome
        elif job.state == "queued" and job.cancel_requested:
            if jobs_repo.cancel_if_queued(session, job_id):
                liveness.end_build(session, job, "the build job was cancelled before it started")
                session.commit()
                return "cancelled"
        ctx = JobContext(job_id=job.id, kind=job.kind, owner_id=job.owner_id, zoo_id=job.zoo_id,
                         payload=dict(job.payload or {}), runtime=runtime, run_token=token)
        if not jobs_repo.claim(session, job_id, token, liveness.runner_identity()):
            session.rollback()
            log.info("job %s: another run holds it; this delivery exits", job_id)
            return job.state
        session.commit()
    return ctx


def _run(runtime: Runtime, ctx: JobContext, kind: JobKind) -> Outcome | str:
    """The outcome to record, or the final state when there is nothing this run may write."""
    from blockzoo.progress import Cancelled

    while True:
        try:
            result = kind.run(ctx)
        except Cancelled:
            if ctx.lost.is_set():
                log.info("job %s: stopped; another party owns it now", ctx.job_id)
                return _state(runtime, ctx.job_id)
            if runtime.stopping.is_set() and not _cancel_requested(runtime, ctx):
                return _release(runtime, ctx)
            return Outcome("cancelled", {"message": "cancelled on request"})
        except Exception as exc:
            if db_outage.caused_by_outage(exc) and not ctx.lost.is_set():
                # The job function resumes from what it persisted: run it again once the database is back.
                if db_outage.wait_until_available(runtime, f"job {ctx.job_id}", stop=ctx.should_stop):
                    log.info("job %s: the database is back; resuming", ctx.job_id)
                    continue
                log.error("job %s: the database stayed unavailable (or the run was stopped meanwhile); "
                          "left to the reaper", ctx.job_id)
                return LEFT_TO_REAPER
            error = f"{type(exc).__name__}: {exc}"
            log.error("job %s (%s) failed: %s\n%s", ctx.job_id, ctx.kind, error, traceback.format_exc())
            return Outcome("failed", {"error": error, "message": "failed"})
        return Outcome("succeeded", {"result": result, "message": "done", "progress": 1.0, "error": None})


def _record(runtime: Runtime, ctx: JobContext, kind: JobKind | None, state: str, **values: Any) -> str:
    """Write this run's outcome, only while it owns the job.

    A failed or cancelled run first applies its kind's failure hook (a build marks its zoo
    failed), so that a client who sees the job end finds the zoo already saying why.
    """

    def owned() -> bool:
        with runtime.session_factory() as session:
            return jobs_repo.owned_by(session, ctx.job_id, ctx.run_token)

    def write() -> bool:
        with runtime.session_factory() as session:
            written = jobs_repo.finish(session, ctx.job_id, ctx.run_token, state, **values)
            session.commit()
            return written

    try:
        if state != "succeeded" and kind is not None and kind.on_failure is not None:
            if not db_outage.retry(runtime, f"job {ctx.job_id}: ownership", owned):
                return _lost(runtime, ctx, state)
            reason = str(values.get("error") or values.get("message") or state)
            try:
                db_outage.retry(runtime, f"job {ctx.job_id}: failure hook", lambda: kind.on_failure(ctx, reason))
            except DatabaseUnavailable:
                raise
            except Exception:
                log.exception("job %s: failure hook raised", ctx.job_id)
        written = db_outage.retry(runtime, f"job {ctx.job_id}: record {state}", write)
    except DatabaseUnavailable:
        log.error("job %s: could not record %s; left to the reaper", ctx.job_id, state)
        return LEFT_TO_REAPER
    if not written:
        return _lost(runtime, ctx, state)
    log.info("job %s (%s): %s", ctx.job_id, ctx.kind, state)
    return state


def _lost(runtime: Runtime, ctx: JobContext, state: str) -> str:
    log.warning("job %s: ended as %s, but this run no longer owns the job; its outcome stands", ctx.job_id, state)
    return _state(runtime, ctx.job_id)


def _release(runtime: Runtime, ctx: JobContext) -> str:
    def write() -> bool:
        with runtime.session_factory() as session:
            released = jobs_repo.release(session, ctx.job_id, ctx.run_token,
                                         "interrupted by shutdown; resumes at next start")
            session.commit()
            return released

    try:
        released = db_outage.retry(runtime, f"job {ctx.job_id}: re-queue", write)
    except DatabaseUnavailable:
        return LEFT_TO_REAPER
    log.info("job %s: interrupted by shutdown, re-queued", ctx.job_id)
    return "queued" if released else _state(runtime, ctx.job_id)


def _cancel_requested(runtime: Runtime, ctx: JobContext) -> bool:
    def read() -> bool:
        with runtime.session_factory() as session:
            return jobs_repo.cancel_requested(session, ctx.job_id)

    try:
        return db_outage.retry(runtime, f"job {ctx.job_id}: read cancel", read)
    except DatabaseUnavailable:
        return False


def _state(runtime: Runtime, job_id: str) -> str:
    try:
        with runtime.session_factory() as session:
            job = jobs_repo.get(session, job_id)
            return job.state if job is not None else "missing"
    except Exception:  # only informative: the outcome is already decided elsewhere
        log.exception("job %s: could not read its state", job_id)
        return "unknown"
