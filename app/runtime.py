"""The live resources of a service process: settings, database, storage, job queue.

One ``Runtime`` is built by the API's lifespan and one per Celery worker process; job
functions receive it, so both backends run the same code against the same resources.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import make_engine, make_session_factory
from app.services.jobs import install_enqueue_after_commit
from app.settings import Settings
from app.storage import Storage

if TYPE_CHECKING:
    from app.job_queue import JobQueue


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = Storage(settings.data_dir)
        self.engine: Engine = make_engine(settings.effective_database_url)
        self.session_factory: sessionmaker[Session] = make_session_factory(self.engine)
        self.session_factory.configure(info={"runtime": self})
        install_enqueue_after_commit(self.session_factory)
        # Set at shutdown: running local jobs stop at their next safe point and are re-queued.
        self.stopping = threading.Event()

    @cached_property
    def secret_key(self) -> str:
        # Lazy: workers never authenticate, so they neither need nor create the key file.
        return self.settings.resolved_secret_key()

    @cached_property
    def job_queue(self) -> JobQueue:
        from app.job_queue import make_job_queue

        return make_job_queue(self)

    def migrate(self) -> None:
        from app.db.migrate import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        self.stopping.set()
        if "job_queue" in self.__dict__:
            self.job_queue.close()
        self.engine.dispose()
