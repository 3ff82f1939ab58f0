"""Riding out a database outage inside a job: wait with backoff for a bounded time, then give up.

The runner retries its own reads and writes (claim, outcome) through :func:`retry`, and a job
function that failed because the database went away is run again once it is back (job
functions resume from what they persisted). After ``job_db_retry_s`` without the database the
run gives up and leaves the job as it is: its heartbeat stops and the reaper re-queues it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import text

from infra.db.errors import first_line, is_unavailable
from infra.runtime import Runtime

log = logging.getLogger("blockzoo.worker")

T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


class DatabaseUnavailable(RuntimeError):
    """The database stayed unreachable for ``job_db_retry_s``."""


def caused_by_outage(error: BaseException) -> bool:
    """The error, or one it was raised from, says the database is unavailable."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 8:
        if is_unavailable(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _backoff(deadline: float, attempt: int, stop: Callable[[], bool]) -> bool:
    """Sleep before the next attempt; False once the bound passed or the run should stop."""
    delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** attempt, max(0.0, deadline - time.monotonic()))
    if delay <= 0 or stop():
        return False
    time.sleep(delay)
    return time.monotonic() < deadline and not stop()


def retry(runtime: Runtime, what: str, fn: Callable[[], T], stop: Callable[[], bool] = lambda: False) -> T:
    """``fn()``, retried with backoff while the database is unavailable; DatabaseUnavailable after the bound."""
    deadline = time.monotonic() + runtime.settings.job_db_retry_s
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not caused_by_outage(exc):
                raise
            if attempt == 0:
                log.warning("%s: the database is unavailable (%s); retrying for up to %.0f s", what,
                            first_line(exc), runtime.settings.job_db_retry_s)
            if not _backoff(deadline, attempt, stop):
                raise DatabaseUnavailable(f"{what}: the database stayed unavailable: {first_line(exc)}") from exc
            attempt += 1


def wait_until_available(runtime: Runtime, what: str, stop: Callable[[], bool] = lambda: False) -> bool:
    """Block until the database answers (True) or ``job_db_retry_s`` passed or ``stop()`` (False)."""

    def ping() -> None:
        with runtime.engine.connect() as conn:
            conn.execute(text("select 1"))

    try:
        retry(runtime, what, ping, stop)
    except DatabaseUnavailable:
        return False
    return True
