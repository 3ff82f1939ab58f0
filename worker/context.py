"""What a job function gets: its row's fields, the runtime, and progress / cancel hooks.

Progress and the cancel check are best effort while the database is away (the job keeps
computing); both stop the job once its run no longer owns it (``run_token``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from blockzoo.progress import phase_of
from sqlalchemy.orm import Session

from infra.db.errors import is_unavailable
from infra.repositories import jobs as jobs_repo
from infra.runtime import Runtime
from infra.storage import Storage

log = logging.getLogger("blockzoo.worker")

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
    run_token: str = ""
    # Set once this run no longer owns the job (by the heartbeat, or a refused progress write).
    lost: threading.Event = field(default_factory=threading.Event)
    _last_progress: float = field(default=0.0, repr=False)
    _last_phase: str | None = field(default=None, repr=False)
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
        phase = phase_of(message)  # a new phase is written at once (its first message may stand a while)
        if fraction < 1.0 and phase == self._last_phase and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress, self._last_phase = now, phase
        try:
            with self.session() as session:
                owned = jobs_repo.report_progress(session, self.job_id, self.run_token, fraction, message)
                session.commit()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.debug("job %s: progress not written (database unavailable)", self.job_id)
            return
        if not owned:
            self.lost.set()

    def should_stop(self) -> bool:
        """True once a cancel was requested (checked at most once a second), the process stops,
        or this run lost the job."""
        if self.runtime.stopping.is_set() or self.lost.is_set():
            return True
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= CANCEL_POLL_INTERVAL_S:
            self._last_cancel_check = now
            try:
                with self.session() as session:
                    self._cancelled = jobs_repo.cancel_requested(session, self.job_id)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
        return self._cancelled

    def check_stop(self) -> None:
        if self.should_stop():
            from blockzoo.progress import Cancelled

            raise Cancelled("cancelled on request")
