"""What a job function gets: its row's fields, the runtime, and progress / cancel hooks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from infra.repositories import jobs as jobs_repo
from infra.runtime import Runtime
from infra.storage import Storage

PROGRESS_INTERVAL_S = 0.5  # progress rows are written at most this often (SQLite has one writer)
CANCEL_POLL_INTERVAL_S = 1.0


@dataclass
class JobContext:
    job_id: str
    kind: str
    owner_id: str
    zoo_id: str | None
    payload: dict[str, Any]
    runtime: Runtime
    _last_progress: float = field(default=0.0, repr=False)
    _last_cancel_check: float = field(default=0.0, repr=False)
    _cancelled: bool = field(default=False, repr=False)

    @property
    def storage(self) -> Storage:
        return self.runtime.storage

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.runtime.session_factory() as session:
            yield session

    def progress(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        with self.session() as session:
            jobs_repo.set_fields(session, self.job_id, progress=round(min(1.0, max(0.0, fraction)), 4),
                                 message=message[:500])
            session.commit()

    def should_stop(self) -> bool:
        """True once a cancel was requested (checked at most once a second) or the process stops."""
        if self.runtime.stopping.is_set():
            return True
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= CANCEL_POLL_INTERVAL_S:
            self._last_cancel_check = now
            with self.session() as session:
                self._cancelled = jobs_repo.cancel_requested(session, self.job_id)
        return self._cancelled

    def check_stop(self) -> None:
        if self.should_stop():
            from blockzoo.progress import Cancelled

            raise Cancelled("cancelled on request")
