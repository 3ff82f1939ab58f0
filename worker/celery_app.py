"""The Celery application: ``celery -A worker.celery_app worker`` (or ``blockzoo worker``).

Configured for long, expensive, idempotent jobs (DESIGN §8): a task is acknowledged only
after it finished (a killed worker's job is redelivered), each worker process reserves one
task at a time, and Redis waits longer than the longest job before redelivering. Results are
not stored in the broker: job state, progress and results live in the database.
"""

from __future__ import annotations

from celery import Celery

from infra.settings import Settings

RUN_JOB_TASK = "blockzoo.run_job"
QUEUE = "blockzoo"


def create_celery_app(settings: Settings) -> Celery:
    app = Celery("blockzoo", broker=settings.redis_url, include=["worker.tasks"])
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        # The soft limit raises inside the job, so run_job records it as failed; the hard limit
        # (a minute later) only catches a job that ignores it.
        task_soft_time_limit=settings.job_time_limit_s,
        task_time_limit=settings.job_time_limit_s + 60,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


app = create_celery_app(Settings())
