"""Job backends. Both hand a job id to ``worker.runner.run_job``; neither holds job state.

- ``local``: a thread pool inside the API process (embedded default).
- ``celery``: a task message on Redis, picked up by ``blockzoo worker``.

The API process builds one and attaches it to its Runtime; jobs are enqueued only after the
transaction that created them commits (``infra.job_queue``), so a worker never looks for a row
that is not there yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from infra.job_queue import JobQueue, celery_queue_of
from infra.repositories import jobs as jobs_repo
from infra.runtime import Runtime
from worker.runner import run_job

log = logging.getLogger("blockzoo.jobs")

RunJob = Callable[[str, Runtime], str]


class LocalJobQueue:
    name = "local"

    def __init__(self, runtime: Runtime, workers: int, run: RunJob) -> None:
        self._runtime = runtime
        self._run_job = run
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blockzoo-job")

    def enqueue(self, job_id: str) -> None:
        self._pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        try:
            self._run_job(job_id, self._runtime)
        except Exception:  # run_job records failures itself; this is a bug in the runner
            log.exception("job %s: runner crashed", job_id)

    def check(self) -> None:
        if self._runtime.stopping.is_set():
            raise RuntimeError("the local job runner is shutting down")

    def close(self) -> None:
        # Queued futures are dropped (their rows stay queued and are picked up at next start);
        # running ones see runtime.stopping and stop at their next safe point.
        self._pool.shutdown(wait=True, cancel_futures=True)


class CeleryJobQueue:
    name = "celery"

    def __init__(self, runtime: Runtime) -> None:
        # Imported here so that a local-backend process never loads Celery, kombu and redis.
        from worker.celery_app import RUN_JOB_TASK, create_celery_app

        self._app = create_celery_app(runtime.settings)
        self._task = RUN_JOB_TASK
        self._runtime = runtime

    def enqueue(self, job_id: str) -> None:
        queue = self._queue_of(job_id)
        self._app.send_task(self._task, args=[job_id], **({"queue": queue} if queue else {}))

    def _queue_of(self, job_id: str) -> str | None:
        # Kinds that must run on a given device go to that device's queue (e.g. latency measuring).
        if not self._runtime.settings.latency_queue:
            return None
        with self._runtime.session_factory() as session:
            job = jobs_repo.get(session, job_id)
            return celery_queue_of(job.kind, self._runtime.settings) if job is not None else None

    def check(self) -> None:
        # One attempt: a request that submits a job answers 503 at once while Redis is away.
        with self._app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=2)

    def close(self) -> None:
        self._app.close()


def make_job_queue(runtime: Runtime) -> JobQueue:
    if runtime.settings.job_backend == "celery":
        return CeleryJobQueue(runtime)
    return LocalJobQueue(runtime, runtime.settings.local_workers, run_job)
