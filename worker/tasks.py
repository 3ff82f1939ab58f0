"""Celery tasks: thin. The message carries a job id; everything else is in the database."""

from __future__ import annotations

from celery.exceptions import Reject

from worker import reaper  # noqa: F401  (starts the reaper with the worker)
from worker.celery_app import RUN_JOB_TASK, app
from worker.process import worker_runtime
from worker.runner import DatabaseUnavailable
from worker.runner import run_job as _run_job


@app.task(name=RUN_JOB_TASK)
def run_job(job_id: str) -> None:
    try:
        _run_job(job_id, worker_runtime())
    except DatabaseUnavailable as exc:
        # Nothing was claimed: put the message back, so the job runs once the database returns.
        raise Reject(str(exc), requeue=True) from exc

