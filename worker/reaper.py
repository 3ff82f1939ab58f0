"""The reaper of a Celery worker: started with the worker's main process, it re-sends lost jobs.

Every worker sweeps every ``reaper_interval_s`` (``infra.liveness.reap``); sweeps of several
workers and of the API do not collide, because each job is moved by one conditional UPDATE.
Its engine keeps no pooled connection, so worker children forked later share no socket with it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from sqlalchemy.pool import NullPool

from infra.db.session import make_engine, make_session_factory
from infra.job_queue import celery_queue_of
from infra.liveness import Reaper
from infra.repositories import jobs as jobs_repo
from infra.settings import Settings
from worker.celery_app import RUN_JOB_TASK, app

log = logging.getLogger("blockzoo.worker")

_reaper: Reaper | None = None


@worker_ready.connect
def start_reaper(**_: Any) -> None:
    global _reaper
    settings = Settings()
    if settings.reaper_interval_s <= 0 or _reaper is not None:
        return
    engine = make_engine(settings.effective_database_url, poolclass=NullPool)
    factory = make_session_factory(engine)

    def send(job_id: str) -> None:  # routed as the API routes it
        with factory() as session:
            job = jobs_repo.get(session, job_id)
            queue = celery_queue_of(job.kind, settings) if job is not None else None
        app.send_task(RUN_JOB_TASK, args=[job_id], **({"queue": queue} if queue else {}))

    _reaper = Reaper(factory, settings, send=send)
    _reaper.sweep()
    _reaper.start()
    log.info("reaper: every %.0f s, jobs without a heartbeat for %.0f s are re-queued",
             settings.reaper_interval_s, settings.heartbeat_timeout_s)


@worker_shutdown.connect
def stop_reaper(**_: Any) -> None:
    global _reaper
    if _reaper is not None:
        _reaper.stop()
        _reaper = None
