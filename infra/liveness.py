"""Job liveness: which runs are dead, and what becomes of a job whose run died.

A run owns its job through ``run_token`` and, while it runs, writes ``heartbeat_at`` every
``heartbeat_interval_s`` (``worker.heartbeat``). A running job whose heartbeat is older than
``heartbeat_timeout_s`` has lost its run (worker killed, node lost, database cut off for too
long). The reaper puts such a job back in the queue and hands it to the job backend again; a job
that has started ``job_max_attempts`` times is failed instead, with the reason; a job whose
cancel was requested is cancelled. A job no run will finish is ended here, and a build's zoo is
marked failed with it, so that it can be deleted. docs/reliability.md states the bounds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from infra.db.base import utcnow
from infra.db.errors import is_unavailable
from infra.db.models import Job
from infra.repositories import jobs as jobs_repo
from infra.repositories import zoos as zoos_repo
from infra.settings import Settings

log = logging.getLogger("blockzoo.liveness")

Send = Callable[[str], None]  # hands a job id to the job backend


def runner_identity() -> str:
    """This process as a run records it: host, pid namespace and pid."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}|{namespace}|{os.getpid()}"


def runner_process_gone(runner: str | None) -> bool:
    """True if ``runner`` was a process of this host and pid namespace that no longer exists.

    Lets a redelivered job take over at once from a killed worker child on the same machine,
    without waiting for its heartbeat to go stale. Unknown (other host): False.
    """
    if not runner:
        return False
    host, _, rest = runner.partition("|")
    namespace, _, pid = rest.rpartition("|")
    here_host, _, here_rest = runner_identity().partition("|")
    here_namespace = here_rest.rpartition("|")[0]
    if host != here_host or namespace != here_namespace or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def heartbeat_cutoff(settings: Settings, seconds: float | None = None) -> datetime:
    return utcnow() - timedelta(seconds=settings.heartbeat_timeout_s if seconds is None else seconds)


def end_build(session: Session, job: Job, reason: str) -> None:
    """A build that ended without succeeding leaves its zoo failed, with the reason."""
    if job.kind == "build_zoo" and job.zoo_id:
        zoos_repo.mark_build_failed(session, job.zoo_id, reason)


def recover(session: Session, job: Job, settings: Settings, heartbeat_before: datetime | None,
            why: str) -> str | None:
    """End the dead run of ``job``: re-queue it, or fail / cancel it. None if another party won.

    ``heartbeat_before``: the run must still be this stale (None: its process is known gone).
    The caller commits; a re-queued job must then be handed to the job backend.
    """
    if job.cancel_requested:
        if jobs_repo.end_run(session, job, "cancelled", heartbeat_before, message=f"cancelled ({why})"):
            end_build(session, job, "the build job was cancelled")
            return "cancelled"
        return None
    if job.attempts >= settings.job_max_attempts:
        error = (f"gave up after {job.attempts} attempts: the run was lost each time (this time {why}); "
                 "a job that kills its worker, e.g. by running out of memory, ends here")
        if jobs_repo.end_run(session, job, "failed", heartbeat_before, error=error, message="failed"):
            end_build(session, job, error)
            return "failed"
        return None
    message = f"re-queued: {why}; resuming (attempt {job.attempts + 1} of {settings.job_max_attempts})"
    return "queued" if jobs_repo.end_run(session, job, "queued", heartbeat_before, message=message) else None


@dataclass
class Reaped:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.cancelled)


def reap(factory: sessionmaker[Session], settings: Settings, send: Send) -> Reaped:
    """One sweep: every running job whose run is dead is re-queued (and re-sent), failed or cancelled.

    A re-queued job is committed before it is re-sent, so that its message always finds it
    queued (a claim reads the committed row and does not wait for other writers). If the broker
    is down, the job is put back as it was (running, stale) for the next sweep to try again.
    """
    reaped = Reaped()
    cancel_cutoff = heartbeat_cutoff(settings, settings.cancel_orphan_after_s)
    with factory() as session:
        candidates = [j.id for j in jobs_repo.stale_running(session, cancel_cutoff)]
    for job_id in candidates:
        with factory() as session:
            job = jobs_repo.get(session, job_id)
            if job is None or job.state != "running":
                continue
            stale = job.heartbeat_at is None or job.heartbeat_at < heartbeat_cutoff(settings)
            if not (stale or job.cancel_requested):
                continue  # only a cancel may act on the shorter bound
            last = job.heartbeat_at.isoformat(timespec="seconds") if job.heartbeat_at else "never"
            cutoff = heartbeat_cutoff(settings) if not job.cancel_requested else cancel_cutoff
            outcome = recover(session, job, settings, cutoff, f"its worker stopped sending heartbeats (last: {last})")
            if outcome is None:
                session.rollback()
                continue
            attempts, heartbeat_at = job.attempts, job.heartbeat_at
            session.commit()
            if outcome == "queued":
                try:
                    send(job_id)
                except Exception as exc:
                    jobs_repo.unqueue_unsent(session, job_id, attempts, heartbeat_at)
                    session.commit()
                    log.warning("job %s: could not re-send it (%s); the next sweep tries again", job_id, exc)
                    continue
            {"queued": reaped.requeued, "failed": reaped.failed, "cancelled": reaped.cancelled}[outcome].append(job_id)
            log.warning("job %s (%s): its run died (last heartbeat %s): %s", job_id, job.kind, last, outcome)
    return reaped


class Reaper:
    """:func:`reap` now (:meth:`sweep`) and every ``reaper_interval_s`` on a daemon thread."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, send: Send) -> None:
        self._factory, self._settings, self._send = factory, settings, send
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> Reaped:
        try:
            return reap(self._factory, self._settings, self._send)
        except Exception as exc:  # the database may be down: the next sweep tries again
            if is_unavailable(exc):
                log.warning("reaper: the database is unavailable (%s); next sweep in %.0f s",
                            str(exc).splitlines()[0][:200], self._settings.reaper_interval_s)
            else:
                log.exception("reaper: sweep failed")
            return Reaped()

    def start(self) -> None:
        if self._settings.reaper_interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="blockzoo-reaper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.reaper_interval_s):
            self.sweep()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
