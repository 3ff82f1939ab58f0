"""Background jobs: ``runner.run_job(job_id)`` and the Celery app that delivers job ids to it.

``celery -A worker ...`` finds the Celery app through ``worker.app``; it is imported lazily so
that the local backend can use the runner without loading Celery.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from worker.celery_app import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
