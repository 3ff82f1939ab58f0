"""Job backends. Both hand a job id to ``worker.runner.run_job``; neither holds job state.

- ``local``: a thread pool inside the API process (embedded default).
- ``celery``: a task message on Redis, picked up by ``blockzoo worker``.

Jobs are enqueued only after the transaction that created them commits (see
``app.services.jobs``), so a worker never looks for a row that is not there yet.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger("blockzoo.jobs")


class JobQueue(Protocol):
    name: str

    def enqueue(self, job_id: str) -> None: ...

    def check(self) -> None:
        """Raise if the backend cannot accept jobs now."""

    def close(self) -> None: ...


class LocalJobQueue:
    name = "local"

    def __init__(self, runtime: Runtime, workers: int) -> None:
        self._runtime = runtime
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blockzoo-job")

    def enqueue(self, job_id: str) -> None:
        self._pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        from worker.runner import run_job

        try:
            run_job(job_id, self._runtime)
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
        from worker.celery_app import RUN_JOB_TASK, create_celery_app

        self._app = create_celery_app(runtime.settings)
        self._task = RUN_JOB_TASK

    def enqueue(self, job_id: str) -> None:
        self._app.send_task(self._task, args=[job_id])

    def check(self) -> None:
        with self._app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    def close(self) -> None:
        self._app.close()


def make_job_queue(runtime: Runtime) -> JobQueue:
    if runtime.settings.job_backend == "celery":
        return CeleryJobQueue(runtime)
    return LocalJobQueue(runtime, runtime.settings.local_workers)
