"""The live resources of a service process: settings, database, storage, job queue.

One ``Runtime`` is built by the API's lifespan and one per Celery worker process; job
functions receive it, so both backends run the same code against the same resources. The
process that submits jobs (the API) attaches its job queue with :meth:`Runtime.attach_job_queue`;
a worker process has none.
"""

from __future__ import annotations

import threading
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from infra import after_commit
from infra.db.session import make_engine, make_session_factory
from infra.job_queue import JobQueue
from infra.settings import Settings
from infra.storage import Storage


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = Storage(settings.data_dir)
        self.engine: Engine = make_engine(settings.effective_database_url)
        self.session_factory: sessionmaker[Session] = make_session_factory(self.engine)
        self.session_factory.configure(info={"runtime": self})
        after_commit.install(self.session_factory)
        # Set at shutdown: running local jobs stop at their next safe point and are re-queued.
        self.stopping = threading.Event()
        self._job_queue: JobQueue | None = None

    @cached_property
    def secret_key(self) -> str:
        # Lazy: workers never authenticate, so they neither need nor create the key file.
        return self.settings.resolved_secret_key()

    def attach_job_queue(self, job_queue: JobQueue) -> None:
        self._job_queue = job_queue

    @property
    def job_queue(self) -> JobQueue:
        if self._job_queue is None:
            raise RuntimeError("this process has no job queue (only the API process submits jobs)")
        return self._job_queue

    def migrate(self) -> None:
        from infra.db.migrate import upgrade  # alembic loads only where migrations run

        upgrade(self.engine)

    def close(self) -> None:
        self.stopping.set()
        if self._job_queue is not None:
            self._job_queue.close()
        self.engine.dispose()
