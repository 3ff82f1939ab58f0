"""The heartbeat of a running job: a daemon thread writes ``heartbeat_at`` while the run owns it.

A thread, so that a job busy in one long computation still beats; one small conditional
UPDATE every ``heartbeat_interval_s``. Once the run no longer owns the job (cancelled at once
as orphaned, or re-queued by a reaper that thought it dead) :attr:`Heartbeat.lost` is set and
the job stops at its next safe point (``JobContext.should_stop``). A database outage does not
end the heartbeat: it keeps trying, and the reaper's bound decides when the run counts as dead.
"""

from __future__ import annotations

import logging
import threading

from infra.db.errors import first_line, is_unavailable
from infra.repositories import jobs as jobs_repo
from infra.runtime import Runtime

log = logging.getLogger("blockzoo.worker")


class Heartbeat:
    def __init__(self, runtime: Runtime, job_id: str, token: str) -> None:
        self._runtime, self._job_id, self._token = runtime, job_id, token
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._runtime.settings.heartbeat_interval_s + 30)

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self._runtime.settings.heartbeat_interval_s):
            try:
                with self._runtime.session_factory() as session:
                    owned = jobs_repo.beat(session, self._job_id, self._token)
                    session.commit()
            except Exception as exc:
                if not failing:  # once per outage
                    log.warning("job %s: heartbeat not written (%s); retrying", self._job_id,
                                first_line(exc) if is_unavailable(exc) else exc)
                failing = True
                continue
            if failing:
                log.info("job %s: heartbeat written again", self._job_id)
                failing = False
            if not owned:
                log.warning("job %s: this run no longer owns the job (cancelled or re-queued); stopping it",
                            self._job_id)
                self.lost.set()
                return
