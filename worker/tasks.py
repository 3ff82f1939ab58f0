"""Celery tasks: thin. The message carries a job id; everything else is in the database."""

from __future__ import annotations

from worker.celery_app import RUN_JOB_TASK, app
from worker.process import worker_runtime
from worker.runner import run_job as _run_job


@app.task(name=RUN_JOB_TASK)
def run_job(job_id: str) -> None:
    _run_job(job_id, worker_runtime())
