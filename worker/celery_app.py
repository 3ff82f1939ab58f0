"""The Celery application: ``celery -A worker.celery_app worker`` (or ``blockzoo worker``).

Configured for long, expensive, idempotent jobs (DESIGN §8): a task is acknowledged only
after it finished, and a task whose worker child died is put back at once (reject on worker
lost); each worker process reserves one task at a time. A whole worker that dies leaves its
message unacknowledged in Redis until the visibility timeout: that is not how its job comes
back; the reaper (``worker.reaper``, ``infra.liveness``) re-sends it once its heartbeat is
stale, and any late or duplicate delivery exits at once (``worker.runner``). A worker rides
out a broker outage by reconnecting for as long as it takes. Results are not stored in the
broker: job state, progress and results live in the database.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import celeryd_init

from infra.settings import Settings
from worker.threads import configure_worker_threads

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
        # An unreachable broker host fails a send or a check in seconds, not at the OS's TCP timeout.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s, "socket_connect_timeout": 5},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # reconnect after a Redis outage, however long
        # A running job keeps running through a broker outage (its state lives in the database).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


app = create_celery_app(Settings())


@celeryd_init.connect
def _job_threads(options: dict | None = None, **_: object) -> None:
    configure_worker_threads(options or {})  # before the pool forks: children inherit the setting
